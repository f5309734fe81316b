#include "store/auto_compaction.h"

#include <algorithm>

namespace zeppelin::store::embedded {

AutoCompaction::AutoCompaction(const EmbeddedStoreOptions& options)
    : period_(options.auto_compaction_period),
      retention_(options.auto_compaction_retention),
      clock_(options.clock),
      last_periodic_compaction_(clock_()) {}

// By revision, once the history passes the retention by a tenth of it (at
// least one revision), so that compactions, which visit every key, come once
// per retention/10 writes.
int64_t AutoCompaction::due(int64_t revision, int64_t compact_revision) {
  if (period_.count() > 0) return due_periodically(revision, compact_revision);
  if (retention_ <= 0) return 0;
  const int64_t target = revision - retention_;
  if (target - compact_revision < std::max<int64_t>(1, retention_ / 10)) return 0;
  return target;
}

// A noted revision was current when noted, so the newest one noted before the
// cutoff keeps at least a whole period of history.
int64_t AutoCompaction::due_periodically(int64_t revision, int64_t compact_revision) {
  const auto interval = std::min<std::chrono::nanoseconds>(period_, std::chrono::hours(1));
  const auto now = clock_();
  if (revision_samples_.empty() || now - revision_samples_.back().first >= interval / 10) {
    revision_samples_.emplace_back(now, revision);
  }
  const auto since_last = now - last_periodic_compaction_;
  if (since_last < (periodic_compactions_ == 0 ? period_ : interval)) return 0;
  const auto cutoff = now - period_;
  while (revision_samples_.size() > 1 && revision_samples_[1].first <= cutoff) revision_samples_.pop_front();
  if (revision_samples_.front().first > cutoff) return 0;  // nothing noted that long ago
  last_periodic_compaction_ = now;
  ++periodic_compactions_;
  if (const int64_t target = revision_samples_.front().second; target > compact_revision) return target;
  return 0;
}

}  // namespace zeppelin::store::embedded
