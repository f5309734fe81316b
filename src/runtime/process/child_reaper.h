// Delivers the exit of child processes to whoever spawned them. One SIGCHLD
// handler on the event loop reaps with waitpid(-1, WNOHANG) and looks the pid
// up, so an exit is noticed within a loop turn and nothing polls. watch() must
// be called in the same handler that spawned the child, before the loop can
// reap it.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <functional>
#include <unordered_map>

namespace zeppelin::runtime {

class ChildReaper {
 public:
  explicit ChildReaper(boost::asio::io_context& io);
  // REQUIRES: called on the event-loop thread right after the child was spawned.
  void watch(pid_t pid, std::function<void(int wait_status)> on_exit);
  // Called after reaping processes nobody watches: replicas' descendants,
  // reparented to the server because it is a child subreaper.
  void on_orphans_reaped(std::function<void()> callback) { on_orphans_ = std::move(callback); }

 private:
  void arm();
  void reap();

  boost::asio::signal_set sigchld_;
  std::unordered_map<pid_t, std::function<void(int)>> watchers_;
  std::function<void()> on_orphans_;
};

}  // namespace zeppelin::runtime
