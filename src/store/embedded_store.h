// EmbeddedStore: the Store inside the zeppelin binary, on SQLite in WAL mode.
//
// Reads are served from an in-memory MVCC index (every key's history since the
// last compaction) under a shared lock; they never wait for the disk. Writes
// go through one writer thread that drains a queue: it applies every queued
// request to the index in order, writes them in one SQLite transaction, and
// acknowledges them all after that transaction's single fsync (group commit).
// Readers only see revisions that are committed, so nothing a reader saw can
// be lost by a crash. See docs/store.md.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "store/store.h"

namespace zeppelin::store {

struct EmbeddedStoreOptions {
  // The clock for lease expiry; tests substitute one they advance by hand.
  std::function<std::chrono::steady_clock::time_point()> clock = [] { return std::chrono::steady_clock::now(); };
  // When false, leases expire only when expire_leases() is called.
  bool expire_leases_in_background = true;
  // Leases are granted at least this many seconds (etcd's minimum is 2).
  int64_t min_lease_ttl = 2;
  // The write-ahead log is filled with zeros up to this size when the store
  // opens, and kept across restarts, so that commits overwrite blocks the file
  // already has (see docs/store.md). 0 lets it grow as SQLite appends.
  int64_t wal_reserve_bytes = 32 << 20;
  // Automatic compaction by revision (etcd's --auto-compaction-mode revision):
  // once the history holds more than this many revisions beyond the last
  // compaction point (and a tenth of it more), the writer compacts at
  // (current revision - retention) in the same commit. 0: only when asked.
  int64_t auto_compaction_retention = 0;
  // Automatic compaction by time (etcd's --auto-compaction-mode periodic):
  // history older than this is compacted. As etcd does, the writer notes the
  // revision every tenth of min(period, 1h) and, every min(period, 1h) (the
  // first time once a whole period has passed since the store opened),
  // compacts at the newest revision noted at least `period` ago. Checked as
  // writes commit: an idle store keeps its history, which does not grow, until
  // the next write. Zero: off. Not to be set with auto_compaction_retention.
  std::chrono::nanoseconds auto_compaction_period{0};
  // etcd's --quota-backend-bytes: once the database's pages in use pass this
  // many bytes, the NOSPACE alarm is raised (Store::nospace_alarm). 0: no quota.
  int64_t quota_bytes = 0;
};

// Counters for tests and benchmarks.
struct EmbeddedStoreStats {
  int64_t commits = 0;  // SQLite transactions, each one fsync
  int64_t writes = 0;   // write requests acknowledged
};

class EmbeddedStore : public Store {
 public:
  // Opens the store in directory `dir` (created if missing; the database is
  // `dir`/store.db), replaying its contents into memory.
  static Result<std::unique_ptr<EmbeddedStore>> open(const std::string& dir, EmbeddedStoreOptions options = {});

  // Revokes every lease whose deadline has passed on the configured clock.
  virtual void expire_leases() = 0;
  virtual EmbeddedStoreStats stats() = 0;
};

// The file beside the database in a store's directory that holds the etcd
// API's users, roles, auth flag and kept replica tokens (etcd_api::AuthStore
// writes it). A snapshot carries its bytes and a restore puts them back, so a
// restored store comes back as locked down as the one it was taken from.
inline constexpr const char* kAuthStateFile = "auth.json";

// Replaces the store in `dir` with the snapshot file `snapshot_path` (made by
// Store::snapshot). The store must not be open. A snapshot that carries auth
// state replaces `dir`/auth.json with it; an older one without it leaves the
// file as it is (a store without one is locked down at its next start).
Status restore_snapshot(const std::string& snapshot_path, const std::string& dir);

// The database file of the store in `dir`.
std::string database_path(const std::string& dir);

}  // namespace zeppelin::store
