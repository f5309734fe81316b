// The reconciler. The API records desired state here (apply, stop, scale,
// restart); reconcile() alone starts and stops replicas until what runs
// matches it: dependency order, ordered stateful start, restart with backoff,
// health checks, rolling restarts.
//
// Threading: everything runs on the server's single event-loop thread;
// methods must be called from it. Completion callbacks run on it too.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "runtime/driver.h"
#include "spec/model.h"
#include "spec/parser.h"
#include "state/service_registry.h"
#include "state/state_store.h"
#include "supervisor/log_hub.h"
#include "supervisor/replica_credentials.h"

namespace zeppelin::supervisor {

enum class ReplicaState { kStarting, kRunning, kStopping, kStopped, kBackoff, kFailed };
enum class Health { kNone, kStarting, kHealthy, kUnhealthy };
const char* to_string(ReplicaState s);
const char* to_string(Health h);

struct ReplicaStatus {
  std::string system;
  std::string service;
  int replica = 0;
  ReplicaState state = ReplicaState::kStopped;
  Health health = Health::kNone;
  int pid = 0;
  int restarts = 0;
  std::string address;       // host[:port]
  std::string last_exit;     // "" if it never exited
  double uptime_seconds = 0; // 0 when not running
  std::string detail;        // why it is failed or backing off
};

struct SystemSummary {
  std::string name;
  std::string spec_file;
  bool running = false;      // desired
  int replicas = 0;          // desired in total
  int ready = 0;
};

// Outcome of wait_ready: ok, or which replica failed and its last log lines.
struct ReadyReport {
  bool ok = false;
  std::string message;
  std::string replica;       // "service/ordinal" that failed, if one did
  std::vector<std::string> last_lines;
};

// Replicas get loopback addresses of their own, 127.X.0.1 to 127.X.255.254:
// no server can run more.
inline constexpr int kReplicaAddressPoolSize = 254 * 256;

struct SupervisorOptions {
  std::string home;                                // data directory
  std::int64_t log_max_bytes = 10 * 1024 * 1024;   // per file before rotation
  int log_keep_files = 3;
  std::chrono::milliseconds backoff_base{100};
  std::chrono::milliseconds backoff_cap{30000};
  std::chrono::milliseconds stable_after{10000};   // uptime that resets the backoff
  std::chrono::milliseconds settle_time{500};      // wait_ready: uptime that makes a replica without health check ready
  // Where ready replicas are announced for service discovery; none when null.
  state::ServiceRegistry* registry = nullptr;
  // The coordination store's URLs, given to replicas as ZEPPELIN_ETCD_ENDPOINTS
  // (unless their system names an etcd cluster of its own).
  std::vector<std::string> etcd_endpoints;
  // The CA file replicas trust for https:// etcd_endpoints (ZEPPELIN_ETCD_CACERT):
  // a copy in public/ (home_modes.h) that `user:` accounts may read; containers
  // see it read-only at kContainerEtcdCaFile.
  std::string etcd_ca_file;
  // Tokens for replicas of systems using etcd_endpoints (store.user, default
  // root) when that store has auth enabled; none when null. Must outlive the supervisor.
  ReplicaCredentials* credentials = nullptr;
  // How large a system may be (--max-spec-bytes, --max-services-per-system,
  // --max-replicas-per-system), and how many replicas all systems together
  // may want (--max-replicas, at most the address pool). Applied to every
  // spec, scale and record read from the store.
  spec::Limits limits;
  int max_replicas = kReplicaAddressPoolSize;
  // The second octet X of the 127.X.0.0/16 block replicas' addresses come
  // from. Unset: derived from home, passing over blocks where something
  // listens (which reads /proc/net/tcp, slow on hosts with a large TCP table).
  std::optional<int> address_block;
  // Time and timers (backoff, grace periods, health intervals, waits); null:
  // the steady clock on the loop. Must outlive the supervisor.
  Clock* clock = nullptr;
};

// Where a container replica finds the etcd CA (a read-only bind mount).
inline constexpr const char* kContainerEtcdCaFile = "/run/zeppelin/etcd-ca.pem";

class Supervisor {
 public:
  Supervisor(boost::asio::io_context& io, runtime::Driver& driver, state::StateStore& store, SupervisorOptions options);
  ~Supervisor();

  // Loads persisted systems, ends leftovers of a previous server, converges.
  // From then on, changes of desired state that others write to the state
  // store (when it reports them) are picked up and reconciled.
  Status recover();

  // Adds or replaces a system and wants it running. Replicas whose service
  // definition changed are replaced one at a time.
  // Returns the system's name.
  Result<std::string> apply(state::SystemRecord record);
  // The same, with the spec parsed and checked on a worker thread: a spec of
  // thousands of services takes a good part of a second to parse, which the
  // event loop (and every other request) must not wait for. `done` runs on
  // the loop; applies complete in the order they were asked.
  void apply(state::SystemRecord record, std::function<void(Result<std::string>)> done);
  // Wants a registered system running again, as it was last applied.
  Status start(const std::string& system);
  // Wants the system stopped; `done` runs once every replica has exited.
  Status stop(const std::string& system, std::function<void()> done);
  // Stops and forgets the system, deleting its logs (and volumes if asked).
  Status remove(const std::string& system, bool volumes, std::function<void()> done);
  Status scale(const std::string& system, const std::string& service, int replicas);
  // Rolling restart of one service, or of every service in dependency order.
  Status restart(const std::string& system, const std::optional<std::string>& service);
  // Calls `done` when every desired replica is running and healthy, or when
  // one fails, or after `timeout`.
  Status wait_ready(const std::string& system, std::chrono::milliseconds timeout, std::function<void(ReadyReport)> done);

  std::vector<SystemSummary> systems() const;
  Result<std::vector<ReplicaStatus>> replicas(const std::optional<std::string>& system) const;
  // The same, built a slice at a time (50,000 replicas take tens of
  // milliseconds), so that the event loop is never held for long. `done` is
  // called on the loop; a replica that changes meanwhile is listed as it was
  // when its slice ran.
  void replicas(const std::optional<std::string>& system, std::function<void(Result<std::vector<ReplicaStatus>>)> done);
  // Log files of the matching replicas, in service/ordinal order.
  Result<std::vector<std::pair<LogLine, std::string>>> log_files(const LogFilter& filter) const;
  int log_keep_files() const { return options_.log_keep_files; }
  LogHub& logs() { return hub_; }

  // Stops every replica (keeping desired state), then calls `done`.
  void shutdown(std::function<void()> done);

 private:
  struct Replica;
  struct SystemRuntime;
  struct ReplicaListing;

  // What replicas() lists, in order, without building any status yet.
  std::shared_ptr<ReplicaListing> plan_listing(const std::optional<std::string>& system) const;
  // Builds the statuses of `listing`'s rows until all are built (returns
  // true) or, with a deadline, until it passes (returns false).
  bool build_listing(ReplicaListing& listing, std::optional<std::chrono::steady_clock::time_point> deadline) const;

  // Parses and checks a record's spec. Reads nothing but its argument and
  // options_, so it may run on the spec worker.
  Result<std::unique_ptr<SystemRuntime>> make_runtime(state::SystemRecord record) const;
  Result<std::string> apply_runtime(std::unique_ptr<SystemRuntime> rt);
  SystemRuntime* find(const std::string& name) const;
  void schedule_reconcile();
  void reconcile();
  // Desired state changed in the store at `revision` (0: unknown).
  void on_desired_changed(int64_t revision);
  void reload_desired();
  // Takes a new spec (and everything else of `fresh` but scale, running and
  // history) into a known system; replicas whose definition changed are queued for a rolling replacement.
  void replace_spec(SystemRuntime& existing, SystemRuntime& fresh);
  // Announces ready replicas and withdraws the others (options_.registry).
  void sync_announcements();
  void reconcile_running(SystemRuntime& sys);
  // True once this pass has done something and used up its time.
  bool pass_spent() const;
  // Replicas are started from a queue, a batch at a time (drain_starts).
  void queue_start(const std::shared_ptr<Replica>& r);
  void drain_starts();
  void reconcile_stopping(SystemRuntime& sys);
  // The service's ZEPPELIN_PEERS list for its desired replicas (made if need be), kept until they change.
  const std::string& address_list(SystemRuntime& sys, const spec::Service& svc);
  void advance_rollout(SystemRuntime& sys);
  void check_waiters();

  // The replica at `ordinal`, created if missing; the reference is to its slot in sys.replicas.
  const std::shared_ptr<Replica>& ensure_replica(SystemRuntime& sys, const spec::Service& svc, int ordinal);
  void start_replica(SystemRuntime& sys, const std::shared_ptr<Replica>& r);
  // A replica that could not even be started: a crash, or a failure under `restart: never`.
  void start_failed(SystemRuntime& sys, const std::shared_ptr<Replica>& r, const spec::Service& svc, const std::string& why);
  void stop_replica(SystemRuntime& sys, const std::shared_ptr<Replica>& r);
  void on_exit(const std::shared_ptr<Replica>& r, const runtime::ExitStatus& status);
  void on_crash(SystemRuntime& sys, const std::shared_ptr<Replica>& r, const std::string& reason);
  void schedule_probe(const std::shared_ptr<Replica>& r, std::chrono::milliseconds delay);
  void run_probe(const std::shared_ptr<Replica>& r);
  void on_probe_result(const std::shared_ptr<Replica>& r, std::uint64_t instance_id, bool ok);
  void event(const Replica& r, const std::string& text);

  bool alive(const Replica& r) const;
  bool any_alive(const SystemRuntime& sys) const;
  bool ready(const Replica& r) const;
  bool service_ready(const SystemRuntime& sys, const spec::Service& svc) const;
  int desired_replicas(const SystemRuntime& sys, const spec::Service& svc) const;
  std::string allocate_address(SystemRuntime& sys, const std::string& key);
  // Paths under the data directory, built only from names that are DNS labels.
  Result<std::string> volume_dir(const SystemRuntime& sys, const std::string& service, int ordinal,
                                 const std::string& volume) const;
  Result<std::string> log_dir(const std::string& system, const std::string& service) const;
  // A `user:` account may pass through (search, not list) every directory from
  // the data directory down to its replica's volumes, and to public/ for the
  // etcd CA's copy (traverse_acl.h). Granted before each start; revoked when the
  // system is removed, from the data directory, volumes/ and public/ only if no
  // other system runs a service as that uid.
  Status grant_passage(const SystemRuntime& sys, const spec::Service& svc, int ordinal) const;
  void revoke_passage(const SystemRuntime& removed) const;
  ReplicaStatus status_of(const SystemRuntime& sys, const Replica& r) const;

  void mark_dirty();  // replica history changed: persist soon
  void persist();     // desired state changed: persist now, before answering

  boost::asio::io_context& io_;
  runtime::Driver& driver_;
  state::StateStore& store_;
  SupervisorOptions options_;
  std::unique_ptr<Clock> own_clock_;  // when options_.clock is null
  Clock& clock_;
  LogHub hub_;
  std::map<std::string, std::unique_ptr<SystemRuntime>> systems_;
  std::vector<state::SystemRecord> unrestorable_;  // persisted systems whose spec no longer loads
  static constexpr int kAddressPoolSize = kReplicaAddressPoolSize;
  void release_address(const std::string& address);
  // Frees a removed system's replicas and addresses, a slice per turn of the loop.
  void dispose(std::unique_ptr<SystemRuntime> sys);
  // Replicas the other systems (not being removed) want, at their current scale.
  int replicas_wanted_by_others(const std::string& name) const;
  // Whether system `name` may want what `spec` at `scale` asks, within the
  // limits per system and per server (the other systems as they are).
  Status check_replica_limits(const std::string& name, const spec::System& spec,
                              const std::map<std::string, int>& scale) const;
  std::set<std::string> used_addresses_;
  int address_cursor_ = 0;  // every pool index below it is taken
  int address_base_ = 1;  // second octet of this home's 127.X.0.0/16 block
  bool reconcile_posted_ = false;
  // The current reconcile pass: when it should yield, and what it did so far
  // (a pass always does at least one thing, so that reconciling progresses).
  std::chrono::steady_clock::time_point pass_deadline_;
  int pass_actions_ = 0;
  std::deque<std::shared_ptr<Replica>> start_queue_;
  bool drain_posted_ = false;
  bool persist_posted_ = false;
  std::unique_ptr<Timer> persist_timer_;
  bool shutting_down_ = false;
  std::function<void()> shutdown_done_;
  std::uint64_t next_instance_id_ = 1;
  std::mt19937 rng_;

  struct ReadyWaiter;
  std::vector<std::shared_ptr<ReadyWaiter>> waiters_;

  std::unique_ptr<state::StateWatch> desired_watch_;
  // Handlers posted from the store's threads check it: the loop may outlive the supervisor.
  std::shared_ptr<bool> lifetime_ = std::make_shared<bool>(true);
  // Parses specs for apply(record, done). Last member: joined first, while
  // everything its tasks use still exists.
  boost::asio::thread_pool spec_worker_{1};
};

}  // namespace zeppelin::supervisor
