// The reconciler proper: compares desired and actual state and starts or
// stops replicas (dependency and ordinal order, rolling replacements), in
// passes that yield to the loop. See docs/architecture.md.

#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <functional>
#include <string_view>
#include <unordered_set>
#include <nlohmann/json.hpp>

#include "common/home_layout.h"
#include "common/log.h"
#include "spec/parser.h"
#include "supervisor/internal.h"

namespace zeppelin::supervisor {

namespace {

// How long one reconcile pass may go on creating replicas, or one batch of
// starts go on starting them, before yielding to the rest of the event loop
// (the API, probes, exits): starting 1,000 processes takes seconds.
constexpr milliseconds kReconcilePassBudget{10};

}  // namespace

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
      fs::remove_all(HomeLayout(options_.home).logs_dir(name), ec);
      if (sys->remove_volumes) fs::remove_all(HomeLayout(options_.home).volumes_dir(name), ec);
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
        if (std::string container = r->instance->container_name(); !container.empty()) {
          doc["container"] = container;
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

}  // namespace zeppelin::supervisor
