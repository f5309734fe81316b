#include "store/embedded_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/fs_util.h"
#include "common/log.h"
#include "store/sqlite.h"

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

using TimePoint = std::chrono::steady_clock::time_point;

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
int64_t deadline_after(int64_t now, int64_t ttl) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (ttl <= 0) return now;
  if (ttl > kMax / 1'000'000'000) return kMax;
  const int64_t span = ttl * 1'000'000'000;
  return now > kMax - span ? kMax : now + span;
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
  std::vector<Event> events;
  int64_t revision = 0;  // the store's revision once the batch is applied
  bool empty() const { return rows.empty() && removed.empty() && leases.empty() && revoked.empty() && !compacted; }
};

// The state of one write request being applied.
struct WriteContext {
  Batch* batch;
  int64_t revision;  // the revision its changes get
  int64_t sub = 0;
  bool changed() const { return sub > 0; }
};

bool in_range(const std::string& key, const std::string& start, const std::string& end) {
  if (end.empty()) return key == start;
  if (end.size() == 1 && end[0] == '\0') return key >= start;
  return key >= start && key < end;
}

// What one key-value costs in an answer: its bytes and a fixed share for the
// revisions, version and lease beside them.
int64_t answer_bytes(std::size_t key, std::size_t value) { return static_cast<int64_t>(key + value) + 48; }

Error response_too_large(int64_t max) {
  return make_error(Errc::kInvalidArgument, std::string(kErrResponseTooLarge) + " (over " + std::to_string(max) +
                                                  " bytes); ask for fewer keys at a time, paging with limit");
}

KeyValue to_kv(const std::string& key, const Entry& e) {
  return KeyValue{key, e.create_revision, e.mod_revision, e.version, e.value, e.lease};
}

// The live version of a key at `revision`, or null.
const Entry* visible_at(const History& h, int64_t revision) {
  for (auto it = h.rbegin(); it != h.rend(); ++it) {
    if (it->mod_revision <= revision) return it->tombstone() ? nullptr : &*it;
  }
  return nullptr;
}

const Entry* latest(const History& h) { return h.empty() || h.back().tombstone() ? nullptr : &h.back(); }

Error compacted_error(int64_t asked, int64_t compacted) {
  return make_error(Errc::kInvalidArgument, std::string(kErrCompacted) + " (asked " + std::to_string(asked) +
                                                ", compacted at " + std::to_string(compacted) + ")");
}

Error future_error(int64_t asked, int64_t current) {
  return make_error(Errc::kInvalidArgument, std::string(kErrFutureRevision) + " (asked " + std::to_string(asked) +
                                                ", current " + std::to_string(current) + ")");
}

Error lease_not_found(int64_t id) {
  return make_error(Errc::kNotFound, std::string(kErrLeaseNotFound) + " (lease " + std::to_string(id) + ")");
}

bool compare_number(int64_t actual, Compare::Op op, int64_t expected) {
  switch (op) {
    case Compare::Op::kEqual:
      return actual == expected;
    case Compare::Op::kNotEqual:
      return actual != expected;
    case Compare::Op::kGreater:
      return actual > expected;
    case Compare::Op::kLess:
      return actual < expected;
  }
  return false;
}

bool compare_kv(const Compare& c, const KeyValue& kv) {
  switch (c.target) {
    case Compare::Target::kValue: {
      const int cmp = kv.value.compare(c.value);
      return compare_number(cmp < 0 ? -1 : cmp > 0 ? 1 : 0, c.op, 0);
    }
    case Compare::Target::kVersion:
      return compare_number(kv.version, c.op, c.number);
    case Compare::Target::kCreateRevision:
      return compare_number(kv.create_revision, c.op, c.number);
    case Compare::Target::kModRevision:
      return compare_number(kv.mod_revision, c.op, c.number);
    case Compare::Target::kLease:
      return compare_number(kv.lease, c.op, c.number);
  }
  return false;
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

struct PendingWrite {
  std::function<Status(Batch&)> apply;
  Status status;
  std::promise<void> done;                  // a blocking caller waits on it
  std::function<void(const Status&)> then;  // or an asynchronous caller is called back
};

class StoreImpl;

class WatchImpl final : public Watch {
 public:
  WatchImpl(StoreImpl* store, WatchRequest request, WatchCallback callback)
      : store_(store), request_(std::move(request)), callback_(std::move(callback)) {}
  ~WatchImpl() override;
  void request_progress() override;
  int64_t revision() const override { return created_revision_; }

  bool matches(const Event& e) const {
    if (e.kv.mod_revision < min_revision_) return false;
    if (e.type == Event::Type::kPut ? request_.no_put : request_.no_delete) return false;
    return in_range(e.kv.key, request_.key, request_.range_end);
  }

 private:
  friend class StoreImpl;
  StoreImpl* store_;
  WatchRequest request_;
  WatchCallback callback_;
  int64_t min_revision_ = 0;  // events below it were delivered at registration (or not asked for)
  int64_t created_revision_ = 0;
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
    const int64_t current = committed_revision_.load();
    return range_locked(request, current, current);
  }

  Result<LeaseStatus> lease_time_to_live(int64_t id, bool with_keys) override {
    std::shared_lock lock(index_mu_);
    auto it = leases_.find(id);
    if (it == leases_.end()) return lease_not_found(id);
    const Lease& l = *it->second;
    LeaseStatus s;
    s.id = id;
    s.granted_ttl = l.ttl;
    const int64_t left = l.deadline.load() - now_ticks();
    s.ttl = left <= 0 ? -1 : left / 1'000'000'000;
    if (with_keys) s.keys.assign(l.keys.begin(), l.keys.end());
    return s;
  }

  std::vector<int64_t> lease_list() override {
    std::shared_lock lock(index_mu_);
    std::vector<int64_t> ids;
    for (const auto& [id, l] : leases_) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  Result<int64_t> lease_keep_alive(int64_t id) override {
    std::shared_lock lock(index_mu_);
    auto it = leases_.find(id);
    if (it == leases_.end()) return lease_not_found(id);
    Lease& l = *it->second;
    const int64_t now = now_ticks();
    if (l.deadline.load() <= now) return lease_not_found(id);  // expired, its revocation is under way
    l.deadline.store(deadline_after(now, l.ttl));
    return l.ttl;
  }

  StoreStatus status() override {
    StoreStatus s;
    {
      std::shared_lock lock(index_mu_);
      s.revision = committed_revision_.load();
      s.compact_revision = compact_revision_;
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
    Status s = submit([&](Batch& batch) { return apply_delete(request, response, batch); });
    if (!s) return s.error();
    return response;
  }

  Result<TxnResponse> txn(const TxnRequest& request) override {
    TxnResponse response;
    Status s = submit([&](Batch& batch) { return apply_txn_request(request, response, batch); });
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
    submit_async([this, state](Batch& batch) { return apply_delete(state->first, state->second, batch); },
                 [state, done = std::move(done)](const Status& s) {
                   if (!s) return done(s.error());
                   done(std::move(state->second));
                 });
  }

  void txn_async(const TxnRequest& request, std::function<void(Result<TxnResponse>)> done) override {
    auto state = std::make_shared<std::pair<TxnRequest, TxnResponse>>(request, TxnResponse{});
    submit_async([this, state](Batch& batch) { return apply_txn_request(state->first, state->second, batch); },
                 [state, done = std::move(done)](const Status& s) {
                   if (!s) return done(s.error());
                   done(std::move(state->second));
                 });
  }

  Result<CompactResponse> compact(int64_t revision) override {
    CompactResponse response;
    Status s = submit([&](Batch& batch) -> Status {
      if (revision > revision_) return future_error(revision, revision_);
      if (revision <= compact_revision_) return compacted_error(revision, compact_revision_);
      compact_locked(batch, revision);
      response.revision = revision_;
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
      if (id != 0 && leases_.count(id)) {
        return make_error(Errc::kAlreadyExists, std::string(kErrLeaseExists) + " (lease " + std::to_string(id) + ")");
      }
      int64_t chosen = id;
      while (chosen == 0 || leases_.count(chosen)) chosen = static_cast<int64_t>(random_() >> 1);
      auto lease = std::make_unique<Lease>();
      lease->id = chosen;
      lease->ttl = std::max(ttl, options_.min_lease_ttl);
      lease->deadline.store(deadline_after(now_ticks(), lease->ttl));
      batch.leases.emplace_back(chosen, lease->ttl);
      grant = {chosen, lease->ttl};
      leases_.emplace(chosen, std::move(lease));
      return ok_status();
    });
    if (!s) return s.error();
    lease_timer_cv_.notify_all();
    return grant;
  }

  Status lease_revoke(int64_t id) override {
    return submit([&](Batch& batch) -> Status {
      auto it = leases_.find(id);
      if (it == leases_.end()) return lease_not_found(id);
      WriteContext ctx{&batch, revision_ + 1};
      const std::set<std::string> keys = it->second->keys;  // deleting detaches them
      for (const auto& key : keys) delete_locked(ctx, DeleteRangeRequest{key, "", false});
      if (ctx.changed()) revision_ = ctx.revision;
      leases_.erase(id);
      batch.revoked.push_back(id);
      return ok_status();
    });
  }

  void expire_leases() override {
    std::vector<int64_t> expired;
    {
      std::shared_lock lock(index_mu_);
      const int64_t now = now_ticks();
      for (const auto& [id, l] : leases_) {
        if (l->deadline.load() <= now) expired.push_back(id);
      }
    }
    // A lease revoked or kept alive meanwhile is left alone.
    for (int64_t id : expired) {
      (void)submit([&](Batch& batch) -> Status {
        auto it = leases_.find(id);
        if (it == leases_.end() || it->second->deadline.load() > now_ticks()) return ok_status();
        WriteContext ctx{&batch, revision_ + 1};
        const std::set<std::string> keys = it->second->keys;
        for (const auto& key : keys) delete_locked(ctx, DeleteRangeRequest{key, "", false});
        if (ctx.changed()) revision_ = ctx.revision;
        leases_.erase(it);
        batch.revoked.push_back(id);
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
    if (request.key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
    auto w = std::make_unique<WatchImpl>(this, request, std::move(callback));
    std::lock_guard<std::mutex> hub(hub_mu_);
    const int64_t committed = committed_revision_.load();
    w->created_revision_ = committed;
    w->min_revision_ = std::max(request.start_revision, committed + 1);
    if (request.start_revision > 0 && request.start_revision <= committed) {
      WatchUpdate catch_up;
      catch_up.revision = committed;
      {
        std::shared_lock lock(index_mu_);
        if (request.start_revision < compact_revision_) {
          w->callback_(WatchUpdate{committed, {}, false, compact_revision_});
          return std::unique_ptr<Watch>(std::move(w));  // registered nowhere: it has ended
        }
        catch_up.events = history_events(request, committed);
      }
      if (!catch_up.events.empty()) w->callback_(std::move(catch_up));
    }
    watchers_.insert(w.get());
    return std::unique_ptr<Watch>(std::move(w));
  }

  void unregister(WatchImpl* w) {
    std::lock_guard<std::mutex> hub(hub_mu_);
    watchers_.erase(w);
  }

  void progress(WatchImpl* w) {
    std::lock_guard<std::mutex> hub(hub_mu_);
    if (watchers_.count(w)) w->callback_(WatchUpdate{committed_revision_.load(), {}, true, 0});
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

  // Replays the database into the in-memory index.
  Status load() {
    auto meta = db_->prepare("SELECT name, value FROM meta");
    if (!meta) return meta.error();
    for (;;) {
      auto row = meta->step();
      if (!row) return row.error();
      if (!*row) break;
      const std::string name = meta->column_blob(0);
      if (name == "revision") revision_ = meta->column_int(1);
      if (name == "compact_revision") compact_revision_ = meta->column_int(1);
    }
    auto leases = db_->prepare("SELECT id, ttl FROM lease");
    if (!leases) return leases.error();
    const int64_t now = now_ticks();
    for (;;) {
      auto row = leases->step();
      if (!row) return row.error();
      if (!*row) break;
      // As etcd does, a restart gives every lease its full TTL again.
      auto lease = std::make_unique<Lease>();
      lease->id = leases->column_int(0);
      lease->ttl = leases->column_int(1);
      lease->deadline.store(deadline_after(now, lease->ttl));
      leases_.emplace(lease->id, std::move(lease));
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
      revision_ = std::max(revision_, e.mod_revision);
      index_[kv->column_blob(2)].push_back(std::move(e));
    }
    for (const auto& [key, history] : index_) {
      const Entry* e = latest(history);
      if (!e || e->lease == 0) continue;
      if (auto it = leases_.find(e->lease); it != leases_.end()) it->second->keys.insert(key);
    }
    committed_revision_.store(revision_);
    return ok_status();
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
          batch.revision = revision_;
        }
        if (Status s = commit(batch); !s) {
          // The index is ahead of the disk now; refuse every write from here on.
          failed_ = make_error(Errc::kInternal, "store " + dir_ + " stopped accepting writes: " + s.error().message);
          for (auto* w : writes) w->status = *failed_;
        } else {
          publish(batch);
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
      set_meta_.bind(2, compact_revision_);
      if (auto s = set_meta_.run(); !s) return s;
    }
    return ok_status();
  }

  // Compacts within `batch` once the history passes the retention by a tenth
  // of it (at least one revision), so that compactions, which visit every
  // key, come once per retention/10 writes.
  void auto_compact(Batch& batch) {
    if (options_.auto_compaction_period.count() > 0) return compact_periodically(batch);
    const int64_t retention = options_.auto_compaction_retention;
    if (retention <= 0) return;
    const int64_t target = revision_ - retention;
    if (target - compact_revision_ < std::max<int64_t>(1, retention / 10)) return;
    compact_locked(batch, target);
  }

  // The periodic mode (EmbeddedStoreOptions::auto_compaction_period). A noted
  // revision was current when noted, so the newest one noted before the
  // cutoff keeps at least a whole period of history.
  void compact_periodically(Batch& batch) {
    const auto period = options_.auto_compaction_period;
    const auto interval = std::min<std::chrono::nanoseconds>(period, std::chrono::hours(1));
    const auto now = options_.clock();
    if (revision_samples_.empty() || now - revision_samples_.back().first >= interval / 10) {
      revision_samples_.emplace_back(now, revision_);
    }
    const auto since_last = now - last_periodic_compaction_;
    if (since_last < (periodic_compactions_ == 0 ? period : interval)) return;
    const auto cutoff = now - period;
    while (revision_samples_.size() > 1 && revision_samples_[1].first <= cutoff) revision_samples_.pop_front();
    if (revision_samples_.front().first > cutoff) return;  // nothing noted that long ago
    last_periodic_compaction_ = now;
    ++periodic_compactions_;
    if (const int64_t target = revision_samples_.front().second; target > compact_revision_) {
      compact_locked(batch, target);
    }
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

  // Makes a committed batch visible to readers and watchers.
  void publish(const Batch& batch) {
    std::lock_guard<std::mutex> hub(hub_mu_);
    committed_revision_.store(batch.revision);
    if (batch.events.empty()) return;
    for (WatchImpl* w : watchers_) {
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

  void lease_timer_loop() {
    std::unique_lock<std::mutex> lock(lease_timer_mu_);
    while (!lease_timer_stop_) {
      int64_t earliest = INT64_MAX;
      {
        std::shared_lock index(index_mu_);
        for (const auto& [id, l] : leases_) earliest = std::min(earliest, l->deadline.load());
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

  // ---- applying requests (writer thread, index_mu_ held exclusively) --------

  Status apply_put(const PutRequest& request, PutResponse& response, Batch& batch) {
    if (nospace_.load()) return nospace_error();
    if (auto v = validate_put(request); !v) return v;
    WriteContext ctx{&batch, revision_ + 1};
    response = put_locked(ctx, request);
    revision_ = ctx.revision;
    return ok_status();
  }

  Status apply_delete(const DeleteRangeRequest& request, DeleteRangeResponse& response, Batch& batch) {
    WriteContext ctx{&batch, revision_ + 1};
    response = delete_locked(ctx, request);
    if (ctx.changed()) revision_ = ctx.revision;
    response.revision = revision_;
    return ok_status();
  }

  Status apply_txn_request(const TxnRequest& request, TxnResponse& response, Batch& batch) {
    if (nospace_.load() && has_put(request)) return nospace_error();
    WriteContext ctx{&batch, revision_ + 1};
    auto r = txn_locked(ctx, request);
    if (!r) return r.error();
    response = std::move(*r);
    if (ctx.changed()) revision_ = ctx.revision;
    response.revision = revision_;
    return ok_status();
  }

  Status validate_put(const PutRequest& r) const {
    if (r.key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
    if (r.ignore_value || r.ignore_lease) {
      auto it = index_.find(r.key);
      if (it == index_.end() || !latest(it->second)) {
        return make_error(Errc::kInvalidArgument, std::string(kErrKeyNotFound) + " (" + r.key + ")");
      }
    }
    if (r.lease != 0 && !r.ignore_lease && !leases_.count(r.lease)) return lease_not_found(r.lease);
    return ok_status();
  }

  void detach(const std::string& key, int64_t lease) {
    if (lease == 0) return;
    if (auto it = leases_.find(lease); it != leases_.end()) it->second->keys.erase(key);
  }

  PutResponse put_locked(WriteContext& ctx, const PutRequest& r) {
    History& h = index_[r.key];
    const Entry* current = latest(h);
    PutResponse response;
    response.revision = ctx.revision;
    Entry e;
    e.mod_revision = ctx.revision;
    e.sub = ctx.sub++;
    e.create_revision = current ? current->create_revision : ctx.revision;
    e.version = current ? current->version + 1 : 1;
    e.lease = r.ignore_lease && current ? current->lease : r.lease;
    e.value = r.ignore_value && current ? current->value : r.value;
    Event event{Event::Type::kPut, to_kv(r.key, e), std::nullopt};
    if (current) {
      event.prev_kv = to_kv(r.key, *current);
      if (r.prev_kv) response.prev_kv = event.prev_kv;
      if (current->lease != e.lease) detach(r.key, current->lease);
    }
    if (e.lease != 0) leases_.at(e.lease)->keys.insert(r.key);
    ctx.batch->rows.push_back({r.key, e});
    ctx.batch->events.push_back(std::move(event));
    h.push_back(std::move(e));
    return response;
  }

  DeleteRangeResponse delete_locked(WriteContext& ctx, const DeleteRangeRequest& r) {
    DeleteRangeResponse response;
    std::vector<std::string> keys;
    for_each_in_range(r.key, r.range_end, [&](const std::string& key, const History& h) {
      if (latest(h)) keys.push_back(key);
    });
    for (const auto& key : keys) {
      History& h = index_.find(key)->second;
      const Entry& current = h.back();
      Entry tomb;
      tomb.mod_revision = ctx.revision;
      tomb.sub = ctx.sub++;
      Event event{Event::Type::kDelete, KeyValue{key, 0, ctx.revision, 0, "", 0}, to_kv(key, current)};
      if (r.prev_kv) response.prev_kvs.push_back(*event.prev_kv);
      detach(key, current.lease);
      ctx.batch->rows.push_back({key, tomb});
      ctx.batch->events.push_back(std::move(event));
      h.push_back(std::move(tomb));
      ++response.deleted;
    }
    return response;
  }

  template <typename F>
  void for_each_in_range(const std::string& key, const std::string& end, F&& f) const {
    if (end.empty()) {
      if (auto it = index_.find(key); it != index_.end()) f(it->first, it->second);
      return;
    }
    const bool unbounded = end.size() == 1 && end[0] == '\0';
    for (auto it = index_.lower_bound(key); it != index_.end() && (unbounded || it->first < end); ++it) {
      f(it->first, it->second);
    }
  }

  // `visible`: the newest revision this read may see; `current`: the store's revision.
  Result<RangeResponse> range_locked(const RangeRequest& r, int64_t visible, int64_t current) const {
    if (r.key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
    int64_t at = visible;
    if (r.revision > 0) {
      if (r.revision > current) return future_error(r.revision, current);
      at = r.revision;
    }
    if (at < compact_revision_) return compacted_error(at, compact_revision_);
    RangeResponse response;
    response.revision = current;
    int64_t bytes = 0;
    bool too_large = false;
    for_each_in_range(r.key, r.range_end, [&](const std::string& key, const History& h) {
      const Entry* e = visible_at(h, at);
      if (!e) return;
      ++response.count;
      if (r.count_only || too_large) return;
      if (r.limit > 0 && static_cast<int64_t>(response.kvs.size()) >= r.limit) {
        response.more = true;
        return;
      }
      bytes += answer_bytes(key.size(), r.keys_only ? 0 : e->value.size());
      if (r.max_response_bytes > 0 && bytes > r.max_response_bytes) {
        // Stop building: what was built goes as soon as the answer is refused.
        too_large = true;
        response.kvs = {};
        return;
      }
      response.kvs.push_back(to_kv(key, *e));
      if (r.keys_only) response.kvs.back().value.clear();
    });
    if (too_large) return response_too_large(r.max_response_bytes);
    return response;
  }

  // An upper bound of what range_locked(r) answers on the current state, in
  // bytes, without building it; `puts` are values the transaction writes
  // before the read, which it may see.
  int64_t range_bytes(const RangeRequest& r, const std::vector<const PutRequest*>& puts) const {
    if (r.count_only) return 0;
    const int64_t at = r.revision > 0 ? r.revision : revision_;
    int64_t bytes = 0;
    int64_t n = 0;
    for_each_in_range(r.key, r.range_end, [&](const std::string& key, const History& h) {
      const Entry* e = visible_at(h, at);
      if (!e || (r.limit > 0 && n >= r.limit)) return;
      ++n;
      bytes += answer_bytes(key.size(), r.keys_only ? 0 : e->value.size());
    });
    for (const PutRequest* p : puts) {
      if (in_range(p->key, r.key, r.range_end)) bytes += answer_bytes(p->key.size(), r.keys_only ? 0 : p->value.size());
    }
    return bytes;
  }

  // What the previous values a delete with prev_kv (or a put's) answer cost.
  int64_t live_bytes(const std::string& key, const std::string& end) const {
    int64_t bytes = 0;
    for_each_in_range(key, end, [&](const std::string& k, const History& h) {
      if (const Entry* e = latest(h)) bytes += answer_bytes(k.size(), e->value.size());
    });
    return bytes;
  }

  bool compare_holds(const Compare& c) const {
    bool any = false;
    bool holds = true;
    for_each_in_range(c.key, c.range_end, [&](const std::string& key, const History& h) {
      const Entry* e = latest(h);
      if (!e) return;
      any = true;
      holds = holds && compare_kv(c, to_kv(key, *e));
    });
    if (any) return holds;
    // A missing key compares as zeroes, but never equal to any value.
    return c.target != Compare::Target::kValue && compare_kv(c, KeyValue{});
  }

  // Rejects a put of the same key twice in one branch (nested transactions
  // included), in both branches, as etcd does before looking at the store.
  Status check_duplicates(const std::vector<RequestOp>& ops, std::set<std::string>& put_keys) const {
    for (const auto& op : ops) {
      if (const auto* put = std::get_if<PutRequest>(&op)) {
        if (!put_keys.insert(put->key).second) {
          return make_error(Errc::kInvalidArgument, std::string(kErrDuplicateKey) + " (" + put->key + ")");
        }
      } else if (const auto* txn = std::get_if<std::shared_ptr<TxnRequest>>(&op)) {
        if (!*txn) return make_error(Errc::kInvalidArgument, "empty nested transaction");
        std::set<std::string> success_keys = put_keys;
        std::set<std::string> failure_keys = put_keys;
        if (auto s = check_duplicates((*txn)->success, success_keys); !s) return s;
        if (auto s = check_duplicates((*txn)->failure, failure_keys); !s) return s;
        put_keys.insert(success_keys.begin(), success_keys.end());
        put_keys.insert(failure_keys.begin(), failure_keys.end());
      }
    }
    return ok_status();
  }

  // The branch each (nested) transaction takes, in pre-order, decided on the
  // state before the transaction, as etcd decides it.
  void compute_path(const TxnRequest& r, std::vector<bool>& path) const {
    const bool succeeded =
        std::all_of(r.compare.begin(), r.compare.end(), [&](const Compare& c) { return compare_holds(c); });
    path.push_back(succeeded);
    for (const auto& op : succeeded ? r.success : r.failure) {
      if (const auto* txn = std::get_if<std::shared_ptr<TxnRequest>>(&op)) compute_path(**txn, path);
    }
  }

  // The size of the answer so far (an upper bound), checked against `budget`
  // (0: none) as each read is validated, and the puts applied before it.
  struct AnswerBudget {
    int64_t budget = 0;
    int64_t bytes = 0;
    std::vector<const PutRequest*> puts;
    bool add(int64_t more) {
      bytes += more;
      return budget <= 0 || bytes <= budget;
    }
  };

  // Checks what applying the taken branches needs before anything changes,
  // so a failed transaction leaves no trace.
  Status validate_path(const TxnRequest& r, const std::vector<bool>& path, std::size_t& at,
                       AnswerBudget& answer) const {
    for (const auto& c : r.compare) {
      if (c.key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
    }
    for (const auto& op : path[at++] ? r.success : r.failure) {
      if (const auto* put = std::get_if<PutRequest>(&op)) {
        if (auto s = validate_put(*put); !s) return s;
        if (answer.budget > 0) {
          if (put->prev_kv && !answer.add(live_bytes(put->key, ""))) return response_too_large(answer.budget);
          answer.puts.push_back(put);
        }
      } else if (const auto* del = std::get_if<DeleteRangeRequest>(&op)) {
        if (del->key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
        if (answer.budget > 0 && del->prev_kv && !answer.add(live_bytes(del->key, del->range_end))) {
          return response_too_large(answer.budget);
        }
      } else if (const auto* range = std::get_if<RangeRequest>(&op)) {
        if (range->key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
        if (range->revision > revision_) return future_error(range->revision, revision_);
        if (range->revision > 0 && range->revision < compact_revision_) {
          return compacted_error(range->revision, compact_revision_);
        }
        if (answer.budget > 0 && !answer.add(range_bytes(*range, answer.puts))) {
          return response_too_large(answer.budget);
        }
      } else {
        if (auto s = validate_path(*std::get<std::shared_ptr<TxnRequest>>(op), path, at, answer); !s) return s;
      }
    }
    return ok_status();
  }

  Result<TxnResponse> txn_locked(WriteContext& ctx, const TxnRequest& r) {
    std::set<std::string> put_keys;
    if (auto s = check_duplicates(r.success, put_keys); !s) return s.error();
    put_keys.clear();
    if (auto s = check_duplicates(r.failure, put_keys); !s) return s.error();
    std::vector<bool> path;
    compute_path(r, path);
    std::size_t at = 0;
    AnswerBudget answer{r.max_response_bytes, 0, {}};
    if (auto s = validate_path(r, path, at, answer); !s) return s.error();
    at = 0;
    return apply_txn(ctx, r, path, at);
  }

  TxnResponse apply_txn(WriteContext& ctx, const TxnRequest& r, const std::vector<bool>& path, std::size_t& at) {
    TxnResponse response;
    response.succeeded = path[at++];
    for (const auto& op : response.succeeded ? r.success : r.failure) {
      if (const auto* put = std::get_if<PutRequest>(&op)) {
        response.responses.emplace_back(put_locked(ctx, *put));
      } else if (const auto* del = std::get_if<DeleteRangeRequest>(&op)) {
        response.responses.emplace_back(delete_locked(ctx, *del));
      } else if (const auto* range = std::get_if<RangeRequest>(&op)) {
        // Validated above, so the read cannot fail; it sees this transaction's earlier changes.
        response.responses.emplace_back(std::move(range_locked(*range, ctx.revision, revision_).value()));
      } else {
        const auto& nested = std::get<std::shared_ptr<TxnRequest>>(op);
        response.responses.emplace_back(std::make_shared<TxnResponse>(apply_txn(ctx, *nested, path, at)));
      }
    }
    const int64_t revision = ctx.changed() ? ctx.revision : revision_;
    for (auto& op : response.responses) {
      std::visit(
          [&](auto& resp) {
            if constexpr (std::is_same_v<std::decay_t<decltype(resp)>, std::shared_ptr<TxnResponse>>) {
              resp->revision = revision;
            } else {
              resp.revision = revision;
            }
          },
          op);
    }
    return response;
  }

  void compact_locked(Batch& batch, int64_t revision) {
    for (auto it = index_.begin(); it != index_.end();) {
      History& h = it->second;
      // Keep the version live at `revision` and everything after it.
      std::size_t keep_from = 0;
      for (std::size_t i = 0; i < h.size() && h[i].mod_revision <= revision; ++i) keep_from = i;
      if (!h.empty() && h[keep_from].mod_revision <= revision && h[keep_from].tombstone()) ++keep_from;
      for (std::size_t i = 0; i < keep_from; ++i) batch.removed.emplace_back(h[i].mod_revision, h[i].sub);
      h.erase(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(keep_from));
      it = h.empty() ? index_.erase(it) : std::next(it);
    }
    compact_revision_ = revision;
    batch.compacted = true;
  }

  // Events of keys in the watch's range with revisions in [start_revision, upto], in order.
  std::vector<Event> history_events(const WatchRequest& w, int64_t upto) const {
    std::vector<std::pair<std::pair<int64_t, int64_t>, Event>> found;
    for_each_in_range(w.key, w.range_end, [&](const std::string& key, const History& h) {
      for (std::size_t i = 0; i < h.size(); ++i) {
        const Entry& e = h[i];
        if (e.mod_revision < w.start_revision || e.mod_revision > upto) continue;
        const bool is_put = !e.tombstone();
        if (is_put ? w.no_put : w.no_delete) continue;
        Event event{is_put ? Event::Type::kPut : Event::Type::kDelete,
                    is_put ? to_kv(key, e) : KeyValue{key, 0, e.mod_revision, 0, "", 0}, std::nullopt};
        if (w.prev_kv && i > 0 && !h[i - 1].tombstone()) event.prev_kv = to_kv(key, h[i - 1]);
        found.emplace_back(std::make_pair(e.mod_revision, e.sub), std::move(event));
      }
    });
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Event> events;
    events.reserve(found.size());
    for (auto& f : found) events.push_back(std::move(f.second));
    return events;
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
  std::atomic<bool> nospace_{false};                             // the NOSPACE alarm; set by the writer thread

  // The index. Readers share index_mu_; the writer thread alone takes it exclusively.
  mutable std::shared_mutex index_mu_;
  std::map<std::string, History, std::less<>> index_;           // guarded by index_mu_
  std::unordered_map<int64_t, std::unique_ptr<Lease>> leases_;  // guarded by index_mu_
  int64_t revision_ = 1;                                        // the newest applied revision; guarded by index_mu_
  int64_t compact_revision_ = 0;                                // guarded by index_mu_
  std::mt19937_64 random_{std::random_device{}()};              // writer thread only
  // Periodic compaction's notes (time, revision then), oldest first, and its
  // last run (the store's opening before the first). Writer thread only.
  std::deque<std::pair<std::chrono::steady_clock::time_point, int64_t>> revision_samples_;
  std::chrono::steady_clock::time_point last_periodic_compaction_ = options_.clock();
  int64_t periodic_compactions_ = 0;
  // The newest revision on disk: what readers see. Written under hub_mu_.
  std::atomic<int64_t> committed_revision_{1};

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<PendingWrite*> queue_;  // guarded by queue_mu_
  bool stopping_ = false;             // guarded by queue_mu_
  std::optional<Error> failed_;       // writer thread only
  std::thread writer_;

  std::mutex hub_mu_;                        // taken before index_mu_ when both are needed
  std::unordered_set<WatchImpl*> watchers_;  // guarded by hub_mu_

  std::mutex lease_timer_mu_;
  std::condition_variable lease_timer_cv_;
  bool lease_timer_stop_ = false;  // guarded by lease_timer_mu_
  std::thread lease_timer_;

  std::atomic<int64_t> commits_{0};
  std::atomic<int64_t> writes_{0};
};

WatchImpl::~WatchImpl() { store_->unregister(this); }
void WatchImpl::request_progress() { store_->progress(this); }

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
