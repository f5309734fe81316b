#include "store/watch_hub.h"

#include <algorithm>
#include <utility>

namespace zeppelin::store::embedded {

class HubWatch final : public Watch {
 public:
  HubWatch(WatchHub* hub, WatchRequest request, WatchCallback callback)
      : hub_(hub), request_(std::move(request)), callback_(std::move(callback)) {}
  ~HubWatch() override { hub_->unregister(this); }
  void request_progress() override { hub_->progress(this); }
  int64_t revision() const override { return created_revision_; }

  bool matches(const Event& e) const {
    if (e.kv.mod_revision < min_revision_) return false;
    if (e.type == Event::Type::kPut ? request_.no_put : request_.no_delete) return false;
    return in_range(e.kv.key, request_.key, request_.range_end);
  }

 private:
  friend class WatchHub;
  WatchHub* hub_;
  WatchRequest request_;
  WatchCallback callback_;
  int64_t min_revision_ = 0;  // events below it were delivered at registration (or not asked for)
  int64_t created_revision_ = 0;
};

Result<std::unique_ptr<Watch>> WatchHub::watch(const WatchRequest& request, WatchCallback callback,
                                               const MvccIndex& index, std::shared_mutex& index_mu) {
  if (request.key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
  auto w = std::make_unique<HubWatch>(this, request, std::move(callback));
  std::lock_guard<std::mutex> hub(mu_);
  const int64_t committed = committed_revision_.load();
  w->created_revision_ = committed;
  w->min_revision_ = std::max(request.start_revision, committed + 1);
  if (request.start_revision > 0 && request.start_revision <= committed) {
    WatchUpdate catch_up;
    catch_up.revision = committed;
    {
      std::shared_lock lock(index_mu);
      if (request.start_revision < index.compact_revision()) {
        w->callback_(WatchUpdate{committed, {}, false, index.compact_revision()});
        return std::unique_ptr<Watch>(std::move(w));  // registered nowhere: it has ended
      }
      catch_up.events = index.history_events(request, committed);
    }
    if (!catch_up.events.empty()) w->callback_(std::move(catch_up));
  }
  watchers_.insert(w.get());
  return std::unique_ptr<Watch>(std::move(w));
}

void WatchHub::unregister(HubWatch* w) {
  std::lock_guard<std::mutex> hub(mu_);
  watchers_.erase(w);
}

void WatchHub::progress(HubWatch* w) {
  std::lock_guard<std::mutex> hub(mu_);
  if (watchers_.count(w)) w->callback_(WatchUpdate{committed_revision_.load(), {}, true, 0});
}

void WatchHub::publish(const Batch& batch) {
  std::lock_guard<std::mutex> hub(mu_);
  committed_revision_.store(batch.revision);
  if (batch.events.empty()) return;
  for (HubWatch* w : watchers_) {
    WatchUpdate update;
    update.revision = batch.revision;
    for (const Event& e : batch.events) {
      if (!w->matches(e)) continue;
      update.events.push_back(e);
      if (!w->request_.prev_kv) update.events.back().prev_kv.reset();
    }
    if (!update.events.empty()) w->callback_(std::move(update));
  }
}

}  // namespace zeppelin::store::embedded
