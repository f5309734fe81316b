// MvccIndex: the embedded store's key space in memory — every key's history
// since the last compaction, the leases and the keys they hold, the newest
// applied revision and the compaction point.
//
// Writes are applied here first and recorded in a Batch, which the database
// then makes durable and the watch hub publishes. Reads are served from here
// at any revision still held.
//
// Threading: not synchronised. EmbeddedStore guards it with one shared_mutex:
// reads and lease lookups under the shared lock, writes (apply_*, compact,
// grant/revoke) under the exclusive one, which only the writer thread takes.
// The replay on open runs before any other thread exists. Lease deadlines are
// atomics, so a keep-alive moves one under the shared lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/result.h"
#include "store/store.h"

namespace zeppelin::store::embedded {

// One version of a key. A tombstone (version 0) records a deletion.
struct Entry {
  int64_t mod_revision = 0;
  int64_t sub = 0;  // order of the change within its revision
  int64_t create_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
  std::string value;
  bool tombstone() const { return version == 0; }
};

// Every version of a key since the last compaction, oldest first.
using History = std::vector<Entry>;

struct Lease {
  int64_t id = 0;
  int64_t ttl = 0;                   // seconds
  std::atomic<int64_t> deadline{0};  // clock ticks (ns since the clock's epoch)
  std::set<std::string> keys;
};

// The clock tick `ttl` seconds after `now`, saturating rather than wrapping
// (a wrapped deadline lies in the past: the lease would expire at once).
int64_t deadline_after(int64_t now, int64_t ttl);

// What one group commit writes to SQLite and then publishes.
struct Batch {
  struct Row {
    std::string key;
    Entry entry;
  };
  std::vector<Row> rows;                             // new versions, tombstones included
  std::vector<std::pair<int64_t, int64_t>> removed;  // (revision, sub) dropped by compaction
  std::vector<std::pair<int64_t, int64_t>> leases;   // granted: (id, ttl)
  std::vector<int64_t> revoked;
  bool compacted = false;
  int64_t compact_revision = 0;  // the compaction point, once `compacted`
  std::vector<Event> events;
  int64_t revision = 0;  // the store's revision once the batch is applied
  bool empty() const { return rows.empty() && removed.empty() && leases.empty() && revoked.empty() && !compacted; }
};

// True when `key` lies in the range etcd's (start, end) spells (store.h's KeyRange).
inline bool in_range(const std::string& key, const std::string& start, const std::string& end) {
  if (end.empty()) return key == start;
  if (end.size() == 1 && end[0] == '\0') return key >= start;
  return key >= start && key < end;
}

// The errors the index answers with: typed codes, in etcd's words (store.h's kErr*).
Error compacted_error(int64_t asked, int64_t compacted);
Error future_error(int64_t asked, int64_t current);
Error lease_not_found(int64_t id);

class MvccIndex {
 public:
  // ---- reads (shared lock) ------------------------------------------------

  // A range read at `visible` (the newest revision it may see), answered as
  // of `current` (the store's revision).
  Result<RangeResponse> range(const RangeRequest& request, int64_t visible, int64_t current) const;
  // Events of keys in the watch's range with revisions in [start_revision, upto], in order.
  std::vector<Event> history_events(const WatchRequest& request, int64_t upto) const;

  int64_t revision() const { return revision_; }  // the newest applied, committed or not
  int64_t compact_revision() const { return compact_revision_; }

  const Lease* find_lease(int64_t id) const;
  Lease* find_lease(int64_t id);
  std::vector<int64_t> lease_ids() const;  // unordered
  // The earliest deadline of any lease (INT64_MAX when there is none).
  int64_t earliest_deadline() const;
  // The leases whose deadline is at or before `now`.
  std::vector<int64_t> expired_leases(int64_t now) const;

  // ---- writes (exclusive lock); each records what it changed in `batch` ----

  // Each takes the next revision if it changes anything; a failed one changes nothing.
  Status apply_put(const PutRequest& request, PutResponse& response, Batch& batch);
  Status apply_delete(const DeleteRangeRequest& request, DeleteRangeResponse& response, Batch& batch);
  Status apply_txn(const TxnRequest& request, TxnResponse& response, Batch& batch);
  // Drops every version not live at `revision` or newer. The caller checks
  // that `revision` lies between the compaction point and the current one.
  void compact(Batch& batch, int64_t revision);

  // A new lease of `ttl` seconds from `now` (clock ticks); id 0 picks a
  // fresh id with `random`. Fails when `id` is taken.
  Result<LeaseGrant> grant_lease(int64_t id, int64_t ttl, int64_t now, std::mt19937_64& random, Batch& batch);
  // Deletes the lease's keys in one revision and forgets it; the lease must exist.
  void revoke_lease(int64_t id, Batch& batch);

  // ---- replaying the database (on open, before the store serves) -----------

  void load_meta(int64_t revision, int64_t compact_revision);
  // As etcd does, a restart gives every lease its full TTL again, from `now`.
  void load_lease(int64_t id, int64_t ttl, int64_t now);
  // Rows come in (revision, sub) order.
  void load_entry(std::string key, Entry entry);
  // Attaches each key's live version to its lease, once every row is in.
  void finish_load();

 private:
  // The state of one write request being applied.
  struct WriteContext {
    Batch* batch;
    int64_t revision;  // the revision its changes get
    int64_t sub = 0;
    bool changed() const { return sub > 0; }
  };
  struct AnswerBudget;

  template <typename F>
  void for_each_in_range(const std::string& key, const std::string& end, F&& f) const;
  Status validate_put(const PutRequest& r) const;
  void detach(const std::string& key, int64_t lease);
  PutResponse write_put(WriteContext& ctx, const PutRequest& r);
  DeleteRangeResponse write_delete(WriteContext& ctx, const DeleteRangeRequest& r);
  int64_t range_bytes(const RangeRequest& r, const std::vector<const PutRequest*>& puts) const;
  int64_t live_bytes(const std::string& key, const std::string& end) const;
  bool compare_holds(const Compare& c) const;
  Status check_duplicates(const std::vector<RequestOp>& ops, std::set<std::string>& put_keys) const;
  void compute_path(const TxnRequest& r, std::vector<bool>& path) const;
  Status validate_path(const TxnRequest& r, const std::vector<bool>& path, std::size_t& at, AnswerBudget& answer) const;
  Result<TxnResponse> write_txn(WriteContext& ctx, const TxnRequest& r);
  TxnResponse write_txn_branch(WriteContext& ctx, const TxnRequest& r, const std::vector<bool>& path, std::size_t& at);

  std::map<std::string, History, std::less<>> index_;
  std::unordered_map<int64_t, std::unique_ptr<Lease>> leases_;
  int64_t revision_ = 1;  // the newest applied revision
  int64_t compact_revision_ = 0;
};

}  // namespace zeppelin::store::embedded
