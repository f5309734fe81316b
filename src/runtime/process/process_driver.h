// Runs replicas as local processes: posix_spawn into a process group of their
// own (and a cgroup when limits are set), stdout/stderr through pipes read on
// the event loop, exits delivered by the ChildReaper.
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>
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

  Result<std::unique_ptr<Instance>> start(const LaunchSpec& launch, InstanceEvents events) override;
  int reap_leftovers() override;

  Cgroups::Version cgroup_version() const { return cgroups_.version(); }

 private:
  boost::asio::io_context& io_;
  ChildReaper reaper_;
  Cgroups cgroups_;
  std::string marker_;
};

// Spawns argv with env in workdir as the leader of a new process group, with
// stdin from /dev/null and stdout/stderr to the given fds (-1: /dev/null).
Result<pid_t> spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                            const std::string& workdir, int stdout_fd, int stderr_fd);

}  // namespace zeppelin::runtime
