// The Driver seam: how a replica is made to run. The supervisor speaks only
// to this interface; process/ implements it with local processes, and later
// drivers (containers, Kubernetes) implement the same contract.
//
// Threading: drivers are used from the server's single event-loop thread and
// call their callbacks on it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "spec/model.h"

namespace zeppelin::runtime {

// A host directory seen by a container at `path`.
struct Mount {
  std::string host_dir;
  std::string path;
  bool read_only = false;
};

// What a container replica needs beyond a process's.
struct ContainerLaunch {
  std::string image;
  std::optional<std::vector<std::string>> entrypoint;  // unset: the image's
  std::vector<Mount> mounts;
  std::string system, service;
  int ordinal = 0;
};

struct LaunchSpec {
  std::string id;                    // "system/service/ordinal": names cgroups and messages
  std::vector<std::string> argv;     // containers: the arguments; empty: the image's CMD
  std::vector<std::string> env;      // "KEY=value"
  std::string workdir;               // containers: in the container; empty: the image's
  spec::Resources resources;
  std::optional<spec::RunAs> run_as;  // processes: the account to run as; unset: the server's
  std::optional<ContainerLaunch> container;  // set: run as a container
};

struct ExitStatus {
  int code = 0;         // exit code, or 128+signal when killed by a signal
  int signal = 0;       // the terminating signal, 0 if it exited
  bool oom_killed = false;
  std::string describe() const;
  bool success() const { return code == 0 && signal == 0; }
};

struct InstanceEvents {
  // A chunk of the instance's stdout or stderr, as read (not line-aligned).
  std::function<void(std::string_view chunk, bool is_stderr)> on_output;
  // Called once the instance really runs, if that comes later than start()
  // returns (a container is created and started asynchronously).
  std::function<void()> on_running;
  // Called once, when the instance and everything it started are gone.
  std::function<void(const ExitStatus&)> on_exit;
};

// One running replica. Destroying the handle does not stop the instance.
class Instance {
 public:
  virtual ~Instance() = default;
  virtual int pid() const = 0;  // 0 while not known (a container being created)
  // How the instance is known to users: "pid 1234", "container shop-web-0".
  virtual std::string describe() const = 0;
  // The container's name in its engine; empty for a process.
  virtual std::string container_name() const { return {}; }
  // Asks the instance to stop: SIGTERM to everything it runs.
  virtual void terminate() = 0;
  // Ends the instance and everything it started, now.
  virtual void kill() = 0;
  // Runs a command beside the instance, in its environment; reports whether
  // it exited 0 within `timeout`.
  virtual void exec_probe(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          std::function<void(bool ok)> done) = 0;
};

class Driver {
 public:
  virtual ~Driver() = default;
  // Whether `service` can run at all (a container engine is reachable, say);
  // checked before a system is accepted.
  virtual Status supports(const spec::Service& service) = 0;
  virtual Result<std::unique_ptr<Instance>> start(const LaunchSpec& launch, InstanceEvents events) = 0;
  // Deals with instances a previous server left behind (after a crash): those
  // whose id `wanted` accepts may be adopted by a later start() of the same
  // id and configuration, if the driver can; the rest are ended. Returns how
  // many were ended.
  virtual int reap_leftovers(const std::function<bool(const std::string& id)>& wanted) = 0;
  // Whether start() of this id would adopt a leftover instead of starting anew.
  virtual bool adoptable(const std::string& id) const = 0;
};

}  // namespace zeppelin::runtime
