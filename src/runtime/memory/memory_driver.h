// A Driver that runs nothing: each start() makes a record that its owner
// makes exit, fail its health checks or refuse to start, at will. With
// ManualClock (common/clock.h) it lets the supervisor's whole lifecycle be
// driven step by step in unit tests, as LevelDB's in-memory Env does for its
// storage. Callbacks are posted to the loop, as a real driver's arrive.
#pragma once

#include <boost/asio/io_context.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/driver.h"

namespace zeppelin::runtime {

class MemoryDriver final : public Driver {
 public:
  explicit MemoryDriver(boost::asio::io_context& io) : io_(io) {}
  ~MemoryDriver() override;

  Status supports(const spec::Service& service) override;
  Result<std::unique_ptr<Instance>> start(const LaunchSpec& launch, InstanceEvents events) override;
  int reap_leftovers(const std::function<bool(const std::string& id)>& wanted) override;
  bool adoptable(const std::string& id) const override { return false; }

  // --- What the owner controls ---
  // Starts of `id` fail with `why` until cleared (an empty `why` clears).
  void refuse_starts(const std::string& id, const std::string& why);
  // Whether terminate() ends an instance at once (exit by SIGTERM); when
  // false it keeps running until exit() or kill().
  bool exit_on_terminate = true;
  // The running instance of `id` exits with `status`.
  void exit(const std::string& id, const ExitStatus& status);
  // The running instance of `id` writes `text` (to stderr unless told).
  void output(const std::string& id, const std::string& text, bool is_stderr = true);
  // Exec probes of `id` pass (the default) or fail.
  void set_probe(const std::string& id, bool pass);
  // Ids reap_leftovers() reports as left behind by a previous server.
  std::set<std::string> leftovers;

  // --- What the owner observes ---
  bool running(const std::string& id) const;
  int starts(const std::string& id) const;
  // The launch of the latest start of `id`, or nullptr.
  const LaunchSpec* launch(const std::string& id) const;
  // "start ID", "terminate ID", "kill ID", "exit ID", "probe ID" in the order they happened.
  const std::vector<std::string>& history() const { return history_; }
  void clear_history() { history_.clear(); }

 private:
  class MemoryInstance;
  struct Run {
    LaunchSpec launch;
    InstanceEvents events;
    int pid = 0;
    bool alive = true;
  };
  // Ends `run` (once) and reports it; `what` names the event in history(), if it is not already there.
  void end(const std::shared_ptr<Run>& run, const ExitStatus& status, const char* what);

  boost::asio::io_context& io_;
  std::map<std::string, std::shared_ptr<Run>> current_;  // id -> its latest run
  std::map<std::string, int> starts_;
  std::map<std::string, std::string> refusals_;
  std::map<std::string, bool> probes_;
  std::vector<std::string> history_;
  int next_pid_ = 1000;
  std::shared_ptr<bool> lifetime_ = std::make_shared<bool>(true);
};

}  // namespace zeppelin::runtime
