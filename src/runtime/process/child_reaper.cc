#include "runtime/process/child_reaper.h"

#include <sys/wait.h>

#include <csignal>

namespace zeppelin::runtime {

ChildReaper::ChildReaper(boost::asio::io_context& io) : sigchld_(io, SIGCHLD) { arm(); }

void ChildReaper::arm() {
  sigchld_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    reap();
    arm();
  });
}

void ChildReaper::watch(pid_t pid, std::function<void(int)> on_exit) {
  if (auto it = unclaimed_.find(pid); it != unclaimed_.end()) {
    const int status = it->second;
    unclaimed_.erase(it);
    on_exit(status);
    return;
  }
  watchers_[pid] = std::move(on_exit);
  reap();  // the child may have exited before the handler was armed for it
}

void ChildReaper::reap() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    auto it = watchers_.find(pid);
    if (it == watchers_.end()) {
      unclaimed_[pid] = status;
      continue;
    }
    auto callback = std::move(it->second);
    watchers_.erase(it);
    callback(status);
  }
}

}  // namespace zeppelin::runtime
