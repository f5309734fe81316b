// The same store scenarios against EmbeddedStore and against EtcdStore over a
// real etcd (started here on free loopback ports): both must give the same
// answers. Revisions are compared relative to the test's first write, since
// the etcd is shared by the tests (each test gets its own key prefix there).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "etcd_client/etcd_store.h"
#include "etcd_process.h"
#include "store/embedded_store.h"
#include "test_waits.h"

namespace zeppelin::store {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// One etcd for the whole binary, started on first use and stopped at exit.
std::unique_ptr<testing::EtcdCluster> etcd_cluster;

testing::EtcdCluster& shared_etcd() {
  if (!etcd_cluster) {
    etcd_cluster = std::make_unique<testing::EtcdCluster>(
        fs::temp_directory_path() / ("zeppelin-conformance-etcd-" + std::to_string(::getpid())), 1);
  }
  return *etcd_cluster;
}

class EtcdEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { etcd_cluster.reset(); }
};


class StoreConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::string safe;
    for (char c : name) safe += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    if (GetParam() == "embedded") {
      dir_ = fs::temp_directory_path() / ("zeppelin-conformance-" + std::to_string(::getpid()) + "-" + safe);
      fs::remove_all(dir_);
      auto s = EmbeddedStore::open(dir_.string());
      ASSERT_TRUE(s.ok()) << s.error().message;
      store_ = std::move(*s);
    } else {
      auto s = shared_etcd().open("/conformance/" + safe + "/");
      ASSERT_TRUE(s.ok()) << s.error().message;
      store_ = std::move(*s);
    }
    base_ = store_->status().revision;
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  int64_t put(const std::string& key, const std::string& value, int64_t lease = 0) {
    auto r = store_->put({key, value, lease});
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? r->revision : -1;
  }
  std::optional<KeyValue> get(const std::string& key, int64_t revision = 0) {
    auto r = store_->range({key, "", 0, revision});
    EXPECT_TRUE(r.ok()) << r.error().message;
    if (!r.ok() || r->kvs.empty()) return std::nullopt;
    return r->kvs[0];
  }
  static std::vector<std::string> keys(const RangeResponse& r) {
    std::vector<std::string> out;
    for (const auto& kv : r.kvs) out.push_back(kv.key);
    return out;
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  int64_t base_ = 0;  // the revision before the test's first write
};

TEST_P(StoreConformance, PutKeepsVersionsAndReturnsThePreviousValue) {
  const int64_t r1 = put("a", "1");
  EXPECT_EQ(r1, base_ + 1);
  auto second = store_->put({"a", "2", 0, /*prev_kv=*/true});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->revision, r1 + 1);
  ASSERT_TRUE(second->prev_kv);
  EXPECT_EQ(second->prev_kv->value, "1");
  EXPECT_EQ(second->prev_kv->key, "a");
  auto kv = get("a");
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->value, "2");
  EXPECT_EQ(kv->version, 2);
  EXPECT_EQ(kv->create_revision, r1);
  EXPECT_EQ(kv->mod_revision, r1 + 1);
  EXPECT_EQ(get("a", r1)->value, "1");

  auto fresh = store_->put({"b", "1", 0, true});
  ASSERT_TRUE(fresh.ok());
  EXPECT_FALSE(fresh->prev_kv);

  auto empty = store_->put({"", "x"});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, Errc::kInvalidArgument) << empty.error().message;
  EXPECT_EQ(empty.error().message, kErrEmptyKey);

  PutRequest keep{"missing", ""};
  keep.ignore_value = true;
  auto missing = store_->put(keep);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::kKeyNotFound) << missing.error().message;
}

TEST_P(StoreConformance, RangesOverPrefixesIntervalsAndEveryKey) {
  for (auto k : {"p/a", "p/b", "p/c", "q", "r"}) put(k, std::string("v-") + k);
  auto prefix = store_->range({"p/", prefix_end("p/")});
  ASSERT_TRUE(prefix.ok());
  EXPECT_EQ(keys(*prefix), (std::vector<std::string>{"p/a", "p/b", "p/c"}));
  EXPECT_EQ(prefix->count, 3);
  EXPECT_EQ(prefix->revision, base_ + 5);

  auto interval = store_->range({"p/b", "r"});
  EXPECT_EQ(keys(*interval), (std::vector<std::string>{"p/b", "p/c", "q"}));
  auto to_end = store_->range({"q", std::string(1, '\0')});
  EXPECT_EQ(keys(*to_end), (std::vector<std::string>{"q", "r"}));
  auto all = store_->range({std::string(1, '\0'), std::string(1, '\0')});
  EXPECT_EQ(keys(*all), (std::vector<std::string>{"p/a", "p/b", "p/c", "q", "r"}));

  RangeRequest limited{"p/", prefix_end("p/"), 2};
  auto page = store_->range(limited);
  EXPECT_EQ(keys(*page), (std::vector<std::string>{"p/a", "p/b"}));
  EXPECT_TRUE(page->more);
  EXPECT_EQ(page->count, 3);

  RangeRequest only_keys{"p/", prefix_end("p/")};
  only_keys.keys_only = true;
  auto k = store_->range(only_keys);
  ASSERT_EQ(k->kvs.size(), 3u);
  EXPECT_EQ(k->kvs[0].value, "");
  EXPECT_EQ(k->kvs[0].version, 1);

  RangeRequest count{"p/", prefix_end("p/")};
  count.count_only = true;
  auto c = store_->range(count);
  EXPECT_TRUE(c->kvs.empty());
  EXPECT_EQ(c->count, 3);

  auto future = store_->range({"p/a", "", 0, base_ + 100});
  ASSERT_FALSE(future.ok());
  EXPECT_EQ(future.error().code, Errc::kFutureRevision) << future.error().message;
}

TEST_P(StoreConformance, DeleteRangeReturnsPreviousValuesAndRestartsVersions) {
  put("d/a", "1");
  put("d/a", "2");
  put("d/b", "1");
  DeleteRangeRequest del{"d/", prefix_end("d/"), true};
  auto r = store_->delete_range(del);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->deleted, 2);
  EXPECT_EQ(r->revision, base_ + 4);
  ASSERT_EQ(r->prev_kvs.size(), 2u);
  EXPECT_EQ(r->prev_kvs[0].key, "d/a");
  EXPECT_EQ(r->prev_kvs[0].value, "2");
  EXPECT_FALSE(get("d/a"));
  auto none = store_->delete_range({"d/zzz"});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->deleted, 0);
  EXPECT_EQ(none->revision, base_ + 4);  // deleting nothing is not a revision
  put("d/a", "3");
  EXPECT_EQ(get("d/a")->version, 1);
}

TEST_P(StoreConformance, TxnComparesAndRunsOneBranchAtOneRevision) {
  const int64_t r1 = put("t/a", "1");
  put("t/b", "x");
  TxnRequest t;
  t.compare = {Compare{"t/a", "", Compare::Target::kValue, Compare::Op::kEqual, 0, "1"},
               Compare{"t/a", "", Compare::Target::kVersion, Compare::Op::kEqual, 1},
               Compare{"t/a", "", Compare::Target::kCreateRevision, Compare::Op::kEqual, r1},
               Compare{"t/b", "", Compare::Target::kModRevision, Compare::Op::kGreater, r1},
               Compare{"t/", prefix_end("t/"), Compare::Target::kLease, Compare::Op::kEqual, 0}};
  t.success = {PutRequest{"t/c", "1"}, PutRequest{"t/a", "2"}, RangeRequest{"t/", prefix_end("t/")}};
  t.failure = {PutRequest{"t/failed", "1"}};
  auto ok = store_->txn(t);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_TRUE(ok->succeeded);
  EXPECT_EQ(ok->revision, base_ + 3);
  ASSERT_EQ(ok->responses.size(), 3u);
  auto& range = std::get<RangeResponse>(ok->responses[2]);
  EXPECT_EQ(keys(range), (std::vector<std::string>{"t/a", "t/b", "t/c"}));
  EXPECT_EQ(get("t/c")->mod_revision, get("t/a")->mod_revision);

  // The same compares fail now (t/a changed): the failure branch runs.
  auto failed = store_->txn(t);
  ASSERT_TRUE(failed.ok());
  EXPECT_FALSE(failed->succeeded);
  EXPECT_TRUE(get("t/failed"));
  EXPECT_EQ(get("t/c")->version, 1);

  TxnRequest dup;
  dup.success = {PutRequest{"t/x", "1"}, PutRequest{"t/x", "2"}};
  auto bad = store_->txn(dup);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::kDuplicateKey) << bad.error().message;
  EXPECT_FALSE(get("t/x"));

  auto nested = std::make_shared<TxnRequest>();
  nested->success = {PutRequest{"t/n", "1"}};
  TxnRequest outer;
  outer.success = {nested};
  auto n = store_->txn(outer);
  ASSERT_TRUE(n.ok()) << n.error().message;
  ASSERT_EQ(n->responses.size(), 1u);
  EXPECT_TRUE(std::get<std::shared_ptr<TxnResponse>>(n->responses[0])->succeeded);
  EXPECT_EQ(get("t/n")->value, "1");
}

TEST_P(StoreConformance, WatchReplaysHistoryThenFollowsLive) {
  put("w/a", "1");                                   // base+1
  put("w/b", "1");                                   // base+2
  put("other", "1");                                 // base+3
  put("w/a", "2");                                   // base+4
  ASSERT_TRUE(store_->delete_range({"w/b"}).ok());   // base+5

  testing::WatchCollector c;
  WatchRequest req{"w/", prefix_end("w/"), base_ + 2, /*prev_kv=*/true};
  auto w = store_->watch(req, c.callback());
  ASSERT_TRUE(w.ok()) << w.error().message;
  auto replay = c.wait_events(3);
  ASSERT_EQ(replay.size(), 3u);
  EXPECT_EQ(replay[0].kv.key, "w/b");
  EXPECT_EQ(replay[0].kv.mod_revision, base_ + 2);
  EXPECT_EQ(replay[1].kv.value, "2");
  ASSERT_TRUE(replay[1].prev_kv);
  EXPECT_EQ(replay[1].prev_kv->value, "1");
  EXPECT_EQ(replay[2].type, Event::Type::kDelete);
  EXPECT_EQ(replay[2].kv.key, "w/b");
  EXPECT_EQ(replay[2].kv.mod_revision, base_ + 5);
  ASSERT_TRUE(replay[2].prev_kv);

  put("other", "2");  // base+6, not watched
  put("w/c", "1");    // base+7
  auto all = c.wait_events(4);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[3].kv.key, "w/c");
  EXPECT_EQ(all[3].kv.mod_revision, base_ + 7);

  (*w)->request_progress();
  auto updates = c.wait_updates([](const auto& u) { return !u.empty() && u.back().progress; });
  ASSERT_TRUE(updates.back().progress);
  EXPECT_TRUE(updates.back().events.empty());
  EXPECT_GE(updates.back().revision, base_ + 7);

  w->reset();  // cancelled: nothing more arrives
  put("w/d", "1");
  EXPECT_EQ(c.events().size(), 4u);
}

TEST_P(StoreConformance, WatchFiltersAndTxnEventsShareARevision) {
  testing::WatchCollector deletes;
  WatchRequest only_deletes{"k"};
  only_deletes.no_put = true;
  auto w1 = store_->watch(only_deletes, deletes.callback());
  ASSERT_TRUE(w1.ok());
  testing::WatchCollector txn_events;
  auto w2 = store_->watch({"t/", prefix_end("t/")}, txn_events.callback());
  ASSERT_TRUE(w2.ok());

  put("k", "1");
  put("kk", "1");
  ASSERT_TRUE(store_->delete_range({"k"}).ok());
  TxnRequest t;
  t.success = {PutRequest{"t/z", "1"}, PutRequest{"t/a", "1"}};
  ASSERT_TRUE(store_->txn(t).ok());

  auto d = deletes.wait_events(1);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].type, Event::Type::kDelete);
  EXPECT_EQ(d[0].kv.key, "k");
  auto e = txn_events.wait_events(2);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].kv.key, "t/z");
  EXPECT_EQ(e[1].kv.key, "t/a");
  EXPECT_EQ(e[0].kv.mod_revision, e[1].kv.mod_revision);
  std::lock_guard<std::mutex> lock(txn_events.mu);
  EXPECT_EQ(txn_events.updates.size(), 1u);  // one update per revision
}

TEST_P(StoreConformance, CompactionForgetsOldRevisionsAndEndsOldWatches) {
  const int64_t r1 = put("c", "1");
  put("c", "2");
  const int64_t r3 = put("c", "3");
  ASSERT_TRUE(store_->compact(r3).ok());
  auto old = store_->range({"c", "", 0, r1});
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code, Errc::kCompacted) << old.error().message;
  EXPECT_EQ(get("c", r3)->value, "3");
  EXPECT_EQ(get("c")->version, 3);
  EXPECT_GE(store_->status().compact_revision, r3);

  auto again = store_->compact(r1);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::kCompacted) << again.error().message;

  testing::WatchCollector c;
  auto w = store_->watch({"c", "", r1}, c.callback());
  ASSERT_TRUE(w.ok()) << w.error().message;
  auto updates = c.wait_updates([](const auto& u) { return !u.empty(); });
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].compact_revision, r3);
  EXPECT_TRUE(updates[0].events.empty());
}

TEST_P(StoreConformance, LeasesHoldKeysUntilRevoked) {
  auto lease = store_->lease_grant(0, 30);
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  EXPECT_GT(lease->id, 0);
  EXPECT_EQ(lease->ttl, 30);
  put("l/1", "a", lease->id);
  put("l/2", "b", lease->id);
  EXPECT_EQ(get("l/1")->lease, lease->id);

  auto ttl = store_->lease_time_to_live(lease->id, true);
  ASSERT_TRUE(ttl.ok());
  EXPECT_EQ(ttl->granted_ttl, 30);
  EXPECT_GT(ttl->ttl, 0);
  // etcd lists a lease's keys in no particular order (a Go map), so compare as a set.
  auto attached = ttl->keys;
  std::sort(attached.begin(), attached.end());
  EXPECT_EQ(attached, (std::vector<std::string>{"l/1", "l/2"}));
  auto kept = store_->lease_keep_alive(lease->id);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(*kept, 30);
  auto listed = store_->lease_list();
  EXPECT_NE(std::find(listed.begin(), listed.end(), lease->id), listed.end());

  auto unknown = store_->put({"l/3", "c", 123456789});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, Errc::kLeaseNotFound) << unknown.error().message;

  ASSERT_TRUE(store_->lease_revoke(lease->id).ok());
  EXPECT_FALSE(get("l/1"));
  EXPECT_FALSE(get("l/2"));
  auto gone = store_->lease_time_to_live(lease->id, false);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, Errc::kLeaseNotFound) << gone.error().message;
  auto dead = store_->lease_keep_alive(lease->id);
  ASSERT_FALSE(dead.ok());
  EXPECT_EQ(dead.error().code, Errc::kLeaseNotFound) << dead.error().message;
  auto revoke_again = store_->lease_revoke(lease->id);
  ASSERT_FALSE(revoke_again.ok());
  EXPECT_EQ(revoke_again.error().code, Errc::kLeaseNotFound) << revoke_again.error().message;
}

TEST_P(StoreConformance, AsyncWritesCompleteInSubmissionOrder) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int64_t> revisions;
  const int n = 20;
  for (int i = 0; i < n; ++i) {
    store_->put_async({"async", std::to_string(i)}, [&](Result<PutResponse> r) {
      std::lock_guard<std::mutex> lock(mu);
      revisions.push_back(r.ok() ? r->revision : -1);
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait_for(lock, 20s, [&] { return revisions.size() == n; });
  ASSERT_EQ(revisions.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) EXPECT_EQ(revisions[i], base_ + 1 + i);
  lock.unlock();
  EXPECT_EQ(get("async")->value, std::to_string(n - 1));
}

TEST_P(StoreConformance, SnapshotWritesAFile) {
  put("s", "1");
  const auto file = fs::temp_directory_path() / ("zeppelin-conformance-snap-" + std::to_string(::getpid()) + GetParam());
  ASSERT_TRUE(store_->snapshot(file.string()).ok());
  EXPECT_GT(fs::file_size(file), 0u);
  fs::remove(file);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance, ::testing::Values("embedded", "etcd"),
                         [](const auto& info) { return info.param; });

[[maybe_unused]] auto* const etcd_environment = ::testing::AddGlobalTestEnvironment(new EtcdEnvironment);

}  // namespace
}  // namespace zeppelin::store
