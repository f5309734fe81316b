// What the parts of the supervisor share: a replica, a system as it runs,
// a waiter for readiness. Private to src/supervisor/; the parts are
// supervisor.cc (desired state and persistence), reconcile.cc (starting and
// stopping what should or should not run), replica_lifecycle.cc (a replica's
// start, exit, backoff and health checks), ready_waiters.cc (wait_ready),
// placement.cc (addresses, volume and log directories, passages) and
// listing.cc (status and logs).
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "supervisor/supervisor.h"

namespace zeppelin::supervisor {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

struct Supervisor::Replica {
  explicit Replica(Clock& clock) : timer(clock.make_timer()), probe_timer(clock.make_timer()) {}
  std::string system;
  std::string service;
  int ordinal = 0;
  std::string key;   // "service/ordinal"
  std::string host;
  ReplicaState state = ReplicaState::kStopped;
  Health health = Health::kNone;
  std::unique_ptr<runtime::Instance> instance;
  std::uint64_t instance_id = 0;  // tells a stale probe or timer from a current one
  Clock::time_point started_at;
  int consecutive_crashes = 0;
  int probe_failures = 0;
  bool probe_passed = false;
  bool needs_start = true;        // stopped, and reconcile should start it
  bool start_queued = false;      // in start_queue_
  bool unhealthy_restart = false; // being stopped because its health check failed
  bool rollout_started = false;
  std::string last_exit;
  std::string detail;
  std::string fingerprint;        // the service definition it runs
  std::uint64_t announced_instance = 0;  // the instance_id the registry holds for it; 0 when none
  std::unique_ptr<ReplicaLog> log;
  std::unique_ptr<ReplicaCredential> credential;  // the current run's store token; revoked when reset
  std::unique_ptr<Timer> timer;  // backoff, or the stop grace period
  std::unique_ptr<Timer> probe_timer;
};

struct Supervisor::SystemRuntime {
  state::SystemRecord record;
  spec::System spec;  // set through set_spec(), which indexes it

  void set_spec(spec::System fresh) {
    spec = std::move(fresh);
    address_lists.clear();
    services_by_name.clear();
    for (const auto& svc : spec.services) services_by_name.emplace(svc.name, &svc);
  }
  // The spec's service NAME, or nullptr. Looked up on every reconcile pass
  // for every service: a scan of the spec would make a pass O(services^2).
  const spec::Service* service(const std::string& name) const {
    auto it = services_by_name.find(name);
    return it == services_by_name.end() ? nullptr : it->second;
  }

  bool removing = false;
  bool remove_volumes = false;
  std::map<std::string, std::vector<std::shared_ptr<Replica>>> replicas;  // service -> by ordinal
  std::deque<std::string> rollout;  // replica keys replaced one at a time
  std::vector<std::function<void()>> stopped_waiters;
  std::map<std::string, std::string> fingerprints;  // service -> definition
  // service -> its replicas' address list (ZEPPELIN_PEERS) for `count`
  // replicas: built once, not once per replica started (O(n^2) for n). Gone
  // when a replica of the service is made or dropped, or the spec changes.
  struct AddressList {
    int count = 0;
    std::string list;
  };
  std::map<std::string, AddressList, std::less<>> address_lists;
  // Into spec.services, whose elements a spec never moves once set.
  std::unordered_map<std::string_view, const spec::Service*> services_by_name;
};

struct Supervisor::ReadyWaiter {
  explicit ReadyWaiter(Clock& clock) : deadline(clock.make_timer()), recheck(clock.make_timer()) {}
  std::string system;
  std::map<std::string, int> baseline_restarts;
  std::function<void(ReadyReport)> done;
  std::unique_ptr<Timer> deadline;
  std::unique_ptr<Timer> recheck;  // when a replica without health check will have settled
  bool finished = false;
};

inline std::string replica_key(const std::string& service, int ordinal) { return service + "/" + std::to_string(ordinal); }

}  // namespace zeppelin::supervisor
