#include "supervisor/log_hub.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "common/fs_util.h"

namespace zeppelin::supervisor {

namespace {
constexpr std::size_t kRecentLines = 40;
constexpr std::size_t kMaxLine = 64 * 1024;  // longer lines are cut for followers
}  // namespace

bool LogFilter::matches(const LogLine& line) const {
  if (line.system != system) return false;
  if (service && line.service != *service) return false;
  if (replica && line.replica != *replica) return false;
  return true;
}

std::uint64_t LogHub::subscribe(LogFilter filter, Subscriber subscriber, std::function<void()> on_end) {
  const auto id = next_id_++;
  subscribers_.emplace(id, Subscription{std::move(filter), std::move(subscriber), std::move(on_end)});
  return id;
}

void LogHub::end_system(const std::string& system) {
  std::vector<std::function<void()>> ended;
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    if (it->second.filter.system == system) {
      if (it->second.on_end) ended.push_back(std::move(it->second.on_end));
      it = subscribers_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& end : ended) end();
}

void LogHub::unsubscribe(std::uint64_t id) { subscribers_.erase(id); }

void LogHub::publish(const LogLine& line) {
  // A subscriber may unsubscribe itself from its callback.
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    auto current = it++;
    if (current->second.filter.matches(line)) current->second.subscriber(line);
  }
}

ReplicaLog::ReplicaLog(std::string path, std::int64_t max_bytes, int keep_files)
    : path_(std::move(path)), max_bytes_(max_bytes), keep_files_(keep_files) {
  fd_ = open_owner_only(path_, O_WRONLY | O_APPEND);
  struct stat st {};
  if (fd_ >= 0 && ::fstat(fd_, &st) == 0) size_ = st.st_size;
}

ReplicaLog::~ReplicaLog() {
  if (fd_ >= 0) ::close(fd_);
}

void ReplicaLog::write(std::string_view data) {
  if (fd_ < 0) return;
  if (size_ + static_cast<std::int64_t>(data.size()) > max_bytes_ && size_ > 0) rotate();
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
    if (n <= 0) return;  // a full disk loses log lines, never the replica
    done += static_cast<std::size_t>(n);
  }
  size_ += static_cast<std::int64_t>(data.size());
}

void ReplicaLog::rotate() {
  ::close(fd_);
  for (int i = keep_files_ - 1; i >= 1; --i) {
    const std::string from = path_ + "." + std::to_string(i);
    const std::string to = path_ + "." + std::to_string(i + 1);
    ::rename(from.c_str(), to.c_str());
  }
  if (keep_files_ >= 1) ::rename(path_.c_str(), (path_ + ".1").c_str());
  else ::unlink(path_.c_str());
  fd_ = open_owner_only(path_, O_WRONLY | O_APPEND);
  size_ = 0;
}

void ReplicaLog::remember(std::string_view line) {
  recent_.emplace_back(line.substr(0, std::min(line.size(), kMaxLine)));
  if (recent_.size() > kRecentLines) recent_.pop_front();
}

void ReplicaLog::append(std::string_view chunk, bool is_stderr, const std::function<void(std::string_view)>& on_line) {
  write(chunk);
  std::string& partial = partial_[is_stderr ? 1 : 0];
  std::size_t start = 0;
  for (;;) {
    const auto nl = chunk.find('\n', start);
    if (nl == std::string_view::npos) break;
    std::string_view piece = chunk.substr(start, nl - start);
    if (!partial.empty()) {
      partial.append(piece);
      remember(partial);
      on_line(partial);
      partial.clear();
    } else {
      remember(piece);
      on_line(piece);
    }
    start = nl + 1;
  }
  if (start < chunk.size()) {
    partial.append(chunk.substr(start));
    if (partial.size() > kMaxLine) {  // flush an endless line in pieces
      remember(partial);
      on_line(partial);
      partial.clear();
    }
  }
}

void ReplicaLog::note(std::string_view text) {
  std::string line = "[zeppelin] " + std::string(text) + "\n";
  write(line);
  remember(line.substr(0, line.size() - 1));
}

std::vector<std::string> tail_lines(const std::string& path, int keep_files, std::size_t n) {
  std::deque<std::string> lines;
  // Oldest rotated file first, so the result is in order.
  for (int i = keep_files; i >= 0; --i) {
    const std::string file = i == 0 ? path : path + "." + std::to_string(i);
    std::ifstream in(file, std::ios::binary);
    if (!in) continue;
    std::string line;
    while (std::getline(in, line)) {
      lines.push_back(std::move(line));
      if (lines.size() > n) lines.pop_front();
    }
  }
  return {lines.begin(), lines.end()};
}

}  // namespace zeppelin::supervisor
