#include "store/embedded_store.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <shared_mutex>
#include <thread>
#include <variant>
#include <vector>

#include "common/log.h"
#include "store/auto_compaction.h"
#include "store/mvcc_index.h"
#include "store/snapshot.h"
#include "store/store_db.h"
#include "store/watch_hub.h"
#include "store/write_queue.h"

namespace zeppelin::store {

namespace {

using embedded::AutoCompaction;
using embedded::Batch;
using embedded::Lease;
using embedded::MvccIndex;
using embedded::PendingWrite;
using embedded::StoreDb;
using embedded::WatchHub;
using embedded::WriteQueue;

// The engine as the composition of its parts: the index (MvccIndex, under
// index_mu_), the database (StoreDb), the writer thread (WriteQueue) and the
// watches (WatchHub). What ties them together lives here: what one group
// commit does, the NOSPACE alarm, automatic compaction and lease expiry.
class StoreImpl final : public EmbeddedStore {
 public:
  StoreImpl(std::string dir, EmbeddedStoreOptions options)
      : dir_(std::move(dir)), options_(std::move(options)), auto_compaction_(options_), queue_(dir_) {}

  ~StoreImpl() override {
    {
      std::lock_guard<std::mutex> lock(lease_timer_mu_);
      lease_timer_stop_ = true;
    }
    lease_timer_cv_.notify_all();
    queue_.stop();
    if (lease_timer_.joinable()) lease_timer_.join();
    db_.reset();  // the checkpointer, the database and then the directory lock, once no thread writes
  }

  Status open() {
    auto db = StoreDb::open(dir_, options_.wal_reserve_bytes);
    if (!db) return db.error();
    db_ = std::move(*db);
    if (auto s = db_->load(index_, now_ticks()); !s) return s;
    hub_.start_at(index_.revision());
    queue_.start([this](const std::vector<PendingWrite*>& writes) { commit_group(writes); });
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
    // (preallocated) WAL: ours holds a fixed reserve (StoreDb::open).
    std::error_code ec;
    const auto size = std::filesystem::file_size(database_path(dir_), ec);
    if (!ec) s.db_size = static_cast<int64_t>(size);
    return s;
  }

  Status snapshot(const std::string& path) override { return embedded::write_snapshot(dir_, path); }

  // ---- writes ------------------------------------------------------------

  Result<PutResponse> put(const PutRequest& request) override {
    PutResponse response;
    Status s = queue_.submit([&](Batch& batch) { return apply_put(request, response, batch); });
    if (!s) return s.error();
    return response;
  }

  Result<DeleteRangeResponse> delete_range(const DeleteRangeRequest& request) override {
    if (request.key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
    DeleteRangeResponse response;
    Status s = queue_.submit([&](Batch& batch) { return index_.apply_delete(request, response, batch); });
    if (!s) return s.error();
    return response;
  }

  Result<TxnResponse> txn(const TxnRequest& request) override {
    TxnResponse response;
    Status s = queue_.submit([&](Batch& batch) { return apply_txn(request, response, batch); });
    if (!s) return s.error();
    return response;
  }

  void put_async(const PutRequest& request, std::function<void(Result<PutResponse>)> done) override {
    auto state = std::make_shared<std::pair<PutRequest, PutResponse>>(request, PutResponse{});
    queue_.submit_async([this, state](Batch& batch) { return apply_put(state->first, state->second, batch); },
                        [state, done = std::move(done)](const Status& s) {
                          if (!s) return done(s.error());
                          done(std::move(state->second));
                        });
  }

  void delete_range_async(const DeleteRangeRequest& request,
                          std::function<void(Result<DeleteRangeResponse>)> done) override {
    if (request.key.empty()) return done(make_error(Errc::kInvalidArgument, kErrEmptyKey));
    auto state = std::make_shared<std::pair<DeleteRangeRequest, DeleteRangeResponse>>(request, DeleteRangeResponse{});
    queue_.submit_async([this, state](Batch& batch) { return index_.apply_delete(state->first, state->second, batch); },
                        [state, done = std::move(done)](const Status& s) {
                          if (!s) return done(s.error());
                          done(std::move(state->second));
                        });
  }

  void txn_async(const TxnRequest& request, std::function<void(Result<TxnResponse>)> done) override {
    auto state = std::make_shared<std::pair<TxnRequest, TxnResponse>>(request, TxnResponse{});
    queue_.submit_async([this, state](Batch& batch) { return apply_txn(state->first, state->second, batch); },
                        [state, done = std::move(done)](const Status& s) {
                          if (!s) return done(s.error());
                          done(std::move(state->second));
                        });
  }

  Result<CompactResponse> compact(int64_t revision) override {
    CompactResponse response;
    Status s = queue_.submit([&](Batch& batch) -> Status {
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
      return make_error(Errc::kLeaseTtlTooLarge, std::string(kErrLeaseTtlTooLarge) + " (" + std::to_string(ttl) +
                                                     " s, at most " + std::to_string(kMaxLeaseTtl) + ")");
    }
    LeaseGrant grant;
    Status s = queue_.submit([&](Batch& batch) -> Status {
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
    return queue_.submit([&](Batch& batch) -> Status {
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
      (void)queue_.submit([&](Batch& batch) -> Status {
        const Lease* l = index_.find_lease(id);
        if (!l || l->deadline.load() > now_ticks()) return ok_status();
        index_.revoke_lease(id, batch);
        return ok_status();
      });
    }
  }

  EmbeddedStoreStats stats() override { return {db_->commits(), writes_.load()}; }

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

  // ---- one group commit (writer thread) ------------------------------------

  // Applies the group to the index in order, commits it in one transaction
  // and only then publishes it to readers and watchers.
  void commit_group(const std::vector<PendingWrite*>& writes) {
    if (failed_) {
      for (auto* w : writes) w->status = *failed_;
      return;
    }
    Batch batch;
    {
      std::unique_lock lock(index_mu_);
      for (auto* w : writes) w->status = w->apply(batch);
      if (const int64_t target = auto_compaction_.due(index_.revision(), index_.compact_revision()); target > 0) {
        index_.compact(batch, target);
      }
      batch.revision = index_.revision();
    }
    if (Status s = db_->commit(batch); !s) {
      // The index is ahead of the disk now; refuse every write from here on.
      failed_ = make_error(Errc::kInternal, "store " + dir_ + " stopped accepting writes: " + s.error().message);
      for (auto* w : writes) w->status = *failed_;
      return;
    }
    hub_.publish(batch);
    writes_ += static_cast<int64_t>(writes.size());
    check_quota(batch);
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
    auto used = db_->used_bytes();
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

  static Error nospace_error() { return make_error(Errc::kNoSpace, kErrNoSpace); }

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
  std::unique_ptr<StoreDb> db_;  // commits on the writer thread only (after open)

  // The index. Readers share index_mu_; the writer thread alone takes it exclusively.
  mutable std::shared_mutex index_mu_;
  MvccIndex index_;                                 // guarded by index_mu_
  std::mt19937_64 random_{std::random_device{}()};  // writer thread only
  AutoCompaction auto_compaction_;                  // writer thread only
  std::optional<Error> failed_;                     // writer thread only
  std::atomic<bool> nospace_{false};                // the NOSPACE alarm; set by the writer thread

  WatchHub hub_;  // its lock is taken before index_mu_ when both are needed
  WriteQueue queue_;

  std::mutex lease_timer_mu_;
  std::condition_variable lease_timer_cv_;
  bool lease_timer_stop_ = false;  // guarded by lease_timer_mu_
  std::thread lease_timer_;

  std::atomic<int64_t> writes_{0};
};

}  // namespace

Result<std::unique_ptr<EmbeddedStore>> EmbeddedStore::open(const std::string& dir, EmbeddedStoreOptions options) {
  auto store = std::make_unique<StoreImpl>(dir, std::move(options));
  if (auto s = store->open(); !s) return s.error();
  return std::unique_ptr<EmbeddedStore>(std::move(store));
}

}  // namespace zeppelin::store
