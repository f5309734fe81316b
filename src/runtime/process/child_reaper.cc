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
  watchers_[pid] = std::move(on_exit);
}

void ChildReaper::reap() {
  bool orphans = false;
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    auto it = watchers_.find(pid);
    if (it == watchers_.end()) {
      orphans = true;
      continue;
    }
    auto callback = std::move(it->second);
    watchers_.erase(it);
    callback(status);
  }
  if (orphans && on_orphans_) on_orphans_();
}

}  // namespace zeppelin::runtime
