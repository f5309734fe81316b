#include "supervisor/supervisor.h"

// Desired state (apply, stop, scale, restart, remove, recovery from the
// state store) and its persistence. The rest of the class is in the files
// internal.h names.

#include <unistd.h>
#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "common/log.h"
#include "spec/parser.h"
#include "supervisor/internal.h"
#include "supervisor/replica_env.h"

namespace zeppelin::supervisor {

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
