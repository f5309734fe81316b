// One replica's life: its start, its exit, the restart policy and backoff,
// the stop with its grace period, and its health checks (docs/spec.md, Lifecycle).

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "common/log.h"
#include "secrets/secrets.h"
#include "spec/parser.h"
#include "supervisor/internal.h"
#include "supervisor/replica_env.h"
#include "supervisor/probes.h"

namespace zeppelin::supervisor {

namespace {

// Until its first success a check runs at least this often, so readiness is
// noticed soon after it happens (Docker calls this start_interval).
constexpr milliseconds kStartupProbeInterval{100};

// Whether the run that just ended said its address was taken: what a replica
// that binds 0.0.0.0 (the Compose habit) says when a sibling replica holds
// the same port on its own address. `lines` end with the run's last ones; the
// run began at the supervisor's "started" line.
bool run_said_address_in_use(const std::vector<std::string>& lines) {
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (it->starts_with("[zeppelin] started")) return false;
    if (it->find("Address already in use") != std::string::npos || it->find("EADDRINUSE") != std::string::npos) return true;
  }
  return false;
}

}  // namespace

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
  if (!was_stopping && !status.success() && r->log && run_said_address_in_use(r->log->recent())) {
    r->last_exit += "; its address was in use: listen on $ZEPPELIN_HOST (" + r->host +
                    ", this replica's own address), not 0.0.0.0, which the other replicas share";
  }
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

}  // namespace zeppelin::supervisor
