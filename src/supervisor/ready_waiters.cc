// wait_ready(): who waits for a system to be ready, and when they are told.

#include <algorithm>
#include <functional>

#include "spec/parser.h"
#include "supervisor/internal.h"
#include "supervisor/replica_env.h"

namespace zeppelin::supervisor {

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

}  // namespace zeppelin::supervisor
