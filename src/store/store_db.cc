#include "store/store_db.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/fs_util.h"
#include "common/log.h"
#include "store/embedded_store.h"

namespace zeppelin::store {

std::string database_path(const std::string& dir) { return dir + "/store.db"; }

namespace embedded {

namespace {

// Extends the WAL file at `path` with zeros to at least `bytes`. A commit that
// appends to a file makes its fdatasync journal the new size as well; one that
// overwrites existing blocks flushes only the data, which on the disks measured
// here is a third faster (etcd preallocates its WAL segments for the same
// reason). SQLite reads a WAL only up to its last valid frame, so the zeros are
// never mistaken for frames, and bytes already in the file (a WAL a crash left
// behind) are not touched.
Status reserve_wal(const std::string& path, int64_t bytes) {
  if (bytes <= 0) return ok_status();
  const int fd = open_owner_only(path, O_WRONLY);
  if (fd < 0) return make_error(Errc::kInternal, path + ": " + std::strerror(errno));
  struct stat st {};
  Status result = ok_status();
  if (::fstat(fd, &st) != 0) {
    result = make_error(Errc::kInternal, path + ": " + std::strerror(errno));
  } else if (st.st_size < bytes) {
    const std::string zeros(1 << 20, '\0');
    for (off_t at = st.st_size; at < bytes && result;) {
      const auto n = ::pwrite(fd, zeros.data(), std::min<off_t>(zeros.size(), bytes - at), at);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) result = make_error(Errc::kInternal, path + ": reserving the write-ahead log: " + std::strerror(errno));
      else at += n;
    }
    if (result && ::fdatasync(fd) != 0) result = make_error(Errc::kInternal, path + ": " + std::strerror(errno));
  }
  ::close(fd);
  return result;
}

// SQLite deletes the WAL when its last connection closes; keeping it keeps the reserve.
Status keep_wal_on_close(sqlite::Db& db) {
  int persist = 1;
  if (sqlite3_file_control(db.handle(), "main", SQLITE_FCNTL_PERSIST_WAL, &persist) != SQLITE_OK) {
    return make_error(Errc::kInternal, db.path() + ": cannot keep the write-ahead log across restarts");
  }
  return ok_status();
}

}  // namespace

Result<std::unique_ptr<DirectoryLock>> DirectoryLock::take(const std::string& dir) {
  const std::string path = dir + "/store.lock";
  const int fd = open_owner_only(path, O_RDWR);
  if (fd < 0) return make_error(Errc::kInternal, "open " + path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return make_error(Errc::kUnavailable, "the store in " + dir + " is in use by another process");
  }
  return std::unique_ptr<DirectoryLock>(new DirectoryLock(fd));
}

DirectoryLock::~DirectoryLock() { ::close(fd_); }

Result<std::unique_ptr<StoreDb>> StoreDb::open(const std::string& dir, int64_t wal_reserve_bytes) {
  auto db = std::unique_ptr<StoreDb>(new StoreDb(dir));
  if (auto s = db->open(wal_reserve_bytes); !s) return s.error();
  return db;
}

StoreDb::~StoreDb() {
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    checkpoint_stop_ = true;
  }
  checkpoint_cv_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
}

Status StoreDb::open(int64_t wal_reserve_bytes) {
  if (auto s = make_dirs(dir_, 0700); !s) return s;
  auto lock = DirectoryLock::take(dir_);
  if (!lock) return lock.error();
  lock_ = std::move(*lock);
  if (auto s = reserve_wal(database_path(dir_) + "-wal", wal_reserve_bytes); !s) return s;
  auto db = sqlite::Db::open(database_path(dir_));
  if (!db) return db.error();
  db_ = std::move(*db);
  if (auto s = keep_wal_on_close(*db_); !s) return s;
  if (auto s = db_->exec("PRAGMA journal_mode=WAL"); !s) return s;
  auto mode = db_->prepare("PRAGMA journal_mode");
  if (!mode) return mode.error();
  if (auto row = mode->step(); !row || !*row || mode->column_blob(0) != "wal") {
    return make_error(Errc::kInternal, database_path(dir_) + ": the file system does not support SQLite's WAL mode");
  }
  mode->reset();
  // FULL: in WAL mode, every commit fsyncs the log before it returns.
  if (auto s = db_->exec("PRAGMA synchronous=FULL"); !s) return s;
  // Checkpoints run on their own thread (below), never inside a commit.
  if (auto s = db_->exec("PRAGMA wal_autocheckpoint=0"); !s) return s;
  if (auto s = db_->exec(
          "CREATE TABLE IF NOT EXISTS kv (revision INTEGER NOT NULL, sub INTEGER NOT NULL, key BLOB NOT NULL,"
          " create_revision INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL, value BLOB NOT NULL,"
          " PRIMARY KEY (revision, sub)) WITHOUT ROWID;"
          "CREATE TABLE IF NOT EXISTS lease (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL);"
          "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);");
      !s) {
    return s;
  }
  if (auto s = sync_directory(); !s) return s;
  if (auto s = prepare_statements(); !s) return s;
  auto checkpoint_db = sqlite::Db::open(database_path(dir_));
  if (!checkpoint_db) return checkpoint_db.error();
  checkpoint_db_ = std::move(*checkpoint_db);
  if (auto s = keep_wal_on_close(*checkpoint_db_); !s) return s;
  if (auto s = checkpoint_db_->exec("PRAGMA synchronous=FULL"); !s) return s;
  sqlite3_wal_hook(db_->handle(), &StoreDb::on_wal_commit, this);
  checkpointer_ = std::thread([this] { checkpoint_loop(); });
  return ok_status();
}

Status StoreDb::sync_directory() {
  const int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return make_error(Errc::kInternal, "fsync " + dir_ + ": " + why);
  }
  ::close(fd);
  return ok_status();
}

Status StoreDb::prepare_statements() {
  struct {
    sqlite::Statement* stmt;
    const char* sql;
  } const statements[] = {
      {&insert_kv_, "INSERT INTO kv VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
      {&delete_kv_, "DELETE FROM kv WHERE revision = ?1 AND sub = ?2"},
      {&insert_lease_, "INSERT OR REPLACE INTO lease VALUES (?1, ?2)"},
      {&delete_lease_, "DELETE FROM lease WHERE id = ?1"},
      {&set_meta_, "INSERT OR REPLACE INTO meta VALUES (?1, ?2)"},
      {&begin_, "BEGIN IMMEDIATE"},
      {&page_count_, "PRAGMA page_count"},
      {&freelist_count_, "PRAGMA freelist_count"},
      {&page_size_, "PRAGMA page_size"},
      {&commit_, "COMMIT"},
  };
  for (const auto& s : statements) {
    auto prepared = db_->prepare(s.sql);
    if (!prepared) return prepared.error();
    *s.stmt = std::move(*prepared);
  }
  return ok_status();
}

Status StoreDb::load(MvccIndex& index, int64_t now) {
  auto meta = db_->prepare("SELECT name, value FROM meta");
  if (!meta) return meta.error();
  int64_t revision = 1;
  int64_t compact_revision = 0;
  for (;;) {
    auto row = meta->step();
    if (!row) return row.error();
    if (!*row) break;
    const std::string name = meta->column_blob(0);
    if (name == "revision") revision = meta->column_int(1);
    if (name == "compact_revision") compact_revision = meta->column_int(1);
  }
  index.load_meta(revision, compact_revision);
  auto leases = db_->prepare("SELECT id, ttl FROM lease");
  if (!leases) return leases.error();
  for (;;) {
    auto row = leases->step();
    if (!row) return row.error();
    if (!*row) break;
    index.load_lease(leases->column_int(0), leases->column_int(1), now);
  }
  auto kv =
      db_->prepare("SELECT revision, sub, key, create_revision, version, lease, value FROM kv ORDER BY revision, sub");
  if (!kv) return kv.error();
  for (;;) {
    auto row = kv->step();
    if (!row) return row.error();
    if (!*row) break;
    Entry e{kv->column_int(0), kv->column_int(1), kv->column_int(3),
            kv->column_int(4), kv->column_int(5), kv->column_blob(6)};
    index.load_entry(kv->column_blob(2), std::move(e));
  }
  index.finish_load();
  return ok_status();
}

Status StoreDb::commit(const Batch& batch) {
  if (batch.empty()) return ok_status();
  if (auto s = begin_.run(); !s) return s;
  Status s = write_batch(batch);
  if (s) s = commit_.run();
  if (!s) {
    (void)db_->exec("ROLLBACK");
    return s;
  }
  ++commits_;
  return ok_status();
}

Status StoreDb::write_batch(const Batch& batch) {
  for (const auto& row : batch.rows) {
    const Entry& e = row.entry;
    insert_kv_.bind(1, e.mod_revision);
    insert_kv_.bind(2, e.sub);
    insert_kv_.bind_blob(3, row.key, false);
    insert_kv_.bind(4, e.create_revision);
    insert_kv_.bind(5, e.version);
    insert_kv_.bind(6, e.lease);
    insert_kv_.bind_blob(7, e.value, false);
    if (auto s = insert_kv_.run(); !s) return s;
  }
  for (const auto& [revision, sub] : batch.removed) {
    delete_kv_.bind(1, revision);
    delete_kv_.bind(2, sub);
    if (auto s = delete_kv_.run(); !s) return s;
  }
  for (const auto& [id, ttl] : batch.leases) {
    insert_lease_.bind(1, id);
    insert_lease_.bind(2, ttl);
    if (auto s = insert_lease_.run(); !s) return s;
  }
  for (int64_t id : batch.revoked) {
    delete_lease_.bind(1, id);
    if (auto s = delete_lease_.run(); !s) return s;
  }
  // The revision is the newest row's, except when compaction removed the
  // newest rows (tombstones): only then is it recorded on its own.
  if (batch.compacted) {
    set_meta_.bind_blob(1, "revision");
    set_meta_.bind(2, batch.revision);
    if (auto s = set_meta_.run(); !s) return s;
    set_meta_.bind_blob(1, "compact_revision");
    set_meta_.bind(2, batch.compact_revision);
    if (auto s = set_meta_.run(); !s) return s;
  }
  return ok_status();
}

Result<int64_t> StoreDb::used_bytes() {
  int64_t values[3] = {0, 0, 0};
  sqlite::Statement* statements[3] = {&page_count_, &freelist_count_, &page_size_};
  for (int i = 0; i < 3; ++i) {
    auto row = statements[i]->step();
    if (!row) return row.error();
    if (*row) values[i] = statements[i]->column_int(0);
    statements[i]->reset();
  }
  return (values[0] - values[1]) * values[2];
}

int StoreDb::on_wal_commit(void* self, sqlite3*, const char*, int frames) {
  auto* store = static_cast<StoreDb*>(self);
  if (frames >= kCheckpointFrames) {
    std::lock_guard<std::mutex> lock(store->checkpoint_mu_);
    store->checkpoint_wanted_ = true;
    store->checkpoint_cv_.notify_one();
  }
  return SQLITE_OK;
}

// Copies the WAL into the database from a second connection, beside the
// writer rather than inside one of its commits. PASSIVE never blocks the
// writer; once everything is copied, the next commit starts the WAL over.
void StoreDb::checkpoint_loop() {
  std::unique_lock<std::mutex> lock(checkpoint_mu_);
  for (;;) {
    checkpoint_cv_.wait(lock, [&] { return checkpoint_wanted_ || checkpoint_stop_; });
    if (checkpoint_stop_) return;
    checkpoint_wanted_ = false;
    lock.unlock();
    const int rc =
        sqlite3_wal_checkpoint_v2(checkpoint_db_->handle(), "main", SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      // Not fatal: the WAL keeps every commit; the next attempt may succeed.
      log::warn("store {}: checkpoint: {}", dir_, sqlite3_errmsg(checkpoint_db_->handle()));
    }
    lock.lock();
  }
}

}  // namespace embedded

}  // namespace zeppelin::store
