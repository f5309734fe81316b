#include "etcd_api/recipes.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>

namespace zeppelin::etcd_api {

namespace {

// How often a blocked call checks whether its client went away. The
// synchronous gRPC API has no cancellation callback, only IsCancelled().
constexpr auto kCancelCheck = std::chrono::milliseconds(200);

// Waits for the first event of a watch, or for `cancelled`.
Status wait_for_event(store::Store& store, const store::WatchRequest& request, const std::function<bool()>& cancelled) {
  struct Signal {
    std::mutex mu;
    std::condition_variable cv;
    bool fired = false;
  } signal;
  auto watch = store.watch(request, [&signal](const store::WatchUpdate& u) {
    if (u.events.empty() && !u.compact_revision) return;
    std::lock_guard<std::mutex> lock(signal.mu);
    signal.fired = true;
    signal.cv.notify_all();
  });
  if (!watch) return watch.error();
  std::unique_lock<std::mutex> lock(signal.mu);
  while (!signal.fired) {
    if (cancelled()) return make_error(Errc::kUnavailable, "the call was cancelled");
    signal.cv.wait_for(lock, kCancelCheck);
  }
  return ok_status();
}

}  // namespace

Result<Claim> claim(store::Store& store, const std::string& prefix, int64_t lease, const std::string& value) {
  char hex[32];
  std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(lease));
  const std::string key = prefix + hex;
  store::TxnRequest t;
  t.compare = {store::Compare{key, "", store::Compare::Target::kCreateRevision, store::Compare::Op::kEqual, 0, ""}};
  t.success = {store::PutRequest{key, value, lease, false, false, false},
               store::RangeRequest{key, "", 0, 0, false, false}};
  t.failure = {store::RangeRequest{key, "", 0, 0, false, false}};
  auto r = store.txn(t);
  if (!r) return r.error();
  const auto& read = std::get<store::RangeResponse>(r->responses.back());
  if (read.kvs.empty()) return make_error(Errc::kInternal, "the key " + key + " vanished while it was claimed");
  return Claim{read.kvs[0], r->succeeded, r->revision};
}

Result<std::pair<std::optional<store::KeyValue>, int64_t>> first_created(store::Store& store,
                                                                         const std::string& prefix) {
  auto r = store.range({prefix, store::prefix_end(prefix), 0, 0, false, false});
  if (!r) return r.error();
  std::optional<store::KeyValue> first;
  for (const auto& kv : r->kvs) {
    if (!first || kv.create_revision < first->create_revision) first = kv;
  }
  return std::make_pair(first, r->revision);
}

Status wait_for_turn(store::Store& store, const std::string& prefix, int64_t create_revision,
                     const std::function<bool()>& cancelled) {
  for (;;) {
    auto r = store.range({prefix, store::prefix_end(prefix), 0, 0, true, false});
    if (!r) return r.error();
    // The contender just ahead: the newest key created before ours.
    const store::KeyValue* ahead = nullptr;
    for (const auto& kv : r->kvs) {
      if (kv.create_revision < create_revision && (!ahead || kv.create_revision > ahead->create_revision)) ahead = &kv;
    }
    if (!ahead) return ok_status();
    store::WatchRequest w;
    w.key = ahead->key;
    w.start_revision = r->revision + 1;
    w.no_put = true;
    if (auto s = wait_for_event(store, w, cancelled); !s) return s;
  }
}

Status wait_for_change(store::Store& store, const std::string& prefix, int64_t revision,
                       const std::function<bool()>& cancelled) {
  store::WatchRequest w;
  w.key = prefix;
  w.range_end = store::prefix_end(prefix);
  w.start_revision = revision + 1;
  return wait_for_event(store, w, cancelled);
}

}  // namespace zeppelin::etcd_api
