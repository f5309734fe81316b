// WatchHub: the embedded store's watches and the committed revision.
//
// The writer thread publishes each committed batch here: the hub advances the
// revision readers see and hands every watch the batch's events that match
// it, in revision order. A watch that starts in the past is first caught up
// from the index's history, under the same lock, so no revision falls between
// the replay and the live events.
//
// Threading: every method may be called from any thread. mu_ guards the set
// of watches and orders publish() against registration and progress
// notifications; callbacks run with it held, so they must not block (see
// WatchCallback). When both are needed, mu_ is taken before the index's lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_set>

#include "common/result.h"
#include "store/mvcc_index.h"
#include "store/store.h"

namespace zeppelin::store::embedded {

class HubWatch;

class WatchHub {
 public:
  // The newest revision on disk: what readers see.
  int64_t committed_revision() const { return committed_revision_.load(); }
  // Sets it before any watch or publish (the revision replayed on open).
  void start_at(int64_t revision) { committed_revision_.store(revision); }

  // Registers a watch; history from request.start_revision on is replayed
  // from `index` (read under a shared lock on `index_mu`) before it returns.
  Result<std::unique_ptr<Watch>> watch(const WatchRequest& request, WatchCallback callback, const MvccIndex& index,
                                       std::shared_mutex& index_mu);

  // Makes a committed batch visible to readers and watchers (writer thread).
  void publish(const Batch& batch);

 private:
  friend class HubWatch;
  void unregister(HubWatch* w);
  void progress(HubWatch* w);

  std::mutex mu_;
  std::unordered_set<HubWatch*> watchers_;  // guarded by mu_
  // Written under mu_, so that a watch registered sees every later batch.
  std::atomic<int64_t> committed_revision_{1};
};

}  // namespace zeppelin::store::embedded
