// Runs replicas as local processes: posix_spawn into a process group of their
// own (and a cgroup when limits are set), stdout/stderr through pipes read on
// the event loop, exits delivered by the ChildReaper.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "runtime/driver.h"
#include "runtime/process/cgroups.h"
#include "runtime/process/child_reaper.h"

namespace zeppelin::runtime {

class ProcessDriver final : public Driver {
 public:
  // `marker` identifies this server's replicas (it is put in their environment
  // as ZEPPELIN_SUPERVISOR) so that a restarted server finds leftovers.
  ProcessDriver(boost::asio::io_context& io, std::string marker);

  Status supports(const spec::Service& service) override;
  Result<std::unique_ptr<Instance>> start(const LaunchSpec& launch, InstanceEvents events) override;
  int reap_leftovers(const std::function<bool(const std::string& id)>& wanted) override;
  bool adoptable(const std::string&) const override { return false; }

  Cgroups::Version cgroup_version() const { return cgroups_.version(); }

 private:
  // A replica whose leader exited while others of its process group were
  // still dying; its exit is reported once the group is empty.
  struct DyingGroup {
    pid_t pgid;
    std::chrono::steady_clock::time_point give_up;
    std::function<void()> finish;
  };
  void check_dying_groups();

  boost::asio::io_context& io_;
  std::vector<DyingGroup> dying_;
  boost::asio::steady_timer dying_timer_;
  ChildReaper reaper_;
  Cgroups cgroups_;
  std::string marker_;
};

// Spawns argv with env in workdir as the leader of a new process group, with
// stdin from /dev/null and stdout/stderr to the given fds (-1: /dev/null).
// With `run_as`, the child takes that account's groups (its supplementary
// groups as initgroups would set them), gid and uid before it changes to
// workdir and execs; the caller is root, or is that account already.
Result<pid_t> spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                            const std::string& workdir, int stdout_fd, int stderr_fd,
                            const std::optional<spec::RunAs>& run_as = std::nullopt);

}  // namespace zeppelin::runtime
