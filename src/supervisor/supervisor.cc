#include "supervisor/supervisor.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/fs_util.h"
#include "common/home_modes.h"
#include "common/log.h"
#include "common/traverse_acl.h"
#include "secrets/secrets.h"
#include "spec/parser.h"
#include "supervisor/probes.h"
#include "supervisor/replica_env.h"

namespace zeppelin::supervisor {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

const char* to_string(ReplicaState s) {
  switch (s) {
    case ReplicaState::kStarting: return "starting";
    case ReplicaState::kRunning: return "running";
    case ReplicaState::kStopping: return "stopping";
    case ReplicaState::kStopped: return "stopped";
    case ReplicaState::kBackoff: return "backoff";
    case ReplicaState::kFailed: return "failed";
  }
  return "unknown";
}

const char* to_string(Health h) {
  switch (h) {
    case Health::kNone: return "none";
    case Health::kStarting: return "starting";
    case Health::kHealthy: return "healthy";
    case Health::kUnhealthy: return "unhealthy";
  }
  return "unknown";
}

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

namespace {

// The second octets X of 127.X.0.0/16 on which some socket listens (from
// /proc/net/tcp, where an address is 8 hex digits in little-endian order:
// 127.103.0.1 is 0100677F).
std::set<int> loopback_blocks_listened_on() {
  std::set<int> blocks;
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    if (!(fields >> slot >> local >> remote >> state) || state != "0A" || local.size() < 8) continue;  // 0A: LISTEN
    if (local.compare(6, 2, "7F") != 0) continue;
    blocks.insert(std::stoi(local.substr(4, 2), nullptr, 16));
  }
  return blocks;
}

// Each data directory gets its own 127.X.0.0/16 block, so that servers with
// different homes (tests, users) do not hand out the same addresses. Two homes
// may hash alike; a block where something (another server's replicas) already
// listens is passed over for the next free one.
int free_address_block(const std::string& home) {
  int block = 16 + static_cast<int>(std::hash<std::string>{}(home) % 200);
  const std::set<int> taken = loopback_blocks_listened_on();
  for (int tries = 0; tries < 200 && taken.count(block); ++tries) block = 16 + (block - 15) % 200;
  return block;
}

constexpr milliseconds kPersistDelay{50};
// How long one reconcile pass may go on creating replicas, or one batch of
// starts go on starting them, before yielding to the rest of the event loop
// (the API, probes, exits): starting 1,000 processes takes seconds.
constexpr milliseconds kReconcilePassBudget{10};
// How long one slice of a replica listing may hold the event loop.
constexpr milliseconds kListingSlice{5};
// Until its first success a check runs at least this often, so readiness is
// noticed soon after it happens (Docker calls this start_interval).
constexpr milliseconds kStartupProbeInterval{100};

// Everything about a service that a running replica depends on; a change
// means its replicas must be replaced.
std::string fingerprint(const spec::Service& svc) {
  std::ostringstream out;
  for (const auto& a : svc.command) out << a << '\x1f';
  out << '|' << svc.shell << '|' << svc.workdir << '|';
  for (const auto& [k, v] : svc.env) out << k << '=' << v << '\x1f';
  for (const auto& s : svc.secret_env) out << s.variable << "=secret:" << s.secret.name << '/' << s.secret.key << '\x1f';
  for (const auto& p : svc.ports) out << p.name << ':' << p.port << ',';
  out << '|' << svc.resources.cpu_millis.value_or(0) << '|' << svc.resources.memory_bytes.value_or(0) << '|';
  for (const auto& v : svc.volumes) out << v.name << ':' << v.path << ':' << v.source.value_or("") << ':' << v.read_only << ',';
  for (const auto& d : svc.depends_on) out << d << ',';
  out << '|' << svc.image << '|';
  if (svc.entrypoint) {
    for (const auto& a : *svc.entrypoint) out << a << '\x1f';
  }
  if (svc.run_as) out << "|as " << svc.run_as->uid << ':' << svc.run_as->gid;
  return out.str();
}

std::string replica_key(const std::string& service, int ordinal) { return service + "/" + std::to_string(ordinal); }

}  // namespace

Supervisor::Supervisor(asio::io_context& io, runtime::Driver& driver, state::StateStore& store, SupervisorOptions options)
    : io_(io),
      driver_(driver),
      store_(store),
      options_(std::move(options)),
      own_clock_(options_.clock ? nullptr : std::make_unique<SteadyClock>(io)),
      clock_(options_.clock ? *options_.clock : *own_clock_),
      persist_timer_(clock_.make_timer()),
      rng_(std::random_device{}()) {
  address_base_ = options_.address_block ? *options_.address_block : free_address_block(options_.home);
}

Supervisor::~Supervisor() = default;

Result<std::unique_ptr<Supervisor::SystemRuntime>> Supervisor::make_runtime(state::SystemRecord record) const {
  const std::string base = fs::path(record.spec_file).parent_path().string();
  auto parsed = spec::parse_spec(record.spec_text, record.spec_file, base, options_.limits);
  if (!parsed) return parsed.error();
  if (record.name.empty()) record.name = parsed->name;
  if (parsed->name != record.name) {
    return make_error(Errc::kInvalidArgument, "system name \"" + parsed->name + "\" does not match \"" + record.name + "\"");
  }
  // Catch unknown ${VAR}s now rather than when a replica starts.
  for (const auto& svc : parsed->services) {
    ReplicaIdentity id;
    id.system = &*parsed;
    id.service = &svc;
    id.replicas = svc.replicas;
    id.host = "127.0.0.1";
    id.etcd_endpoints = options_.etcd_endpoints;
    id.etcd_ca_file = options_.etcd_ca_file;
    for (const auto& dep : svc.depends_on) id.dependencies[dep] = {};
    for (const auto& v : svc.volumes) id.volumes[v.name] = v.source.value_or("");
    auto env = build_launch_env(id, record.caller_env);
    if (!env) return make_error(Errc::kInvalidArgument, record.spec_file + ": " + env.error().message);
  }
  auto rt = std::make_unique<SystemRuntime>();
  rt->set_spec(std::move(*parsed));
  for (const auto& svc : rt->spec.services) {
    // A rebuilt image (same tag, new ID) changes the service like any edit would.
    auto id = record.images.find(svc.name);
    rt->fingerprints[svc.name] = fingerprint(svc) + (id == record.images.end() ? "" : id->second);
  }
  rt->record = std::move(record);
  return rt;
}

Supervisor::SystemRuntime* Supervisor::find(const std::string& name) const {
  auto it = systems_.find(name);
  return it == systems_.end() ? nullptr : it->second.get();
}

Status Supervisor::recover() {
  auto records = store_.load();
  if (!records) return records.error();
  for (auto& record : *records) {
    const std::string name = record.name;
    if (!record.unreadable.empty()) continue;  // logged by the state store; nothing to restore
    auto rt = make_runtime(record);
    if (!rt) {
      // Kept (and persisted) as it was, so that fixing the cause and running
      // it again loses nothing.
      log::error("cannot restore system {}: {}", name, rt.error().message);
      unrestorable_.push_back(std::move(record));
      continue;
    }
    if (auto s = check_replica_limits(name, (*rt)->spec, (*rt)->record.scale); !s) {
      log::error("cannot restore system {}: {}", name, s.error().message);
      unrestorable_.push_back(std::move((*rt)->record));
      continue;
    }
    for (const auto& [key, rep] : (*rt)->record.replicas) used_addresses_.insert(rep.address);
    systems_[name] = std::move(*rt);
  }
  // What the previous server left running may be adopted where it is still
  // wanted (containers can be; processes cannot and are ended).
  std::set<std::string> wanted;
  for (const auto& [name, sys] : systems_) {
    if (!sys->record.running) continue;
    for (const auto& svc : sys->spec.services) {
      for (int i = 0; i < desired_replicas(*sys, svc); ++i) wanted.insert(name + "/" + replica_key(svc.name, i));
    }
  }
  const int ended = driver_.reap_leftovers([&wanted](const std::string& id) { return wanted.count(id) > 0; });
  if (options_.credentials) options_.credentials->retain([&wanted](const std::string& id) { return wanted.count(id) > 0; });
  if (ended > 0) log::info("recovering: ended {} replica(s) of the previous server", ended);
  if (options_.registry) {
    // Announcements of a server that died without withdrawing them.
    for (const auto& record : *records) options_.registry->withdraw_all(record.name);
  }
  auto watch = store_.watch([this, &io = io_, alive = std::weak_ptr<bool>(lifetime_)](int64_t revision) {
    asio::post(io, [this, alive, revision] {
      if (alive.lock()) on_desired_changed(revision);
    });
  });
  if (!watch) return watch.error();
  desired_watch_ = std::move(*watch);
  schedule_reconcile();
  return ok_status();
}

void Supervisor::on_desired_changed(int64_t revision) {
  if (revision != 0 && store_.own_write(revision)) return;  // written by persist(): already in effect
  reload_desired();
}

void Supervisor::reload_desired() {
  if (shutting_down_) return;
  auto records = store_.load();
  if (!records) {
    log::error("cannot read desired state from the store: {}", records.error().message);
    return;
  }
  bool changed = false;
  std::set<std::string> present;
  for (auto& record : *records) {
    const std::string name = record.name;
    present.insert(name);
    if (!record.unreadable.empty()) continue;  // a bad write: logged, and what runs is left alone
    SystemRuntime* sys = find(name);
    if (sys && sys->removing) continue;
    if (!sys) {
      auto kept = std::find_if(unrestorable_.begin(), unrestorable_.end(),
                               [&](const state::SystemRecord& r) { return r.name == name; });
      if (kept != unrestorable_.end() && kept->spec_text == record.spec_text && kept->spec_file == record.spec_file &&
          kept->caller_env == record.caller_env && kept->images == record.images) {
        // Still the spec that does not load (reported at recovery): keep what else changed.
        kept->scale = record.scale;
        kept->running = record.running;
        continue;
      }
    }
    const bool new_spec = !sys || sys->record.spec_text != record.spec_text || sys->record.spec_file != record.spec_file ||
                          sys->record.caller_env != record.caller_env || sys->record.images != record.images;
    std::unique_ptr<SystemRuntime> fresh;
    if (new_spec) {
      auto rt = make_runtime(record);
      Status supported = ok_status();
      if (rt) {
        for (const auto& svc : (*rt)->spec.services) {
          if (auto s = driver_.supports(svc); !s && supported) supported = s;
        }
      }
      if (!rt || !supported) {
        log::error("ignoring the store's new desired state of system {}: {}", name,
                   (!rt ? rt.error() : supported.error()).message);
        continue;
      }
      fresh = std::move(*rt);
    }
    if (auto s = check_replica_limits(name, fresh ? fresh->spec : sys->spec, record.scale); !s) {
      log::error("ignoring the store's new desired state of system {}: {}", name, s.error().message);
      continue;
    }
    if (!sys) {
      log::info("system {} added through the store", name);
      std::erase_if(unrestorable_, [&](const state::SystemRecord& r) { return r.name == name; });
      for (const auto& [key, rep] : fresh->record.replicas) used_addresses_.insert(rep.address);
      systems_[name] = std::move(fresh);
      changed = true;
      continue;
    }
    if (fresh) {
      log::info("system {}: new spec from the store", name);
      replace_spec(*sys, *fresh);
      changed = true;
    }
    if (record.scale != sys->record.scale) {
      log::info("system {}: new scale from the store", name);
      sys->record.scale = record.scale;
      changed = true;
    }
    if (record.running != sys->record.running) {
      log::info("system {}: {} through the store", name, record.running ? "started" : "stopped");
      sys->record.running = record.running;
      if (!record.running) sys->rollout.clear();
      changed = true;
    }
  }
  for (auto& [name, sys] : systems_) {
    if (present.count(name) || sys->removing) continue;
    log::info("system {} removed through the store", name);
    sys->removing = true;
    sys->record.running = false;
    sys->rollout.clear();
    changed = true;
  }
  std::erase_if(unrestorable_, [&](const state::SystemRecord& r) { return !present.count(r.name); });
  if (changed) {
    mark_dirty();  // replica history of added systems; desired state is already stored
    schedule_reconcile();
  }
}

Result<std::string> Supervisor::apply(state::SystemRecord record) {
  if (shutting_down_) return make_error(Errc::kUnavailable, "the server is shutting down");
  auto rt = make_runtime(std::move(record));
  if (!rt) return rt.error();
  return apply_runtime(std::move(*rt));
}

void Supervisor::apply(state::SystemRecord record, std::function<void(Result<std::string>)> done) {
  if (shutting_down_) return done(make_error(Errc::kUnavailable, "the server is shutting down"));
  asio::post(spec_worker_, [this, lifetime = std::weak_ptr<bool>(lifetime_), record = std::move(record),
                            done = std::move(done)]() mutable {
    auto rt = make_runtime(std::move(record));
    asio::post(io_, [this, lifetime, rt = std::move(rt), done = std::move(done)]() mutable {
      if (lifetime.expired()) return;
      if (!rt) return done(rt.error());
      if (shutting_down_) return done(make_error(Errc::kUnavailable, "the server is shutting down"));
      done(apply_runtime(std::move(*rt)));
    });
  });
}

Result<std::string> Supervisor::apply_runtime(std::unique_ptr<SystemRuntime> rt) {
  for (const auto& svc : rt->spec.services) {
    if (auto supported = driver_.supports(svc); !supported) return supported.error();
  }
  const std::string name = rt->record.name;
  // A new spec takes back any scale: the file is the truth again.
  if (auto s = check_replica_limits(name, rt->spec, {}); !s) return s.error();
  std::erase_if(unrestorable_, [&](const state::SystemRecord& r) { return r.name == name; });
  SystemRuntime* existing = find(rt->record.name);
  if (!existing) {
    rt->record.running = true;
    rt->record.replicas.clear();
    rt->record.scale.clear();
    systems_[name] = std::move(rt);
  } else {
    if (existing->removing) return make_error(Errc::kUnavailable, "system " + existing->record.name + " is being removed");
    existing->record.scale.clear();  // the file is the truth again
    existing->record.running = true;
    replace_spec(*existing, *rt);
  }
  persist();
  schedule_reconcile();
  return name;
}

void Supervisor::replace_spec(SystemRuntime& existing, SystemRuntime& fresh) {
  existing.record.spec_text = fresh.record.spec_text;
  existing.record.spec_file = fresh.record.spec_file;
  existing.record.caller_env = fresh.record.caller_env;
  existing.record.images = fresh.record.images;
  existing.set_spec(std::move(fresh.spec));
  existing.fingerprints = std::move(fresh.fingerprints);
  for (const spec::Service* svc : existing.spec.dependency_order()) {
    auto& reps = existing.replicas[svc->name];
    std::vector<std::shared_ptr<Replica>> ordered(reps.begin(), reps.end());
    if (svc->mode == spec::Mode::kStateful) std::reverse(ordered.begin(), ordered.end());
    for (auto& r : ordered) {
      if (!r) continue;
      if (r->state == ReplicaState::kFailed || (r->state == ReplicaState::kStopped && !r->needs_start)) {
        r->state = ReplicaState::kStopped;
        r->needs_start = true;
      }
      if (alive(*r) && r->fingerprint != existing.fingerprints[svc->name] &&
          std::find(existing.rollout.begin(), existing.rollout.end(), r->key) == existing.rollout.end()) {
        existing.rollout.push_back(r->key);
      }
    }
  }
}

Status Supervisor::stop(const std::string& name, std::function<void()> done) {
  SystemRuntime* sys = find(name);
  if (!sys) return make_error(Errc::kNotFound, "no system named \"" + name + "\"");
  sys->record.running = false;
  sys->rollout.clear();
  if (done) sys->stopped_waiters.push_back(std::move(done));
  persist();
  schedule_reconcile();
  return ok_status();
}

Status Supervisor::remove(const std::string& name, bool volumes, std::function<void()> done) {
  SystemRuntime* sys = find(name);
  if (!sys) return make_error(Errc::kNotFound, "no system named \"" + name + "\"");
  sys->removing = true;
  sys->remove_volumes = sys->remove_volumes || volumes;
  return stop(name, std::move(done));
}

Status Supervisor::scale(const std::string& name, const std::string& service, int replicas) {
  SystemRuntime* sys = find(name);
  if (!sys) return make_error(Errc::kNotFound, "no system named \"" + name + "\"");
  if (!sys->service(service)) {
    return make_error(Errc::kNotFound, "system \"" + name + "\" has no service \"" + service + "\"");
  }
  if (replicas < 0 || replicas > 10000) return make_error(Errc::kInvalidArgument, "replicas must be between 0 and 10000");
  auto scale = sys->record.scale;
  scale[service] = replicas;
  if (auto s = check_replica_limits(name, sys->spec, scale); !s) return s;
  sys->record.scale = std::move(scale);
  persist();
  schedule_reconcile();
  return ok_status();
}

Status Supervisor::start(const std::string& name) {
  SystemRuntime* sys = find(name);
  if (!sys) return make_error(Errc::kNotFound, "no system named \"" + name + "\"");
  if (sys->removing) return make_error(Errc::kUnavailable, "system " + name + " is being removed");
  sys->record.running = true;
  persist();
  schedule_reconcile();
  return ok_status();
}

Status Supervisor::restart(const std::string& name, const std::optional<std::string>& service) {
  SystemRuntime* sys = find(name);
  if (!sys) return make_error(Errc::kNotFound, "no system named \"" + name + "\"");
  if (service && !sys->service(*service)) {
    return make_error(Errc::kNotFound, "system \"" + name + "\" has no service \"" + *service + "\"");
  }
  if (sys->removing) return make_error(Errc::kUnavailable, "system " + name + " is being removed");
  sys->record.running = true;
  for (const spec::Service* svc : sys->spec.dependency_order()) {
    if (service && svc->name != *service) continue;
    const int want = desired_replicas(*sys, *svc);
    for (int i = 0; i < want; ++i) {
      const int ordinal = svc->mode == spec::Mode::kStateful ? want - 1 - i : i;
      const std::string key = replica_key(svc->name, ordinal);
      if (std::find(sys->rollout.begin(), sys->rollout.end(), key) == sys->rollout.end()) sys->rollout.push_back(key);
    }
  }
  persist();
  schedule_reconcile();
  return ok_status();
}

Status Supervisor::wait_ready(const std::string& name, milliseconds timeout, std::function<void(ReadyReport)> done) {
  SystemRuntime* sys = find(name);
  if (!sys) return make_error(Errc::kNotFound, "no system named \"" + name + "\"");
  auto waiter = std::make_shared<ReadyWaiter>(clock_);
  waiter->system = name;
  waiter->done = std::move(done);
  for (const auto& [key, rep] : sys->record.replicas) waiter->baseline_restarts[key] = rep.restarts;
  waiter->deadline->schedule_at(clock_.now() + timeout, [this, w = std::weak_ptr<ReadyWaiter>(waiter), timeout] {
    auto waiter = w.lock();
    if (!waiter || waiter->finished) return;
    waiter->finished = true;
    ReadyReport report;
    report.message = "not ready after " + format_duration(timeout);
    if (SystemRuntime* sys = find(waiter->system)) {
      for (const auto& [service, reps] : sys->replicas) {
        for (const auto& r : reps) {
          if (r && !ready(*r)) {
            report.message += "; " + r->key + " is " + to_string(r->state);
            if (r->health == Health::kStarting || r->health == Health::kUnhealthy) report.message += " (health: " + std::string(to_string(r->health)) + ")";
            if (report.replica.empty()) {
              report.replica = r->key;
              if (r->log) report.last_lines = r->log->recent();
            }
          }
        }
      }
    }
    waiter->done(report);
  });
  waiters_.push_back(waiter);
  schedule_reconcile();
  return ok_status();
}

void Supervisor::check_waiters() {
  for (auto& w : waiters_) {
    if (w->finished) continue;
    SystemRuntime* sys = find(w->system);
    ReadyReport report;
    bool decided = false;
    if (!sys || sys->removing || !sys->record.running) {
      report.message = "system " + w->system + " was stopped";
      decided = true;
    } else {
      bool all_ready = true;
      std::optional<Clock::time_point> settles;
      for (const spec::Service* svc : sys->spec.dependency_order()) {
        const int want = desired_replicas(*sys, *svc);
        auto& reps = sys->replicas[svc->name];
        for (int i = 0; i < want && !decided; ++i) {
          const Replica* r = i < static_cast<int>(reps.size()) ? reps[i].get() : nullptr;
          if (!r || !ready(*r)) all_ready = false;
          if (!r) continue;
          // Without a health check, "ready" needs a replica to stay up a
          // moment, so that one crashing at start-up is reported, not missed.
          if (ready(*r) && !svc->health && clock_.now() - r->started_at < options_.settle_time) {
            all_ready = false;
            const auto at = r->started_at + options_.settle_time;
            if (!settles || at < *settles) settles = at;
          }
          const int restarts = sys->record.replicas[r->key].restarts;
          const bool crashed = restarts > w->baseline_restarts[r->key];
          if (r->state == ReplicaState::kFailed || crashed || (r->state == ReplicaState::kStopped && !r->needs_start)) {
            report.replica = r->key;
            report.message = "replica " + r->key + " failed: " + (r->detail.empty() ? r->last_exit : r->detail);
            if (r->log) report.last_lines = r->log->recent();
            decided = true;
          }
        }
      }
      if (!decided && all_ready && sys->rollout.empty()) {
        report.ok = true;
        report.message = "all replicas running";
        decided = true;
      }
      if (!decided && settles) {
        w->recheck->schedule_at(*settles, [this] { schedule_reconcile(); });
      }
    }
    if (decided) {
      w->finished = true;
      w->deadline->cancel();
      w->recheck->cancel();
      w->done(report);
    }
  }
  waiters_.erase(std::remove_if(waiters_.begin(), waiters_.end(), [](const auto& w) { return w->finished; }), waiters_.end());
}

void Supervisor::shutdown(std::function<void()> done) {
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  for (auto& w : waiters_) {
    if (w->finished) continue;
    w->finished = true;
    w->deadline->cancel();
    w->done(ReadyReport{false, "the server is shutting down", "", {}});
  }
  waiters_.clear();
  schedule_reconcile();
}

void Supervisor::schedule_reconcile() {
  if (reconcile_posted_) return;
  reconcile_posted_ = true;
  asio::post(io_, [this] {
    reconcile_posted_ = false;
    reconcile();
  });
}

void Supervisor::queue_start(const std::shared_ptr<Replica>& r) {
  if (r->start_queued) return;
  r->start_queued = true;
  start_queue_.push_back(r);
  if (drain_posted_) return;
  drain_posted_ = true;
  asio::post(io_, [this] {
    drain_posted_ = false;
    drain_starts();
  });
}

// Starting a replica (a fork and exec, or a container create) takes
// milliseconds: a batch of starts yields to the rest of the event loop once
// it has run for kReconcilePassBudget, and the next batch follows.
void Supervisor::drain_starts() {
  const auto deadline = std::chrono::steady_clock::now() + kReconcilePassBudget;
  bool started = false;
  while (!start_queue_.empty()) {
    if (started && std::chrono::steady_clock::now() >= deadline) {
      drain_posted_ = true;
      asio::post(io_, [this] {
        drain_posted_ = false;
        drain_starts();
      });
      return;
    }
    std::shared_ptr<Replica> r = std::move(start_queue_.front());
    start_queue_.pop_front();
    r->start_queued = false;
    // Still wanted as it was when queued? A stop, scale-down or removal since then wins.
    SystemRuntime* sys = find(r->system);
    if (!sys || shutting_down_ || !sys->record.running || sys->removing) continue;
    auto reps = sys->replicas.find(r->service);
    if (reps == sys->replicas.end() || r->ordinal >= static_cast<int>(reps->second.size()) ||
        reps->second[r->ordinal] != r) {
      continue;
    }
    if (r->state != ReplicaState::kStopped || !r->needs_start) continue;
    start_replica(*sys, r);
    started = true;
  }
  // What the starts changed (waiters, dependents, the next ordinal) in one pass.
  schedule_reconcile();
}

bool Supervisor::pass_spent() const {
  return pass_actions_ > 0 && std::chrono::steady_clock::now() >= pass_deadline_;
}

void Supervisor::reconcile() {
  pass_deadline_ = std::chrono::steady_clock::now() + kReconcilePassBudget;
  pass_actions_ = 0;
  // Withdraws what stopped since the last pass before anything restarts it,
  // so that a watcher sees a crashed replica go and come back.
  sync_announcements();
  std::vector<std::string> finished;
  // Run after the removals below: a waiter's reply may reach its client at once.
  std::vector<std::function<void()>> stopped_callbacks;
  for (auto& [name, sys] : systems_) {
    if (sys->record.running && !shutting_down_) {
      reconcile_running(*sys);
    } else {
      reconcile_stopping(*sys);
      if (!any_alive(*sys)) {
        auto waiters = std::move(sys->stopped_waiters);
        sys->stopped_waiters.clear();
        if (sys->removing) finished.push_back(name);
        for (auto& w : waiters) stopped_callbacks.push_back(std::move(w));
      }
    }
  }
  for (const auto& name : finished) {
    SystemRuntime* sys = find(name);
    std::error_code ec;
    if (spec::is_dns_label(name)) {  // never a path outside logs/ and volumes/
      fs::remove_all(options_.home + "/logs/" + name, ec);
      if (sys->remove_volumes) fs::remove_all(options_.home + "/volumes/" + name, ec);
    }
    revoke_passage(*sys);
    auto gone = systems_.extract(name);
    dispose(std::move(gone.mapped()));
    log::info("system {} removed", name);
    hub_.end_system(name);
    persist();
  }
  for (auto& callback : stopped_callbacks) callback();
  sync_announcements();
  check_waiters();
  if (shutting_down_ && shutdown_done_) {
    const bool replicas_left =
        std::any_of(systems_.begin(), systems_.end(), [this](const auto& entry) { return any_alive(*entry.second); });
    if (!replicas_left) {
      persist();
      auto done = std::move(shutdown_done_);
      shutdown_done_ = nullptr;
      done();
    }
  }
}

void Supervisor::sync_announcements() {
  if (!options_.registry) return;
  for (auto& [name, sys] : systems_) {
    for (auto& [service, reps] : sys->replicas) {
      const spec::Service* svc = sys->service(service);
      for (auto& r : reps) {
        if (!r) continue;
        // The instance that should be announced; 0 for none.
        const std::uint64_t want = svc && alive(*r) && ready(*r) && !shutting_down_ ? r->instance_id : 0;
        if (want == r->announced_instance) continue;
        r->announced_instance = want;
        if (want == 0) {
          options_.registry->withdraw(name, service, r->ordinal);
          continue;
        }
        nlohmann::json doc{{"address", r->host}, {"replica", r->ordinal}, {"ports", nlohmann::json::object()}};
        for (const auto& p : svc->ports) doc["ports"][p.name] = p.port;
        if (svc->is_container()) {
          std::string container = r->instance->describe();  // "container NAME[ (adopted ...)]"
          if (container.starts_with("container ")) container.erase(0, 10);
          doc["container"] = container.substr(0, container.find(' '));
        } else {
          doc["pid"] = r->instance->pid();
        }
        options_.registry->announce(name, service, r->ordinal, doc.dump());
      }
    }
  }
}

void Supervisor::reconcile_running(SystemRuntime& sys) {
  advance_rollout(sys);
  // Services dropped from the spec: stop their replicas, then forget them.
  for (auto it = sys.replicas.begin(); it != sys.replicas.end();) {
    if (sys.service(it->first)) {
      ++it;
      continue;
    }
    bool any_alive = false;
    for (auto& r : it->second) {
      if (r && alive(*r)) {
        any_alive = true;
        if (r->state != ReplicaState::kStopping) stop_replica(sys, r);
      } else if (r) {
        r->timer->cancel();
      }
    }
    it = any_alive ? std::next(it) : sys.replicas.erase(it);
  }

  for (const spec::Service* svc : sys.spec.dependency_order()) {
    auto& reps = sys.replicas[svc->name];
    const int want = desired_replicas(sys, *svc);

    // Scale down from the highest ordinal; stateful ordered services one at a time.
    for (int i = static_cast<int>(reps.size()) - 1; i >= want; --i) {
      auto& r = reps[i];
      if (!r) continue;
      if (alive(*r)) {
        if (r->state != ReplicaState::kStopping) stop_replica(sys, r);
        if (svc->ordered()) break;
      } else {
        r->timer->cancel();
        r->probe_timer->cancel();
        if (i == static_cast<int>(reps.size()) - 1) {
          reps.pop_back();
          sys.address_lists.erase(svc->name);
        }
      }
    }

    bool deps_ready = true;
    for (const auto& dep : svc->depends_on) {
      if (const spec::Service* d = sys.service(dep); d && !service_ready(sys, *d)) deps_ready = false;
    }
    for (int ordinal = 0; ordinal < want; ++ordinal) {
      // Every pass walks the replicas that exist: a few nanoseconds each, so
      // that 50,000 cost well under a millisecond.
      const bool is_new = ordinal >= static_cast<int>(reps.size()) || !reps[ordinal];
      if (is_new && pass_spent()) return schedule_reconcile();
      const std::shared_ptr<Replica>& r = is_new ? ensure_replica(sys, *svc, ordinal) : reps[ordinal];
      if (is_new) ++pass_actions_;
      if (r->state == ReplicaState::kStopped && r->needs_start && deps_ready) queue_start(r);
      if (svc->ordered() && !ready(*r)) break;  // the next ordinal waits for this one
    }
  }
}

void Supervisor::reconcile_stopping(SystemRuntime& sys) {
  auto has_alive = [&](const std::string& service) {
    auto it = sys.replicas.find(service);
    if (it == sys.replicas.end()) return false;
    return std::any_of(it->second.begin(), it->second.end(), [&](const auto& r) { return r && alive(*r); });
  };
  // Dependents stop before what they depend on: the services some live replica depends on wait.
  std::unordered_set<std::string_view> awaited;
  for (const auto& other : sys.spec.services) {
    if (other.depends_on.empty() || !has_alive(other.name)) continue;
    for (const auto& dep : other.depends_on) awaited.insert(dep);
  }
  for (auto& [service, reps] : sys.replicas) {
    const spec::Service* svc = sys.service(service);
    const bool dependents_alive = awaited.count(service) > 0;
    for (int i = static_cast<int>(reps.size()) - 1; i >= 0; --i) {
      auto& r = reps[i];
      if (!r) continue;
      if (!alive(*r)) {
        r->timer->cancel();
        if (r->state == ReplicaState::kBackoff) r->state = ReplicaState::kStopped;
        if (r->state == ReplicaState::kStopped || r->state == ReplicaState::kFailed) r->needs_start = true;
        continue;
      }
      if (dependents_alive) continue;
      if (r->state != ReplicaState::kStopping) stop_replica(sys, r);
      if (svc && svc->ordered()) break;  // reverse ordinal order, one at a time
    }
  }
}

void Supervisor::advance_rollout(SystemRuntime& sys) {
  while (!sys.rollout.empty()) {
    const std::string key = sys.rollout.front();
    const auto slash = key.rfind('/');
    const std::string service = key.substr(0, slash);
    const int ordinal = std::stoi(key.substr(slash + 1));
    const spec::Service* svc = sys.service(service);
    if (!svc || ordinal >= desired_replicas(sys, *svc)) {
      sys.rollout.pop_front();
      continue;
    }
    auto r = ensure_replica(sys, *svc, ordinal);
    if (!r->rollout_started) {
      r->rollout_started = true;
      if (alive(*r)) {
        event(*r, "restarting (rolling restart)");
        stop_replica(sys, r);
      } else {
        r->timer->cancel();
        r->state = ReplicaState::kStopped;
        r->needs_start = true;
      }
      return;
    }
    if (ready(*r) || r->state == ReplicaState::kFailed) {
      r->rollout_started = false;
      sys.rollout.pop_front();
      continue;
    }
    return;  // wait for it to become ready
  }
}

const std::string& Supervisor::address_list(SystemRuntime& sys, const spec::Service& svc) {
  const int want = desired_replicas(sys, svc);
  auto it = sys.address_lists.find(svc.name);
  if (it != sys.address_lists.end() && it->second.count == want) return it->second.list;
  // ensure_replica may drop the entry: make every replica first, then the list.
  for (int i = 0; i < want; ++i) ensure_replica(sys, svc, i);
  const auto& reps = sys.replicas[svc.name];
  auto& entry = sys.address_lists[svc.name];
  entry.count = want;
  entry.list = supervisor::address_list(svc, want, [&reps](int i) -> const std::string& { return reps[i]->host; });
  return entry.list;
}

const std::shared_ptr<Supervisor::Replica>& Supervisor::ensure_replica(SystemRuntime& sys, const spec::Service& svc,
                                                                      int ordinal) {
  auto& reps = sys.replicas[svc.name];
  if (static_cast<int>(reps.size()) <= ordinal) reps.resize(ordinal + 1);
  auto& r = reps[ordinal];
  if (!r) {
    sys.address_lists.erase(svc.name);
    r = std::make_shared<Replica>(clock_);
    r->system = sys.record.name;
    r->service = svc.name;
    r->ordinal = ordinal;
    r->key = replica_key(svc.name, ordinal);
    r->host = allocate_address(sys, r->key);
  }
  return r;
}

std::string Supervisor::allocate_address(SystemRuntime& sys, const std::string& key) {
  auto& rec = sys.record.replicas[key];
  if (!rec.address.empty()) return rec.address;
  // Below the cursor every address is taken: allocating n replicas costs
  // O(n log n) in all, not O(n^2).
  for (int i = address_cursor_; i < kAddressPoolSize; ++i) {
    std::string candidate =
        "127." + std::to_string(address_base_) + "." + std::to_string(i / 254) + "." + std::to_string(i % 254 + 1);
    if (used_addresses_.insert(candidate).second) {
      address_cursor_ = i + 1;
      rec.address = candidate;
      mark_dirty();
      return candidate;
    }
  }
  address_cursor_ = kAddressPoolSize;
  // apply() refuses what would not fit; a pool filled anyway (records written
  // to the store) shares the default loopback address.
  rec.address = "127.0.0.1";
  return rec.address;
}

void Supervisor::dispose(std::unique_ptr<SystemRuntime> sys) {
  // Releasing 50,000 addresses and freeing as many replicas takes tens of
  // milliseconds: a slice at a time, so that the loop keeps serving.
  constexpr std::size_t kSlice = 2048;
  std::size_t done = 0;
  auto& history = sys->record.replicas;
  while (!history.empty() && done < kSlice) {
    release_address(history.begin()->second.address);
    history.erase(history.begin());
    ++done;
  }
  for (auto it = sys->replicas.begin(); it != sys->replicas.end() && done < kSlice;) {
    auto& reps = it->second;
    while (!reps.empty() && done < kSlice) {
      reps.pop_back();
      ++done;
    }
    it = reps.empty() ? sys->replicas.erase(it) : std::next(it);
  }
  if (history.empty() && sys->replicas.empty()) return;  // the rest is small: freed here
  boost::asio::post(io_, [this, sys = std::move(sys)]() mutable { dispose(std::move(sys)); });
}

void Supervisor::release_address(const std::string& address) {
  if (used_addresses_.erase(address) == 0) return;
  const std::string block = "127." + std::to_string(address_base_) + ".";
  if (!address.starts_with(block)) return;
  unsigned third = 0, fourth = 0;
  if (std::sscanf(address.c_str() + block.size(), "%u.%u", &third, &fourth) != 2 || fourth < 1 || fourth > 254) return;
  address_cursor_ = std::min(address_cursor_, static_cast<int>(third * 254 + fourth - 1));
}

int Supervisor::replicas_wanted_by_others(const std::string& name) const {
  int total = 0;
  for (const auto& [other, sys] : systems_) {
    if (other == name || sys->removing) continue;
    for (const auto& svc : sys->spec.services) total += desired_replicas(*sys, svc);
  }
  return total;
}

Status Supervisor::check_replica_limits(const std::string& name, const spec::System& spec,
                                        const std::map<std::string, int>& scale) const {
  long wanted = 0;
  for (const auto& svc : spec.services) {
    auto it = scale.find(svc.name);
    wanted += it == scale.end() ? svc.replicas : it->second;
  }
  const int per_system = options_.limits.max_replicas_per_system;
  if (wanted > per_system) {
    return make_error(Errc::kInvalidArgument, "system " + name + " wants " + std::to_string(wanted) +
                                                  " replicas, over the limit of " + std::to_string(per_system) +
                                                  " per system (zeppelin server --max-replicas-per-system)");
  }
  const long others = replicas_wanted_by_others(name);
  const int per_server = std::min(options_.max_replicas, kAddressPoolSize);
  if (others + wanted > per_server) {
    return make_error(Errc::kInvalidArgument,
                      "system " + name + " wants " + std::to_string(wanted) + " replicas, but this server runs at most " +
                          std::to_string(per_server) + " and the other systems want " + std::to_string(others) +
                          ": lower the replicas, remove systems (zeppelin down), or raise zeppelin server "
                          "--max-replicas (at most " + std::to_string(kAddressPoolSize) +
                          ", one loopback address each)");
  }
  return ok_status();
}

namespace {

// Names become file names under the data directory. The spec's grammar allows
// only DNS labels; checked again here, since a record can reach the store by
// other ways than the API (etcdctl, a restored snapshot).
Status check_path_name(const char* what, const std::string& name) {
  if (spec::is_dns_label(name)) return ok_status();
  return make_error(Errc::kInvalidArgument, std::string("invalid ") + what + " name \"" + name +
                                                "\": not a DNS-1123 label, so never part of a path under the data directory");
}

}  // namespace

Result<std::string> Supervisor::volume_dir(const SystemRuntime& sys, const std::string& service, int ordinal,
                                           const std::string& volume) const {
  if (auto s = check_path_name("system", sys.record.name); !s) return s.error();
  if (auto s = check_path_name("service", service); !s) return s.error();
  if (auto s = check_path_name("volume", volume); !s) return s.error();
  return options_.home + "/volumes/" + sys.record.name + "/" + service + "/" + std::to_string(ordinal) + "/" + volume;
}

namespace {

// A process service run as another account.
bool runs_as_other(const spec::Service& svc) { return svc.run_as && svc.run_as->uid != ::geteuid(); }

// Such a service, with a volume under the data directory, needs a way through to it.
bool needs_volume_passage(const spec::Service& svc) {
  return runs_as_other(svc) &&
         std::any_of(svc.volumes.begin(), svc.volumes.end(), [](const spec::Volume& v) { return !v.source; });
}

std::set<uid_t> passage_uids(const spec::System& system) {
  std::set<uid_t> uids;
  for (const auto& svc : system.services) {
    if (runs_as_other(svc)) uids.insert(svc.run_as->uid);
  }
  return uids;
}

}  // namespace

Status Supervisor::grant_passage(const SystemRuntime& sys, const spec::Service& svc, int ordinal) const {
  if (!runs_as_other(svc)) return ok_status();
  if (!options_.etcd_ca_file.empty() && !sys.spec.etcd) {
    // The etcd CA's public copy: search on the way, the file itself is 0644.
    for (const std::string& dir : {options_.home, options_.home + "/" + kPublicDir}) {
      if (auto s = grant_traverse(dir, svc.run_as->uid); !s) return s;
    }
  }
  if (!needs_volume_passage(svc)) return ok_status();
  // volume_dir checked the names; the volumes were made, so these exist.
  std::string dir = options_.home;
  for (const std::string& below : {std::string("volumes"), sys.record.name, svc.name, std::to_string(ordinal)}) {
    if (auto s = grant_traverse(dir, svc.run_as->uid); !s) return s;
    dir += "/" + below;
  }
  return grant_traverse(dir, svc.run_as->uid);
}

void Supervisor::revoke_passage(const SystemRuntime& removed) const {
  if (!spec::is_dns_label(removed.record.name)) return;  // never a path outside volumes/
  const std::set<uid_t> uids = passage_uids(removed.spec);
  std::set<uid_t> still_needed;
  for (const auto& [name, sys] : systems_) {
    if (sys.get() == &removed) continue;
    for (uid_t uid : passage_uids(sys->spec)) still_needed.insert(uid);
  }
  const std::string volumes = options_.home + "/volumes";
  const std::string own = volumes + "/" + removed.record.name;
  auto revoke = [](const std::string& dir, uid_t uid) {
    if (auto s = revoke_traverse(dir, uid); !s) log::warn("{}", s.error().message);
  };
  for (uid_t uid : uids) {
    // Kept volumes keep their directories: the account loses its way to them.
    std::error_code ec;
    for (fs::directory_iterator service(own, ec), end; !ec && service != end; service.increment(ec)) {
      std::error_code ord_ec;
      for (fs::directory_iterator ordinal(service->path(), ord_ec); !ord_ec && ordinal != end; ordinal.increment(ord_ec)) {
        revoke(ordinal->path().string(), uid);
      }
      revoke(service->path().string(), uid);
    }
    revoke(own, uid);
    if (still_needed.contains(uid)) continue;
    revoke(volumes, uid);
    revoke(options_.home + "/" + kPublicDir, uid);
    revoke(options_.home, uid);
  }
}

Result<std::string> Supervisor::log_dir(const std::string& system, const std::string& service) const {
  if (auto s = check_path_name("system", system); !s) return s.error();
  if (auto s = check_path_name("service", service); !s) return s.error();
  return options_.home + "/logs/" + system + "/" + service;
}

int Supervisor::desired_replicas(const SystemRuntime& sys, const spec::Service& svc) const {
  auto it = sys.record.scale.find(svc.name);
  return it == sys.record.scale.end() ? svc.replicas : it->second;
}

bool Supervisor::alive(const Replica& r) const { return r.instance != nullptr; }

bool Supervisor::any_alive(const SystemRuntime& sys) const {
  for (const auto& [service, reps] : sys.replicas) {
    for (const auto& r : reps) {
      if (r && alive(*r)) return true;
    }
  }
  return false;
}

bool Supervisor::ready(const Replica& r) const {
  return r.state == ReplicaState::kRunning && r.health != Health::kUnhealthy;
}

bool Supervisor::service_ready(const SystemRuntime& sys, const spec::Service& svc) const {
  const int want = desired_replicas(sys, svc);
  auto it = sys.replicas.find(svc.name);
  if (want == 0) return true;
  if (it == sys.replicas.end() || static_cast<int>(it->second.size()) < want) return false;
  for (int i = 0; i < want; ++i) {
    if (!it->second[i] || !ready(*it->second[i])) return false;
  }
  return true;
}

void Supervisor::start_replica(SystemRuntime& sys, const std::shared_ptr<Replica>& r) {
  const spec::Service* svc = sys.service(r->service);
  const int want = desired_replicas(sys, *svc);
  ReplicaIdentity id;
  id.system = &sys.spec;
  id.service = svc;
  id.ordinal = r->ordinal;
  id.replicas = want;
  id.host = r->host;
  id.home = options_.home;
  id.etcd_endpoints = options_.etcd_endpoints;
  id.etcd_ca_file = options_.etcd_ca_file;
  id.read_secret = [home = options_.home](const spec::SecretRef& ref) {
    return secrets::SecretFiles(home).get(ref.name, ref.key);  // checks both names before reading
  };
  id.peers = address_list(sys, *svc);
  for (const auto& dep : svc->depends_on) id.dependencies[dep] = address_list(sys, *sys.service(dep));
  std::vector<runtime::Mount> mounts;
  for (const auto& v : svc->volumes) {
    std::string dir;
    if (v.source) {
      dir = *v.source;
    } else {
      auto made = volume_dir(sys, svc->name, r->ordinal, v.name);
      if (!made) {
        r->needs_start = false;
        return start_failed(sys, r, *svc, made.error().message);
      }
      dir = std::move(*made);
      // volumes/ and the directories down to the replica's are owner-only, like
      // the rest of the data directory; the volume's own mode, once it exists,
      // is the user's (a container may use it as another user).
      if (auto s = make_dirs(dir, 0700); !s) {
        r->needs_start = false;
        return start_failed(sys, r, *svc, s.error().message);
      }
      // The replica's own volume belongs to the account it runs as; nothing above it changes.
      if (svc->run_as && ::chown(dir.c_str(), svc->run_as->uid, svc->run_as->gid) != 0) {
        r->needs_start = false;
        return start_failed(sys, r, *svc, "cannot give volume " + dir + " to uid " + std::to_string(svc->run_as->uid) +
                                              ": " + std::strerror(errno));
      }
    }
    // A container sees the directory where the spec says; a process, where it is.
    id.volumes[v.name] = svc->is_container() ? v.path : dir;
    mounts.push_back({dir, v.path, v.read_only});
  }
  if (svc->is_container() && !options_.etcd_ca_file.empty() && !sys.spec.etcd) {
    mounts.push_back({options_.etcd_ca_file, kContainerEtcdCaFile, true});
    id.etcd_ca_file = kContainerEtcdCaFile;
  }
  if (auto s = grant_passage(sys, *svc, r->ordinal); !s) {
    r->needs_start = false;
    return start_failed(sys, r, *svc, s.error().message);
  }
  if (!r->log) {
    auto dir = log_dir(sys.record.name, svc->name);
    if (!dir) {
      r->needs_start = false;
      return start_failed(sys, r, *svc, dir.error().message);
    }
    (void)make_dirs(*dir, 0700);
    r->log = std::make_unique<ReplicaLog>(*dir + "/" + std::to_string(r->ordinal) + ".log", options_.log_max_bytes,
                                          options_.log_keep_files);
  }
  r->credential.reset();
  if (options_.credentials && !sys.spec.etcd && !id.etcd_endpoints.empty()) {
    const std::string user = sys.spec.store_user.empty() ? kReplicaStoreUser : sys.spec.store_user;
    // A container may outlive this server and be adopted by the next: its token must too.
    auto issued = options_.credentials->issue(user, svc->is_container() ? sys.record.name + "/" + r->key : "");
    if (!issued) {
      // Like a missing secret, but retried: the user may be created meanwhile.
      r->needs_start = false;
      return start_failed(sys, r, *svc, "no store token for the replica: " + issued.error().message);
    }
    r->credential = std::move(*issued);
    if (r->credential) {
      id.etcd_user = r->credential->user();
      id.etcd_token = r->credential->token();
    }
  }
  auto launch_env = build_launch_env(id, sys.record.caller_env);
  if (!launch_env) {
    r->credential.reset();
    r->state = ReplicaState::kFailed;
    r->needs_start = false;
    r->detail = launch_env.error().message;
    event(*r, "cannot start: " + r->detail);
    return;
  }
  const std::string launch_id = sys.record.name + "/" + r->key;
  for (const auto& p : svc->ports) {
    // An instance left running by the previous server holds its ports: fine.
    if (driver_.adoptable(launch_id) || !port_taken(r->host, p.port)) continue;
    // Said here, clearly, rather than left to the replica's own bind error.
    r->needs_start = false;
    return start_failed(sys, r, *svc, "port " + std::to_string(p.port) + " (" + p.name + ") on " + r->host +
                                          " is already taken by another program");
  }
  runtime::LaunchSpec launch;
  launch.id = launch_id;
  launch.argv = std::move(launch_env->argv);
  launch.env = std::move(launch_env->env);
  launch.workdir = svc->workdir;
  launch.resources = svc->resources;
  launch.run_as = svc->run_as;
  if (svc->is_container()) {
    // The exact image the caller built or pulled, when it said which.
    auto id = sys.record.images.find(svc->name);
    launch.container = runtime::ContainerLaunch{id == sys.record.images.end() ? svc->image : id->second, svc->entrypoint,
                                                std::move(mounts), sys.record.name, svc->name, r->ordinal};
  }

  std::weak_ptr<Replica> weak = r;
  runtime::InstanceEvents events;
  events.on_output = [this, weak](std::string_view chunk, bool is_stderr) {
    auto rep = weak.lock();
    if (!rep || !rep->log) return;
    rep->log->append(chunk, is_stderr, [&](std::string_view line) {
      hub_.publish(LogLine{rep->system, rep->service, rep->ordinal, is_stderr ? "stderr" : "stdout", std::string(line)});
    });
  };
  const std::uint64_t instance_id = next_instance_id_++;
  events.on_running = [this, weak, instance_id] {
    // Uptime (and so the settle time of `run -d`) counts from when it really runs.
    auto rep = weak.lock();
    if (!rep || rep->instance_id != instance_id) return;
    rep->started_at = clock_.now();
    if (rep->state == ReplicaState::kStarting && rep->health == Health::kNone) rep->state = ReplicaState::kRunning;
    schedule_reconcile();
  };
  events.on_exit = [this, weak, instance_id](const runtime::ExitStatus& status) {
    auto rep = weak.lock();
    if (rep && rep->instance_id == instance_id) on_exit(rep, status);
  };
  r->instance_id = instance_id;
  r->fingerprint = sys.fingerprints[svc->name];
  r->needs_start = false;
  r->detail.clear();
  r->started_at = clock_.now();
  auto instance = driver_.start(launch, std::move(events));
  if (!instance) return start_failed(sys, r, *svc, instance.error().message);
  r->instance = std::move(*instance);
  event(*r, "started, " + r->instance->describe() + ", address " + endpoint(*svc, r->host) +
                (r->credential ? ", etcd user " + r->credential->user() : ""));
  if (svc->health) {
    r->state = ReplicaState::kStarting;
    r->health = Health::kStarting;
    r->probe_failures = 0;
    r->probe_passed = false;
    schedule_probe(r, std::min<milliseconds>(svc->health->interval, milliseconds(50)));
  } else {
    // A container runs only once the engine has created and started it.
    r->state = launch.container ? ReplicaState::kStarting : ReplicaState::kRunning;
    r->health = Health::kNone;
  }
}

void Supervisor::start_failed(SystemRuntime& sys, const std::shared_ptr<Replica>& r, const spec::Service& svc,
                              const std::string& why) {
  r->credential.reset();
  r->last_exit = why;
  event(*r, "cannot start: " + why);
  if (svc.restart == spec::RestartPolicy::kNever) {
    r->state = ReplicaState::kFailed;
    r->detail = why;
  } else {
    on_crash(sys, r, why);
  }
}

void Supervisor::stop_replica(SystemRuntime& sys, const std::shared_ptr<Replica>& r) {
  if (!r->instance) return;
  const spec::Service* svc = sys.service(r->service);
  r->state = ReplicaState::kStopping;
  r->probe_timer->cancel();
  r->instance->terminate();
  const milliseconds grace = svc ? svc->stop_grace : milliseconds(10000);
  const std::uint64_t id = r->instance_id;
  r->timer->schedule_at(clock_.now() + grace, [this, weak = std::weak_ptr<Replica>(r), id, grace] {
    auto rep = weak.lock();
    if (!rep || rep->instance_id != id || !rep->instance || rep->state != ReplicaState::kStopping) return;
    event(*rep, "still running " + format_duration(grace) + " after SIGTERM; sending SIGKILL");
    rep->instance->kill();
  });
}

void Supervisor::on_exit(const std::shared_ptr<Replica>& r, const runtime::ExitStatus& status) {
  r->instance.reset();
  r->credential.reset();
  r->timer->cancel();
  r->probe_timer->cancel();
  const bool was_stopping = r->state == ReplicaState::kStopping;
  // A stop that was asked for (stop, down, scale, a rollout) is no failure,
  // whatever signal ended it; a restart for failed health checks is.
  r->last_exit = (was_stopping && !r->unhealthy_restart ? "stopped as asked: " : "") + status.describe();
  r->health = Health::kNone;
  event(*r, r->last_exit);
  SystemRuntime* sys = find(r->system);
  if (!sys) return;
  const spec::Service* svc = sys->service(r->service);
  if (r->unhealthy_restart) {
    r->unhealthy_restart = false;
    if (sys->record.running && !shutting_down_ && svc) {
      on_crash(*sys, r, "unhealthy");
      schedule_reconcile();
      return;
    }
  }
  if (was_stopping || !sys->record.running || shutting_down_ || !svc) {
    r->state = ReplicaState::kStopped;
    r->needs_start = true;
  } else {
    const bool restart = svc->restart == spec::RestartPolicy::kAlways ||
                         (svc->restart == spec::RestartPolicy::kOnFailure && !status.success());
    if (restart) {
      on_crash(*sys, r, r->last_exit);
    } else {
      r->state = status.success() ? ReplicaState::kStopped : ReplicaState::kFailed;
      r->needs_start = false;
      r->detail = r->last_exit;
    }
  }
  schedule_reconcile();
}

void Supervisor::on_crash(SystemRuntime& sys, const std::shared_ptr<Replica>& r, const std::string& reason) {
  if (clock_.now() - r->started_at >= options_.stable_after) r->consecutive_crashes = 0;
  milliseconds delay(0);
  if (r->consecutive_crashes > 0) {
    const int shift = std::min(r->consecutive_crashes - 1, 20);
    const auto base = std::min<std::int64_t>(options_.backoff_cap.count(), options_.backoff_base.count() << shift);
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    delay = milliseconds(static_cast<std::int64_t>(static_cast<double>(base) * jitter(rng_)));
  }
  ++r->consecutive_crashes;
  ++sys.record.replicas[r->key].restarts;
  mark_dirty();
  if (delay.count() == 0) {
    r->state = ReplicaState::kStopped;
    r->needs_start = true;
    return;
  }
  r->state = ReplicaState::kBackoff;
  r->detail = reason + "; restarting in " + format_duration(delay);
  event(*r, "crash loop: restarting in " + format_duration(delay));
  r->timer->schedule_at(clock_.now() + delay, [this, weak = std::weak_ptr<Replica>(r)] {
    auto rep = weak.lock();
    if (!rep || rep->state != ReplicaState::kBackoff) return;
    rep->state = ReplicaState::kStopped;
    rep->needs_start = true;
    schedule_reconcile();
  });
}

void Supervisor::schedule_probe(const std::shared_ptr<Replica>& r, milliseconds delay) {

  const std::uint64_t id = r->instance_id;
  r->probe_timer->schedule_at(clock_.now() + delay, [this, weak = std::weak_ptr<Replica>(r), id] {
    auto rep = weak.lock();
    if (!rep || rep->instance_id != id || !rep->instance) return;
    run_probe(rep);
  });
}

void Supervisor::run_probe(const std::shared_ptr<Replica>& r) {
  SystemRuntime* sys = find(r->system);
  const spec::Service* svc = sys ? sys->service(r->service) : nullptr;
  if (!svc || !svc->health) return;
  const spec::HealthCheck& check = *svc->health;
  const std::uint64_t id = r->instance_id;
  auto done = [this, weak = std::weak_ptr<Replica>(r), id](bool ok) {
    if (auto rep = weak.lock()) on_probe_result(rep, id, ok);
  };
  switch (check.kind) {
    case spec::HealthCheck::Kind::kTcp: probe_tcp(io_, r->host, check.port, check.timeout, done); break;
    case spec::HealthCheck::Kind::kHttp: probe_http(io_, r->host, check.port, check.path, check.timeout, done); break;
    case spec::HealthCheck::Kind::kExec: r->instance->exec_probe(check.exec, check.timeout, done); break;
  }
}

void Supervisor::on_probe_result(const std::shared_ptr<Replica>& r, std::uint64_t instance_id, bool ok) {
  if (r->instance_id != instance_id || !r->instance || r->state == ReplicaState::kStopping) return;
  SystemRuntime* sys = find(r->system);
  const spec::Service* svc = sys ? sys->service(r->service) : nullptr;
  if (!svc || !svc->health) return;
  const spec::HealthCheck& check = *svc->health;
  if (ok) {
    if (r->health != Health::kHealthy) event(*r, "healthy");
    r->health = Health::kHealthy;
    r->probe_failures = 0;
    r->probe_passed = true;
    if (r->state == ReplicaState::kStarting) r->state = ReplicaState::kRunning;
    schedule_probe(r, check.interval);
    schedule_reconcile();
    return;
  }
  bool give_up = false;
  if (!r->probe_passed) {
    // Until the first success, probe often (to notice readiness quickly) but
    // give up only after start_period plus `retries` intervals.
    const auto allowed = check.start_period + check.interval * check.retries;
    give_up = clock_.now() - r->started_at >= allowed;
  } else {
    if (r->health == Health::kHealthy) event(*r, "health check failed");
    r->health = Health::kUnhealthy;
    give_up = ++r->probe_failures >= check.retries;
    schedule_reconcile();
  }
  if (give_up) {
    event(*r, "unhealthy after " + std::to_string(check.retries) + " failed checks; restarting");
    r->health = Health::kUnhealthy;
    r->unhealthy_restart = true;
    stop_replica(*sys, r);
    return;
  }
  schedule_probe(r, r->probe_passed ? check.interval : std::min<milliseconds>(check.interval, kStartupProbeInterval));
}

void Supervisor::event(const Replica& r, const std::string& text) {
  log::info("{}/{}/{}: {}", r.system, r.service, r.ordinal, text);
  if (r.log) r.log->note(text);
  hub_.publish(LogLine{r.system, r.service, r.ordinal, "event", text});
}

std::vector<SystemSummary> Supervisor::systems() const {
  std::vector<SystemSummary> out;
  for (const auto& [name, sys] : systems_) {
    SystemSummary s;
    s.name = name;
    s.spec_file = sys->record.spec_file;
    s.running = sys->record.running;
    for (const auto& svc : sys->spec.services) {
      const int want = desired_replicas(*sys, svc);
      s.replicas += want;
      auto it = sys->replicas.find(svc.name);
      if (it == sys->replicas.end()) continue;
      for (int i = 0; i < want && i < static_cast<int>(it->second.size()); ++i) {
        if (it->second[i] && ready(*it->second[i])) ++s.ready;
      }
    }
    out.push_back(s);
  }
  return out;
}

ReplicaStatus Supervisor::status_of(const SystemRuntime& sys, const Replica& r) const {
  ReplicaStatus s;
  s.system = r.system;
  s.service = r.service;
  s.replica = r.ordinal;
  s.state = r.state;
  s.health = r.health;
  s.pid = r.instance ? r.instance->pid() : 0;  // live: a container's is known only once it runs
  auto rec = sys.record.replicas.find(r.key);
  s.restarts = rec == sys.record.replicas.end() ? 0 : rec->second.restarts;
  const spec::Service* svc = sys.service(r.service);
  s.address = svc ? endpoint(*svc, r.host) : r.host;
  s.last_exit = r.last_exit;
  s.detail = r.detail;
  if (r.instance) s.uptime_seconds = std::chrono::duration<double>(clock_.now() - r.started_at).count();
  return s;
}

struct Supervisor::ReplicaListing {
  struct Row {
    std::string system;
    std::string service;
    int ordinal = 0;
    std::shared_ptr<const Replica> replica;  // null: wanted but not created yet
  };
  std::vector<Row> rows;
  std::size_t next = 0;  // the first row whose status is not built yet
  std::vector<ReplicaStatus> out;
};

std::shared_ptr<Supervisor::ReplicaListing> Supervisor::plan_listing(const std::optional<std::string>& system) const {
  auto listing = std::make_shared<ReplicaListing>();
  for (const auto& [name, sys] : systems_) {
    if (system && name != *system) continue;
    std::vector<std::string> services;
    for (const auto& svc : sys->spec.services) services.push_back(svc.name);
    for (const auto& [service, reps] : sys->replicas) {
      if (!sys->service(service)) services.push_back(service);
    }
    for (const auto& service : services) {
      auto it = sys->replicas.find(service);
      const spec::Service* svc = sys->service(service);
      const int want = svc ? desired_replicas(*sys, *svc) : 0;
      const int have = it == sys->replicas.end() ? 0 : static_cast<int>(it->second.size());
      for (int i = 0; i < std::max(want, have); ++i) {
        listing->rows.push_back({name, service, i, i < have ? it->second[i] : nullptr});
      }
    }
  }
  listing->out.reserve(listing->rows.size());
  return listing;
}

bool Supervisor::build_listing(ReplicaListing& listing,
                               std::optional<std::chrono::steady_clock::time_point> deadline) const {
  const SystemRuntime* sys = nullptr;  // the system of the rows at hand, looked up once per run of rows
  const std::string* sys_name = nullptr;
  for (; listing.next < listing.rows.size(); ++listing.next) {
    if (deadline && listing.next % 256 == 0 && std::chrono::steady_clock::now() > *deadline) return false;
    const auto& row = listing.rows[listing.next];
    if (!sys_name || *sys_name != row.system) {
      sys_name = &row.system;
      sys = find(row.system);
    }
    if (row.replica && sys) {
      listing.out.push_back(status_of(*sys, *row.replica));
    } else {  // wanted but not created yet (waiting on dependencies or order), or its system went away
      ReplicaStatus s;
      s.system = row.system;
      s.service = row.service;
      s.replica = row.ordinal;
      if (row.replica) s.state = row.replica->state;
      listing.out.push_back(std::move(s));
    }
  }
  return true;
}

Result<std::vector<ReplicaStatus>> Supervisor::replicas(const std::optional<std::string>& system) const {
  if (system && !find(*system)) return make_error(Errc::kNotFound, "no system named \"" + *system + "\"");
  auto listing = plan_listing(system);
  build_listing(*listing, std::nullopt);
  return std::move(listing->out);
}

void Supervisor::replicas(const std::optional<std::string>& system,
                          std::function<void(Result<std::vector<ReplicaStatus>>)> done) {
  if (system && !find(*system)) return done(make_error(Errc::kNotFound, "no system named \"" + *system + "\""));
  auto listing = plan_listing(system);
  // A slice runs for kListingSlice, then lets the loop serve what waits.
  auto step = std::make_shared<std::function<void()>>();
  *step = [this, listing, step, done = std::move(done)]() mutable {
    if (!build_listing(*listing, std::chrono::steady_clock::now() + kListingSlice)) {
      boost::asio::post(io_, [step] { (*step)(); });
      return;
    }
    auto finish = std::move(done);
    auto rows = std::move(listing->out);
    *step = nullptr;  // ends the cycle step -> lambda -> step (and this lambda: touch no capture after)
    finish(std::move(rows));
  };
  (*step)();
}

Result<std::vector<std::pair<LogLine, std::string>>> Supervisor::log_files(const LogFilter& filter) const {
  SystemRuntime* sys = find(filter.system);
  if (!sys) return make_error(Errc::kNotFound, "no system named \"" + filter.system + "\"");
  if (filter.service && !sys->service(*filter.service)) {
    return make_error(Errc::kNotFound, "system \"" + filter.system + "\" has no service \"" + *filter.service + "\"");
  }
  std::vector<std::pair<LogLine, std::string>> out;
  for (const auto& svc : sys->spec.services) {
    if (filter.service && svc.name != *filter.service) continue;
    auto checked = log_dir(filter.system, svc.name);
    if (!checked) return checked.error();
    const std::string& dir = *checked;
    std::error_code ec;
    std::vector<int> ordinals;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string file = entry.path().filename().string();
      if (!file.ends_with(".log")) continue;
      try {
        ordinals.push_back(std::stoi(file.substr(0, file.size() - 4)));
      } catch (const std::exception&) {
      }
    }
    std::sort(ordinals.begin(), ordinals.end());
    for (int ordinal : ordinals) {
      if (filter.replica && ordinal != *filter.replica) continue;
      out.emplace_back(LogLine{filter.system, svc.name, ordinal, "stdout", ""}, dir + "/" + std::to_string(ordinal) + ".log");
    }
  }
  if (filter.service && filter.replica && out.empty()) {
    // A replica that has no log and is not wanted either: a typo, not silence.
    const int want = desired_replicas(*sys, *sys->service(*filter.service));
    if (*filter.replica < 0 || *filter.replica >= want) {
      return make_error(Errc::kNotFound, "system \"" + filter.system + "\" has no replica " + *filter.service + "/" +
                                             std::to_string(*filter.replica) + " (service " + *filter.service +
                                             " has " + std::to_string(want) + " replicas)");
    }
  }
  return out;
}

void Supervisor::mark_dirty() {
  // Replica history (restart counts, addresses) is written at most every
  // kPersistDelay: a burst of exits or starts costs one fsync, and never
  // delays the restart it accompanies.
  if (persist_posted_) return;
  persist_posted_ = true;
  persist_timer_->schedule_at(clock_.now() + kPersistDelay, [this] {
    persist_posted_ = false;
    persist();
  });
}

void Supervisor::persist() {
  std::vector<const state::SystemRecord*> records;
  records.reserve(unrestorable_.size() + systems_.size());
  for (const auto& r : unrestorable_) records.push_back(&r);
  for (const auto& [name, sys] : systems_) {
    if (!sys->removing) records.push_back(&sys->record);
  }
  if (auto s = store_.save(records); !s) log::error("cannot persist state: {}", s.error().message);
}

}  // namespace zeppelin::supervisor
