// Replica output: each replica's log file (size-rotated) plus a hub that fans
// complete lines out to followers (`zeppelin logs -f`, foreground `run`).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zeppelin::supervisor {

struct LogLine {
  std::string system;
  std::string service;
  int replica = 0;
  std::string stream;  // "stdout", "stderr" or "event" (a supervisor event about the replica)
  std::string text;
};

struct LogFilter {
  std::string system;
  std::optional<std::string> service;
  std::optional<int> replica;
  bool matches(const LogLine& line) const;
};

class LogHub {
 public:
  using Subscriber = std::function<void(const LogLine&)>;
  // `on_end` runs (and the subscription ends) when the system is removed.
  std::uint64_t subscribe(LogFilter filter, Subscriber subscriber, std::function<void()> on_end = {});
  void unsubscribe(std::uint64_t id);
  void publish(const LogLine& line);
  // Ends every subscription to `system`: it has been removed.
  void end_system(const std::string& system);

 private:
  struct Subscription {
    LogFilter filter;
    Subscriber subscriber;
    std::function<void()> on_end;
  };
  std::map<std::uint64_t, Subscription> subscribers_;
  std::uint64_t next_id_ = 1;
};

// Appends a replica's output to `path`, rotating to path.1 .. path.N when the
// file passes `max_bytes`, and splits it into lines for the hub. Keeps the last
// lines in memory for failure reports.
class ReplicaLog {
 public:
  ReplicaLog(std::string path, std::int64_t max_bytes, int keep_files);
  ~ReplicaLog();
  ReplicaLog(const ReplicaLog&) = delete;
  ReplicaLog& operator=(const ReplicaLog&) = delete;

  // Calls `on_line` for each complete line in `chunk`.
  void append(std::string_view chunk, bool is_stderr, const std::function<void(std::string_view)>& on_line);
  // Writes a supervisor event line ("[zeppelin] ...") to the file.
  void note(std::string_view text);
  std::vector<std::string> recent() const { return {recent_.begin(), recent_.end()}; }
  const std::string& path() const { return path_; }

 private:
  void write(std::string_view data);
  void rotate();
  void remember(std::string_view line);

  std::string path_;
  std::int64_t max_bytes_;
  int keep_files_;
  int fd_ = -1;
  std::int64_t size_ = 0;
  std::string partial_[2];  // unterminated tail of stdout, stderr
  std::deque<std::string> recent_;
};

// The last `n` lines of a replica's log, across its rotated files.
std::vector<std::string> tail_lines(const std::string& path, int keep_files, std::size_t n);

}  // namespace zeppelin::supervisor
