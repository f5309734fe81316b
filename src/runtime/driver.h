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
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "spec/model.h"

namespace zeppelin::runtime {

struct LaunchSpec {
  std::string id;                    // "system/service/ordinal": names cgroups and messages
  std::vector<std::string> argv;
  std::vector<std::string> env;      // "KEY=value"
  std::string workdir;
  spec::Resources resources;
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
  // Called once, when the instance and everything it started are gone.
  std::function<void(const ExitStatus&)> on_exit;
};

// One running replica. Destroying the handle does not stop the instance.
class Instance {
 public:
  virtual ~Instance() = default;
  virtual int pid() const = 0;
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
  virtual Result<std::unique_ptr<Instance>> start(const LaunchSpec& launch, InstanceEvents events) = 0;
  // Ends instances a previous server left behind (after a crash); returns how many.
  virtual int reap_leftovers() = 0;
};

}  // namespace zeppelin::runtime
