#include "store/embedded_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <shared_mutex>
#include <thread>
#include <variant>
#include <vector>

#include "common/fs_util.h"
#include "common/log.h"
#include "store/mvcc_index.h"
#include "store/sqlite.h"
#include "store/watch_hub.h"

namespace zeppelin::store {

namespace {

// The table of a snapshot file that holds the store directory's auth state
// (kAuthStateFile) as one blob. Only snapshots have it: a restore reads it and
// drops it before the copy becomes the store's database.
constexpr const char* kSnapshotAuthTable = "snapshot_auth_state";

// Adds the auth state file, when the store has one, to the snapshot copy at `snapshot_path`.
Status add_auth_state(const std::string& snapshot_path, const std::string& auth_file) {
  if (::access(auth_file.c_str(), F_OK) != 0) return ok_status();  // auth never configured
  auto content = read_file(auth_file);
  if (!content) return content.error();
  auto db = sqlite::Db::open(snapshot_path);
  if (!db) return db.error();
  if (auto s = (*db)->exec(std::string("CREATE TABLE ") + kSnapshotAuthTable + " (content BLOB NOT NULL)"); !s) return s;
  auto insert = (*db)->prepare(std::string("INSERT INTO ") + kSnapshotAuthTable + " (content) VALUES (?1)");
  if (!insert) return insert.error();
  insert->bind_blob(1, *content);
  return insert->run();
}

// Takes the auth state out of a restored copy: its content, or nullopt for a
// snapshot made before snapshots carried it. Its pages are zeroed on the way
// out (the state holds kept tokens), so the store's database keeps no copy.
Result<std::optional<std::string>> take_auth_state(const std::string& restored_path) {
  auto db = sqlite::Db::open(restored_path);
  if (!db) return db.error();
  auto found = (*db)->prepare(std::string("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '") +
                              kSnapshotAuthTable + "'");
  if (!found) return found.error();
  auto row = found->step();
  if (!row) return row.error();
  const bool present = *row && found->column_int(0) == 1;
  found->reset();
  if (!present) return std::optional<std::string>();
  auto select = (*db)->prepare(std::string("SELECT content FROM ") + kSnapshotAuthTable);
  if (!select) return select.error();
  auto content_row = select->step();
  if (!content_row) return content_row.error();
  if (!*content_row) return make_error(Errc::kInvalidArgument, restored_path + ": the snapshot's auth state is empty");
  std::string content = select->column_blob(0);
  select->reset();
  if (auto s = (*db)->exec("PRAGMA secure_delete = ON"); !s) return s.error();
  if (auto s = (*db)->exec(std::string("DROP TABLE ") + kSnapshotAuthTable); !s) return s.error();
  return std::optional<std::string>(std::move(content));
}

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

// Holds DIR/store.lock for as long as it lives: one process per store, since
// two writers on one database would each keep their own index.
class DirectoryLock {
 public:
  static Result<std::unique_ptr<DirectoryLock>> take(const std::string& dir) {
    const std::string path = dir + "/store.lock";
    const int fd = open_owner_only(path, O_RDWR);
    if (fd < 0) return make_error(Errc::kInternal, "open " + path + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return make_error(Errc::kUnavailable, "the store in " + dir + " is in use by another process");
    }
    return std::unique_ptr<DirectoryLock>(new DirectoryLock(fd));
  }
  ~DirectoryLock() { ::close(fd_); }
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  explicit DirectoryLock(int fd) : fd_(fd) {}
  int fd_;
};

using embedded::Batch;
using embedded::Entry;
using embedded::Lease;
using embedded::MvccIndex;
using embedded::WatchHub;

struct PendingWrite {
  std::function<Status(Batch&)> apply;
  Status status;
  std::promise<void> done;                  // a blocking caller waits on it
  std::function<void(const Status&)> then;  // or an asynchronous caller is called back
};

class StoreImpl final : public EmbeddedStore {
 public:
  StoreImpl(std::string dir, EmbeddedStoreOptions options) : dir_(std::move(dir)), options_(std::move(options)) {}

  ~StoreImpl() override {
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    {
      std::lock_guard<std::mutex> lock(lease_timer_mu_);
      lease_timer_stop_ = true;
    }
    lease_timer_cv_.notify_all();
    if (writer_.joinable()) writer_.join();
    if (lease_timer_.joinable()) lease_timer_.join();
    {
      std::lock_guard<std::mutex> lock(checkpoint_mu_);
      checkpoint_stop_ = true;
    }
    checkpoint_cv_.notify_all();
    if (checkpointer_.joinable()) checkpointer_.join();
  }

  Status open() {
    if (auto s = make_dirs(dir_, 0700); !s) return s;
    auto lock = DirectoryLock::take(dir_);
    if (!lock) return lock.error();
    lock_ = std::move(*lock);
    if (auto s = reserve_wal(database_path(dir_) + "-wal", options_.wal_reserve_bytes); !s) return s;
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
    if (auto s = load(); !s) return s;
    hub_.start_at(index_.revision());
    writer_ = std::thread([this] { writer_loop(); });
    auto checkpoint_db = sqlite::Db::open(database_path(dir_));
    if (!checkpoint_db) return checkpoint_db.error();
    checkpoint_db_ = std::move(*checkpoint_db);
    if (auto s = keep_wal_on_close(*checkpoint_db_); !s) return s;
    if (auto s = checkpoint_db_->exec("PRAGMA synchronous=FULL"); !s) return s;
    sqlite3_wal_hook(db_->handle(), &StoreImpl::on_wal_commit, this);
    checkpointer_ = std::thread([this] { checkpoint_loop(); });
    if (options_.expire_leases_in_background) lease_timer_ = std::thread([this] { lease_timer_loop(); });
    return ok_status();
  }

  // ---- reads -------------------------------------------------------------

  Result<RangeResponse> range(const RangeRequest& request) override {
    std::shared_lock lock(index_mu_);
    const int64_t current = hub_.committed_revision();
    return index_.range(request, current, current);
  }

  Result<LeaseStatus> lease_time_to_live(int64_t id, bool with_keys) override {
    std::shared_lock lock(index_mu_);
    const Lease* l = index_.find_lease(id);
    if (!l) return embedded::lease_not_found(id);
    LeaseStatus s;
    s.id = id;
    s.granted_ttl = l->ttl;
    const int64_t left = l->deadline.load() - now_ticks();
    s.ttl = left <= 0 ? -1 : left / 1'000'000'000;
    if (with_keys) s.keys.assign(l->keys.begin(), l->keys.end());
    return s;
  }

  std::vector<int64_t> lease_list() override {
    std::shared_lock lock(index_mu_);
    std::vector<int64_t> ids = index_.lease_ids();
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  Result<int64_t> lease_keep_alive(int64_t id) override {
    std::shared_lock lock(index_mu_);
    Lease* l = index_.find_lease(id);
    if (!l) return embedded::lease_not_found(id);
    const int64_t now = now_ticks();
    if (l->deadline.load() <= now) return embedded::lease_not_found(id);  // expired, its revocation is under way
    l->deadline.store(embedded::deadline_after(now, l->ttl));
    return l->ttl;
  }

  StoreStatus status() override {
    StoreStatus s;
    {
      std::shared_lock lock(index_mu_);
      s.revision = hub_.committed_revision();
      s.compact_revision = index_.compact_revision();
    }
    // The database file alone, as etcd reports its backend file without its
    // (preallocated) WAL: ours holds a fixed reserve (reserve_wal).
    std::error_code ec;
    const auto size = std::filesystem::file_size(database_path(dir_), ec);
    if (!ec) s.db_size = static_cast<int64_t>(size);
    return s;
  }

  Status snapshot(const std::string& path) override {
    // A second connection reads a consistent state while the writer goes on.
    auto reader = sqlite::Db::open(database_path(dir_), /*read_only=*/true);
    if (!reader) return reader.error();
    const std::string part = path + ".part";
    ::unlink(part.c_str());
    if (auto s = (*reader)->backup_to(part); !s) {
      ::unlink(part.c_str());
      return s;
    }
    if (auto s = add_auth_state(part, dir_ + "/" + kAuthStateFile); !s) {
      ::unlink(part.c_str());
      return s;
    }
    if (::rename(part.c_str(), path.c_str()) != 0) {
      Error e = make_error(Errc::kInternal, "rename " + part + " to " + path + ": " + std::strerror(errno));
      ::unlink(part.c_str());
      return e;
    }
    return ok_status();
  }

  // ---- writes ------------------------------------------------------------

  Result<PutResponse> put(const PutRequest& request) override {
    PutResponse response;
    Status s = submit([&](Batch& batch) { return apply_put(request, response, batch); });
    if (!s) return s.error();
    return response;
  }

  Result<DeleteRangeResponse> delete_range(const DeleteRangeRequest& request) override {
    if (request.key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
    DeleteRangeResponse response;
    Status s = submit([&](Batch& batch) { return index_.apply_delete(request, response, batch); });
    if (!s) return s.error();
    return response;
  }

  Result<TxnResponse> txn(const TxnRequest& request) override {
    TxnResponse response;
    Status s = submit([&](Batch& batch) { return apply_txn(request, response, batch); });
    if (!s) return s.error();
    return response;
  }

  void put_async(const PutRequest& request, std::function<void(Result<PutResponse>)> done) override {
    auto state = std::make_shared<std::pair<PutRequest, PutResponse>>(request, PutResponse{});
    submit_async([this, state](Batch& batch) { return apply_put(state->first, state->second, batch); },
                 [state, done = std::move(done)](const Status& s) {
                   if (!s) return done(s.error());
                   done(std::move(state->second));
                 });
  }

  void delete_range_async(const DeleteRangeRequest& request,
                          std::function<void(Result<DeleteRangeResponse>)> done) override {
    if (request.key.empty()) return done(make_error(Errc::kInvalidArgument, kErrEmptyKey));
    auto state = std::make_shared<std::pair<DeleteRangeRequest, DeleteRangeResponse>>(request, DeleteRangeResponse{});
    submit_async([this, state](Batch& batch) { return index_.apply_delete(state->first, state->second, batch); },
                 [state, done = std::move(done)](const Status& s) {
                   if (!s) return done(s.error());
                   done(std::move(state->second));
                 });
  }

  void txn_async(const TxnRequest& request, std::function<void(Result<TxnResponse>)> done) override {
    auto state = std::make_shared<std::pair<TxnRequest, TxnResponse>>(request, TxnResponse{});
    submit_async([this, state](Batch& batch) { return apply_txn(state->first, state->second, batch); },
                 [state, done = std::move(done)](const Status& s) {
                   if (!s) return done(s.error());
                   done(std::move(state->second));
                 });
  }

  Result<CompactResponse> compact(int64_t revision) override {
    CompactResponse response;
    Status s = submit([&](Batch& batch) -> Status {
      if (revision > index_.revision()) return embedded::future_error(revision, index_.revision());
      if (revision <= index_.compact_revision()) return embedded::compacted_error(revision, index_.compact_revision());
      index_.compact(batch, revision);
      response.revision = index_.revision();
      return ok_status();
    });
    if (!s) return s.error();
    return response;
  }

  Result<LeaseGrant> lease_grant(int64_t id, int64_t ttl) override {
    if (id < 0) return make_error(Errc::kInvalidArgument, "lease id " + std::to_string(id) + " is negative");
    if (ttl > kMaxLeaseTtl) {
      return make_error(Errc::kInvalidArgument, std::string(kErrLeaseTtlTooLarge) + " (" + std::to_string(ttl) +
                                                    " s, at most " + std::to_string(kMaxLeaseTtl) + ")");
    }
    LeaseGrant grant;
    Status s = submit([&](Batch& batch) -> Status {
      if (nospace_.load()) return nospace_error();
      auto granted = index_.grant_lease(id, std::max(ttl, options_.min_lease_ttl), now_ticks(), random_, batch);
      if (!granted) return granted.error();
      grant = *granted;
      return ok_status();
    });
    if (!s) return s.error();
    lease_timer_cv_.notify_all();
    return grant;
  }

  Status lease_revoke(int64_t id) override {
    return submit([&](Batch& batch) -> Status {
      if (!index_.find_lease(id)) return embedded::lease_not_found(id);
      index_.revoke_lease(id, batch);
      return ok_status();
    });
  }

  void expire_leases() override {
    std::vector<int64_t> expired;
    {
      std::shared_lock lock(index_mu_);
      expired = index_.expired_leases(now_ticks());
    }
    // A lease revoked or kept alive meanwhile is left alone.
    for (int64_t id : expired) {
      (void)submit([&](Batch& batch) -> Status {
        const Lease* l = index_.find_lease(id);
        if (!l || l->deadline.load() > now_ticks()) return ok_status();
        index_.revoke_lease(id, batch);
        return ok_status();
      });
    }
  }

  EmbeddedStoreStats stats() override { return {commits_.load(), writes_.load()}; }

  bool nospace_alarm() override { return nospace_.load(); }
  void disarm_nospace_alarm() override {
    if (nospace_.exchange(false)) log::info("store {}: NOSPACE alarm disarmed", dir_);
  }

  // ---- watches -----------------------------------------------------------

  Result<std::unique_ptr<Watch>> watch(const WatchRequest& request, WatchCallback callback) override {
    return hub_.watch(request, std::move(callback), index_, index_mu_);
  }

 private:
  int64_t now_ticks() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(options_.clock().time_since_epoch()).count();
  }

  Status sync_directory() {
    const int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) {
      const std::string why = std::strerror(errno);
      if (fd >= 0) ::close(fd);
      return make_error(Errc::kInternal, "fsync " + dir_ + ": " + why);
    }
    ::close(fd);
    return ok_status();
  }
  Status prepare_statements() {
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
  // Replays the database into the in-memory index_.
  Status load() {
    const int64_t now = now_ticks();
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
    index_.load_meta(revision, compact_revision);
    auto leases = db_->prepare("SELECT id, ttl FROM lease");
    if (!leases) return leases.error();
    for (;;) {
      auto row = leases->step();
      if (!row) return row.error();
      if (!*row) break;
      index_.load_lease(leases->column_int(0), leases->column_int(1), now);
    }
    auto kv = db_->prepare(
        "SELECT revision, sub, key, create_revision, version, lease, value FROM kv ORDER BY revision, sub");
    if (!kv) return kv.error();
    for (;;) {
      auto row = kv->step();
      if (!row) return row.error();
      if (!*row) break;
      Entry e{kv->column_int(0), kv->column_int(1), kv->column_int(3),
              kv->column_int(4), kv->column_int(5), kv->column_blob(6)};
      index_.load_entry(kv->column_blob(2), std::move(e));
    }
    index_.finish_load();
    return ok_status();
  }
  Status commit(const Batch& batch) {
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
  Status write_batch(const Batch& batch) {
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
  // The database's pages in use (those compaction freed are not), in bytes.
  Result<int64_t> used_bytes() {
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
  // SQLite calls this after each commit with the number of frames in the WAL.
  static int on_wal_commit(void* self, sqlite3*, const char*, int frames) {
    auto* store = static_cast<StoreImpl*>(self);
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
  void checkpoint_loop() {
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
  // ---- the writer thread ---------------------------------------------------

  // Queues a write for the next group commit; `then` runs on the writer
  // thread once the write is durable or has failed.
  void submit_async(std::function<Status(Batch&)> apply, std::function<void(const Status&)> then) {
    auto write = std::make_unique<PendingWrite>();
    write->apply = std::move(apply);
    write->then = std::move(then);
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      if (!stopping_) {
        queue_.push_back(write.release());
        queue_cv_.notify_one();
        return;
      }
    }
    write->then(make_error(Errc::kUnavailable, "store " + dir_ + " is closing"));
  }

  Status submit(std::function<Status(Batch&)> apply) {
    PendingWrite write{std::move(apply), {}, {}, {}};
    auto done = write.done.get_future();
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      if (stopping_) return make_error(Errc::kUnavailable, "store " + dir_ + " is closing");
      queue_.push_back(&write);
    }
    queue_cv_.notify_one();
    done.wait();
    return write.status;
  }

  void writer_loop() {
    std::vector<PendingWrite*> writes;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(queue_mu_);
        queue_cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
        if (queue_.empty()) return;
        writes.swap(queue_);
      }
      Batch batch;
      if (failed_) {
        for (auto* w : writes) w->status = *failed_;
      } else {
        {
          std::unique_lock lock(index_mu_);
          for (auto* w : writes) w->status = w->apply(batch);
          auto_compact(batch);
          batch.revision = index_.revision();
        }
        if (Status s = commit(batch); !s) {
          // The index is ahead of the disk now; refuse every write from here on.
          failed_ = make_error(Errc::kInternal, "store " + dir_ + " stopped accepting writes: " + s.error().message);
          for (auto* w : writes) w->status = *failed_;
        } else {
          hub_.publish(batch);
          writes_ += static_cast<int64_t>(writes.size());
          check_quota(batch);
        }
      }
      for (auto* w : writes) {
        if (w->then) {
          w->then(w->status);
          delete w;  // queued by submit_async, owned by the queue since
        } else {
          w->done.set_value();
        }
      }
      writes.clear();
    }
  }

  // Compacts within `batch` once the history passes the retention by a tenth
  // of it (at least one revision), so that compactions, which visit every
  // key, come once per retention/10 writes.
  void auto_compact(Batch& batch) {
    if (options_.auto_compaction_period.count() > 0) return compact_periodically(batch);
    const int64_t retention = options_.auto_compaction_retention;
    if (retention <= 0) return;
    const int64_t target = index_.revision() - retention;
    if (target - index_.compact_revision() < std::max<int64_t>(1, retention / 10)) return;
    index_.compact(batch, target);
  }

  // The periodic mode (EmbeddedStoreOptions::auto_compaction_period). A noted
  // revision was current when noted, so the newest one noted before the
  // cutoff keeps at least a whole period of history.
  void compact_periodically(Batch& batch) {
    const auto period = options_.auto_compaction_period;
    const auto interval = std::min<std::chrono::nanoseconds>(period, std::chrono::hours(1));
    const auto now = options_.clock();
    if (revision_samples_.empty() || now - revision_samples_.back().first >= interval / 10) {
      revision_samples_.emplace_back(now, index_.revision());
    }
    const auto since_last = now - last_periodic_compaction_;
    if (since_last < (periodic_compactions_ == 0 ? period : interval)) return;
    const auto cutoff = now - period;
    while (revision_samples_.size() > 1 && revision_samples_[1].first <= cutoff) revision_samples_.pop_front();
    if (revision_samples_.front().first > cutoff) return;  // nothing noted that long ago
    last_periodic_compaction_ = now;
    ++periodic_compactions_;
    if (const int64_t target = revision_samples_.front().second; target > index_.compact_revision()) {
      index_.compact(batch, target);
    }
  }

  // The writes the NOSPACE alarm refuses are refused before the index sees them.
  Status apply_put(const PutRequest& request, PutResponse& response, Batch& batch) {
    if (nospace_.load()) return nospace_error();
    return index_.apply_put(request, response, batch);
  }

  Status apply_txn(const TxnRequest& request, TxnResponse& response, Batch& batch) {
    if (nospace_.load() && has_put(request)) return nospace_error();
    return index_.apply_txn(request, response, batch);
  }

  // After each commit: raises the NOSPACE alarm when the store passes its
  // quota; a compaction that brings it back under lowers it.
  void check_quota(const Batch& batch) {
    if (options_.quota_bytes <= 0 || batch.empty()) return;
    auto used = used_bytes();
    if (!used) return;
    if (*used > options_.quota_bytes) {
      if (!nospace_.exchange(true)) {
        log::warn("store {}: {} bytes in use, over the quota of {}: NOSPACE alarm raised, writes refused until "
                  "compaction frees space",
                  dir_, *used, options_.quota_bytes);
      }
    } else if (batch.compacted && nospace_.exchange(false)) {
      log::info("store {}: {} bytes in use after compaction: NOSPACE alarm lowered", dir_, *used);
    }
  }

  static Error nospace_error() { return make_error(Errc::kInternal, kErrNoSpace); }

  static bool has_put(const TxnRequest& r) {
    for (const auto* ops : {&r.success, &r.failure}) {
      for (const auto& op : *ops) {
        if (std::holds_alternative<PutRequest>(op)) return true;
        if (const auto* txn = std::get_if<std::shared_ptr<TxnRequest>>(&op); txn && *txn && has_put(**txn)) {
          return true;
        }
      }
    }
    return false;
  }

  void lease_timer_loop() {
    std::unique_lock<std::mutex> lock(lease_timer_mu_);
    while (!lease_timer_stop_) {
      int64_t earliest;
      {
        std::shared_lock index(index_mu_);
        earliest = index_.earliest_deadline();
      }
      if (earliest <= now_ticks()) {
        lock.unlock();
        expire_leases();
        lock.lock();
        continue;
      }
      // Woken early by a grant or shutdown; a keep-alive only moves deadlines later.
      // At most an hour: a far deadline (up to kMaxLeaseTtl away) added to
      // the clock inside wait_for would overflow it.
      const auto wait = std::chrono::nanoseconds(
          std::min<int64_t>(earliest - now_ticks(), std::chrono::nanoseconds(std::chrono::hours(1)).count()));
      lease_timer_cv_.wait_for(lock, wait);
    }
  }

  const std::string dir_;
  const EmbeddedStoreOptions options_;
  std::unique_ptr<DirectoryLock> lock_;           // released last, after the threads and the database
  std::unique_ptr<sqlite::Db> db_;                // used by the writer thread only (after open)
  std::unique_ptr<sqlite::Db> checkpoint_db_;     // used by the checkpointer thread only (after open)
  static constexpr int kCheckpointFrames = 1000;  // SQLite's own default threshold
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_wanted_ = false;  // guarded by checkpoint_mu_
  bool checkpoint_stop_ = false;    // guarded by checkpoint_mu_
  std::thread checkpointer_;
  sqlite::Statement insert_kv_, delete_kv_, insert_lease_, delete_lease_, set_meta_, begin_, commit_;
  sqlite::Statement page_count_, freelist_count_, page_size_;  // the quota's measure
  std::atomic<int64_t> commits_{0};

  // The index. Readers share index_mu_; the writer thread alone takes it exclusively.
  mutable std::shared_mutex index_mu_;
  MvccIndex index_;                                 // guarded by index_mu_
  std::mt19937_64 random_{std::random_device{}()};  // writer thread only
  // Periodic compaction's notes (time, revision then), oldest first, and its
  // last run (the store's opening before the first). Writer thread only.
  std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> revision_samples_;
  std::chrono::steady_clock::time_point last_periodic_compaction_ = options_.clock();
  int64_t periodic_compactions_ = 0;
  std::optional<Error> failed_;       // writer thread only
  std::atomic<bool> nospace_{false};  // the NOSPACE alarm; set by the writer thread

  WatchHub hub_;  // its lock is taken before index_mu_ when both are needed

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<PendingWrite*> queue_;  // guarded by queue_mu_
  bool stopping_ = false;             // guarded by queue_mu_
  std::thread writer_;

  std::mutex lease_timer_mu_;
  std::condition_variable lease_timer_cv_;
  bool lease_timer_stop_ = false;  // guarded by lease_timer_mu_
  std::thread lease_timer_;

  std::atomic<int64_t> writes_{0};
};

}  // namespace

std::string database_path(const std::string& dir) { return dir + "/store.db"; }

Result<std::unique_ptr<EmbeddedStore>> EmbeddedStore::open(const std::string& dir, EmbeddedStoreOptions options) {
  auto store = std::make_unique<StoreImpl>(dir, std::move(options));
  if (auto s = store->open(); !s) return s.error();
  return std::unique_ptr<EmbeddedStore>(std::move(store));
}

Status restore_snapshot(const std::string& snapshot_path, const std::string& dir) {
  auto snapshot = sqlite::Db::open(snapshot_path, /*read_only=*/true);
  if (!snapshot) return snapshot.error();
  auto check = (*snapshot)->prepare("SELECT count(*) FROM sqlite_master WHERE name IN ('kv', 'lease', 'meta')");
  if (!check)
    return make_error(Errc::kInvalidArgument, snapshot_path + " is not a store snapshot: " + check.error().message);
  auto row = check->step();
  if (!row || !*row || check->column_int(0) != 3) {
    return make_error(Errc::kInvalidArgument,
                      snapshot_path + " is not a store snapshot (tables kv, lease, meta missing)");
  }
  check->reset();
  if (auto s = make_dirs(dir, 0700); !s) return s;
  auto lock = DirectoryLock::take(dir);
  if (!lock) return lock.error();
  const std::string target = database_path(dir);
  const std::string part = target + ".restore";
  ::unlink(part.c_str());
  if (auto s = (*snapshot)->backup_to(part); !s) return s;
  auto auth_state = take_auth_state(part);
  if (!auth_state) {
    ::unlink(part.c_str());
    return auth_state.error();
  }
  for (const char* suffix : {"-wal", "-shm"}) ::unlink((target + suffix).c_str());
  if (::rename(part.c_str(), target.c_str()) != 0) {
    return make_error(Errc::kInternal, "rename " + part + " to " + target + ": " + std::strerror(errno));
  }
  if (*auth_state) return write_file_atomic(dir + "/" + kAuthStateFile, **auth_state, 0600);
  return ok_status();
}

}  // namespace zeppelin::store
