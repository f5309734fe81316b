// StoreDb: the embedded store's durable side — its directory (the lock that
// keeps other processes out), the SQLite database in WAL mode, the replay of
// the database into the index on open, and the commit of each group of writes
// as one transaction with one fsync. A second connection checkpoints the WAL
// on a thread of its own, so that the writer never waits for a checkpoint.
//
// Threading: open() and load() run before the store serves; commit() and
// used_bytes() on the writer thread only (the main connection is not
// thread-safe). The checkpointer's connection and flags are its own, guarded
// by checkpoint_mu_. commits() may be read from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/result.h"
#include "store/mvcc_index.h"
#include "store/sqlite.h"

namespace zeppelin::store::embedded {

// Holds DIR/store.lock for as long as it lives: one process per store, since
// two writers on one database would each keep their own index.
class DirectoryLock {
 public:
  static Result<std::unique_ptr<DirectoryLock>> take(const std::string& dir);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  explicit DirectoryLock(int fd) : fd_(fd) {}
  int fd_;
};

class StoreDb {
 public:
  // Opens (creating it if missing) the store in `dir`, with its write-ahead
  // log reserved to `wal_reserve_bytes` (EmbeddedStoreOptions).
  static Result<std::unique_ptr<StoreDb>> open(const std::string& dir, int64_t wal_reserve_bytes);
  // Stops the checkpointer; the directory lock goes last.
  ~StoreDb();
  StoreDb(const StoreDb&) = delete;
  StoreDb& operator=(const StoreDb&) = delete;

  // Replays the database into `index`; leases count their TTL from `now`.
  Status load(MvccIndex& index, int64_t now);
  // Writes the batch in one transaction and returns once it is durable (nothing to do for an empty one).
  Status commit(const Batch& batch);
  // The database's pages in use (those compaction freed are not), in bytes.
  Result<int64_t> used_bytes();
  int64_t commits() const { return commits_.load(); }

 private:
  explicit StoreDb(std::string dir) : dir_(std::move(dir)) {}
  Status open(int64_t wal_reserve_bytes);
  Status sync_directory();
  Status prepare_statements();
  Status write_batch(const Batch& batch);
  // SQLite calls this after each commit with the number of frames in the WAL.
  static int on_wal_commit(void* self, sqlite3*, const char*, int frames);
  void checkpoint_loop();

  const std::string dir_;
  std::unique_ptr<DirectoryLock> lock_;           // released last, after the threads and the database
  std::unique_ptr<sqlite::Db> db_;                // used by the writer thread only (after open)
  std::unique_ptr<sqlite::Db> checkpoint_db_;     // used by the checkpointer thread only (after open)
  static constexpr int kCheckpointFrames = 1000;  // SQLite's own default threshold
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_wanted_ = false;  // guarded by checkpoint_mu_
  bool checkpoint_stop_ = false;    // guarded by checkpoint_mu_
  std::thread checkpointer_;
  // Declared after the connection, so finalized before it closes.
  sqlite::Statement insert_kv_, delete_kv_, insert_lease_, delete_lease_, set_meta_, begin_, commit_;
  sqlite::Statement page_count_, freelist_count_, page_size_;  // the quota's measure
  std::atomic<int64_t> commits_{0};
};

}  // namespace zeppelin::store::embedded
