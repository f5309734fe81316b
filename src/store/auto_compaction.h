// AutoCompaction: when the embedded store compacts by itself, as etcd's
// --auto-compaction-mode revision or periodic (EmbeddedStoreOptions).
//
// Threading: writer thread only; asked once per group commit, with the index
// locked, so the compaction it asks for goes into the same commit.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <utility>

#include "store/embedded_store.h"

namespace zeppelin::store::embedded {

class AutoCompaction {
 public:
  // The periodic mode counts its first period from here (the store's opening).
  explicit AutoCompaction(const EmbeddedStoreOptions& options);

  // The revision to compact at now, or 0 when no compaction is due, given the
  // store's revision and compaction point.
  int64_t due(int64_t revision, int64_t compact_revision);

 private:
  int64_t due_periodically(int64_t revision, int64_t compact_revision);

  const std::chrono::nanoseconds period_;
  const int64_t retention_;
  const std::function<std::chrono::steady_clock::time_point()> clock_;
  // The periodic mode's notes (time, revision then), oldest first, and its
  // last run (the store's opening before the first).
  std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> revision_samples_;
  std::chrono::steady_clock::time_point last_periodic_compaction_;
  int64_t periodic_compactions_ = 0;
};

}  // namespace zeppelin::store::embedded
