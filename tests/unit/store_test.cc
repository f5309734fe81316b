// The embedded store against etcd v3 semantics, on a real SQLite file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <thread>

#include "store/embedded_store.h"
#include "test_waits.h"

namespace zeppelin::store {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A clock that moves only when told to.
struct ManualClock {
  std::shared_ptr<std::atomic<int64_t>> ns = std::make_shared<std::atomic<int64_t>>(1'000'000'000);
  std::function<std::chrono::steady_clock::time_point()> fn() const {
    auto n = ns;
    return [n] { return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(n->load())); };
  }
  void advance(std::chrono::nanoseconds d) const { ns->fetch_add(d.count()); }
};


class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("zeppelin-store-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    reopen();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  void reopen() {
    store_.reset();
    EmbeddedStoreOptions options;
    options.clock = clock_.fn();
    options.expire_leases_in_background = false;
    auto s = EmbeddedStore::open(dir_.string(), options);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
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

  std::vector<std::string> keys(const RangeResponse& r) {
    std::vector<std::string> out;
    for (const auto& kv : r.kvs) out.push_back(kv.key);
    return out;
  }

  fs::path dir_;
  ManualClock clock_;
  std::unique_ptr<EmbeddedStore> store_;
};

TEST(StoreKeys, PrefixEnd) {
  EXPECT_EQ(prefix_end("abc"), "abd");
  EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_end(std::string("\xff\xff", 2)), std::string(1, '\0'));
}

TEST_F(StoreTest, FreshStoreIsAtRevisionOne) {
  auto r = store_->range({"a"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 1);
  EXPECT_EQ(r->count, 0);
  EXPECT_TRUE(r->kvs.empty());
}

TEST_F(StoreTest, PutKeepsVersionsAndReturnsPreviousValue) {
  EXPECT_EQ(put("a", "1"), 2);
  auto second = store_->put({"a", "2", 0, /*prev_kv=*/true});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->revision, 3);
  ASSERT_TRUE(second->prev_kv);
  EXPECT_EQ(second->prev_kv->value, "1");
  EXPECT_EQ(second->prev_kv->mod_revision, 2);

  auto kv = get("a");
  ASSERT_TRUE(kv);
  EXPECT_EQ(*kv, (KeyValue{"a", 2, 3, 2, "2", 0}));
  auto old = get("a", 2);
  ASSERT_TRUE(old);
  EXPECT_EQ(old->value, "1");
  EXPECT_EQ(old->version, 1);
}

TEST_F(StoreTest, PutIgnoreValueKeepsTheValueAndNeedsTheKey) {
  put("a", "1");
  ASSERT_TRUE(store_->put({"a", "", 0, false, /*ignore_value=*/true}).ok());
  EXPECT_EQ(get("a")->value, "1");
  EXPECT_EQ(get("a")->version, 2);
  auto missing = store_->put({"b", "", 0, false, true});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::kKeyNotFound) << missing.error().message;
}

TEST_F(StoreTest, EmptyKeyIsRejected) {
  auto r = store_->put({"", "x"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(r.error().message, kErrEmptyKey);
  EXPECT_FALSE(store_->range({""}).ok());
}

TEST_F(StoreTest, RangeOverPrefixIntervalAndAllKeys) {
  for (const char* k : {"a", "b/1", "b/2", "b/3", "c"}) put(k, std::string("v-") + k);
  auto prefix = store_->range({"b/", prefix_end("b/")});
  ASSERT_TRUE(prefix.ok());
  EXPECT_EQ(keys(*prefix), (std::vector<std::string>{"b/1", "b/2", "b/3"}));
  EXPECT_EQ(prefix->count, 3);
  EXPECT_FALSE(prefix->more);

  auto interval = store_->range({"b/2", "c"});
  EXPECT_EQ(keys(*interval), (std::vector<std::string>{"b/2", "b/3"}));

  auto all = store_->range({std::string(1, '\0'), std::string(1, '\0')});
  EXPECT_EQ(all->count, 5);

  auto from = store_->range({"b/3", std::string(1, '\0')});
  EXPECT_EQ(keys(*from), (std::vector<std::string>{"b/3", "c"}));
}

TEST_F(StoreTest, RangeLimitCountOnlyKeysOnly) {
  for (const char* k : {"p/1", "p/2", "p/3"}) put(k, "value");
  auto limited = store_->range({"p/", prefix_end("p/"), /*limit=*/2});
  EXPECT_EQ(keys(*limited), (std::vector<std::string>{"p/1", "p/2"}));
  EXPECT_TRUE(limited->more);
  EXPECT_EQ(limited->count, 3);

  RangeRequest count{"p/", prefix_end("p/")};
  count.count_only = true;
  auto counted = store_->range(count);
  EXPECT_TRUE(counted->kvs.empty());
  EXPECT_EQ(counted->count, 3);

  RangeRequest keys_only{"p/", prefix_end("p/")};
  keys_only.keys_only = true;
  auto k = store_->range(keys_only);
  ASSERT_EQ(k->kvs.size(), 3u);
  EXPECT_EQ(k->kvs[0].value, "");
  EXPECT_EQ(k->kvs[0].version, 1);
}

TEST_F(StoreTest, RangeAtAFutureRevisionFails) {
  put("a", "1");
  auto r = store_->range({"a", "", 0, 99});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kFutureRevision) << r.error().message;
}

TEST_F(StoreTest, DeleteRangeReturnsPreviousValuesAndRestartsVersions) {
  put("d/1", "x");
  put("d/2", "y");
  put("e", "z");
  auto del = store_->delete_range({"d/", prefix_end("d/"), /*prev_kv=*/true});
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->deleted, 2);
  EXPECT_EQ(del->revision, 5);
  ASSERT_EQ(del->prev_kvs.size(), 2u);
  EXPECT_EQ(del->prev_kvs[1].value, "y");
  EXPECT_FALSE(get("d/1"));
  EXPECT_TRUE(get("e"));
  EXPECT_EQ(get("d/1", 4)->value, "x");  // history keeps it

  // Deleting nothing changes nothing, not even the revision.
  auto none = store_->delete_range({"d/1"});
  EXPECT_EQ(none->deleted, 0);
  EXPECT_EQ(none->revision, 5);

  EXPECT_EQ(put("d/1", "again"), 6);
  EXPECT_EQ(get("d/1")->version, 1);
  EXPECT_EQ(get("d/1")->create_revision, 6);
}

TEST_F(StoreTest, TxnComparesEveryTarget) {
  auto lease = store_->lease_grant(0, 60);
  ASSERT_TRUE(lease.ok());
  put("k", "v1");             // rev 2
  put("k", "v2", lease->id);  // rev 3
  auto run = [&](Compare c) {
    c.key = "k";
    TxnRequest t;
    t.compare = {c};
    auto r = store_->txn(t);
    EXPECT_TRUE(r.ok());
    return r.ok() && r->succeeded;
  };
  using T = Compare::Target;
  using O = Compare::Op;
  EXPECT_TRUE(run({"", "", T::kValue, O::kEqual, 0, "v2"}));
  EXPECT_FALSE(run({"", "", T::kValue, O::kEqual, 0, "v1"}));
  EXPECT_TRUE(run({"", "", T::kValue, O::kGreater, 0, "v1"}));
  EXPECT_TRUE(run({"", "", T::kValue, O::kLess, 0, "v3"}));
  EXPECT_TRUE(run({"", "", T::kValue, O::kNotEqual, 0, "v1"}));
  EXPECT_TRUE(run({"", "", T::kVersion, O::kEqual, 2}));
  EXPECT_FALSE(run({"", "", T::kVersion, O::kGreater, 2}));
  EXPECT_TRUE(run({"", "", T::kCreateRevision, O::kEqual, 2}));
  EXPECT_TRUE(run({"", "", T::kModRevision, O::kEqual, 3}));
  EXPECT_TRUE(run({"", "", T::kModRevision, O::kLess, 4}));
  EXPECT_TRUE(run({"", "", T::kLease, O::kEqual, lease->id}));
  EXPECT_FALSE(run({"", "", T::kLease, O::kEqual, 0}));

  // A missing key has version 0 and fails every value comparison.
  TxnRequest missing;
  missing.compare = {{"nope", "", T::kVersion, O::kEqual, 0}};
  EXPECT_TRUE(store_->txn(missing)->succeeded);
  missing.compare = {{"nope", "", T::kValue, O::kNotEqual, 0, "x"}};
  EXPECT_FALSE(store_->txn(missing)->succeeded);
}

TEST_F(StoreTest, TxnRunsOneBranchAtOneRevision) {
  put("counter", "1");  // rev 2
  TxnRequest t;
  t.compare = {{"counter", "", Compare::Target::kValue, Compare::Op::kEqual, 0, "1"}};
  t.success = {PutRequest{"counter", "2"}, PutRequest{"other", "x"}, RangeRequest{"counter"}};
  t.failure = {PutRequest{"failed", "yes"}};
  auto r = store_->txn(t);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->succeeded);
  EXPECT_EQ(r->revision, 3);
  ASSERT_EQ(r->responses.size(), 3u);
  // The read inside the transaction sees the transaction's own write.
  const auto& read = std::get<RangeResponse>(r->responses[2]);
  ASSERT_EQ(read.kvs.size(), 1u);
  EXPECT_EQ(read.kvs[0].value, "2");
  EXPECT_EQ(get("counter")->mod_revision, 3);
  EXPECT_EQ(get("other")->mod_revision, 3);

  auto again = store_->txn(t);  // the compare fails now
  EXPECT_FALSE(again->succeeded);
  EXPECT_EQ(again->revision, 4);
  EXPECT_TRUE(get("failed"));

  // A transaction that changes nothing leaves the revision alone.
  TxnRequest read_only;
  read_only.success = {RangeRequest{"counter"}};
  EXPECT_EQ(store_->txn(read_only)->revision, 4);
}

TEST_F(StoreTest, TxnRejectsDuplicatePutsAndUnknownLeasesWithoutApplyingAnything) {
  TxnRequest t;
  t.success = {PutRequest{"a", "1"}, PutRequest{"a", "2"}};
  auto dup = store_->txn(t);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, Errc::kDuplicateKey) << dup.error().message;

  t.success = {PutRequest{"b", "1"}, PutRequest{"c", "1", /*lease=*/12345}};
  auto lease = store_->txn(t);
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.error().code, Errc::kLeaseNotFound) << lease.error().message;
  EXPECT_FALSE(get("b"));
  EXPECT_EQ(store_->status().revision, 1);
}

// Only the branch taken is checked against the store (a failure branch may
// name a lease that is gone), but duplicates are refused in either branch.
TEST_F(StoreTest, TxnChecksLeasesOnlyOnTheBranchTaken) {
  put("k", "v");
  TxnRequest t;
  t.compare = {{"k", "", Compare::Target::kVersion, Compare::Op::kEqual, 99}};
  t.success = {PutRequest{"k", "x", /*lease=*/777}};
  t.failure = {RangeRequest{"k"}};
  auto r = store_->txn(t);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->succeeded);

  t.success = {PutRequest{"a", "1"}, PutRequest{"a", "2"}};
  EXPECT_FALSE(store_->txn(t).ok());

  // Nested: the inner branch is chosen on the state before the transaction.
  auto inner = std::make_shared<TxnRequest>();
  inner->compare = {{"k", "", Compare::Target::kValue, Compare::Op::kEqual, 0, "v"}};
  inner->success = {PutRequest{"inner", "yes"}};
  inner->failure = {PutRequest{"inner", "no", /*lease=*/777}};
  TxnRequest outer;
  outer.success = {PutRequest{"k", "changed"}, inner};
  auto nested = store_->txn(outer);
  ASSERT_TRUE(nested.ok()) << nested.error().message;
  EXPECT_EQ(get("inner")->value, "yes");
  EXPECT_TRUE(std::get<std::shared_ptr<TxnResponse>>(nested->responses[1])->succeeded);
}

TEST_F(StoreTest, CompactionForgetsOldRevisionsButKeepsCurrentValues) {
  put("a", "1");                                  // 2
  put("a", "2");                                  // 3
  put("b", "1");                                  // 4
  ASSERT_TRUE(store_->delete_range({"b"}).ok());  // 5
  put("c", "1");                                  // 6
  ASSERT_TRUE(store_->compact(5).ok());

  auto old = store_->range({"a", "", 0, 3});
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code, Errc::kCompacted) << old.error().message;
  EXPECT_EQ(get("a", 5)->value, "2");
  EXPECT_EQ(get("a")->version, 2);
  EXPECT_FALSE(get("b"));

  auto again = store_->compact(4);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::kCompacted);
  auto future = store_->compact(100);
  ASSERT_FALSE(future.ok());
  EXPECT_EQ(future.error().code, Errc::kFutureRevision);

  reopen();
  EXPECT_EQ(store_->status().compact_revision, 5);
  EXPECT_EQ(store_->status().revision, 6);
  EXPECT_FALSE(store_->range({"a", "", 0, 3}).ok());
  EXPECT_EQ(get("a")->value, "2");
  EXPECT_EQ(get("c")->value, "1");
  EXPECT_FALSE(get("b"));
}

TEST_F(StoreTest, EverythingSurvivesReopening) {
  auto lease = store_->lease_grant(0, 30);
  put("x", "1");
  put("y", "2", lease->id);
  put("x", "3");
  ASSERT_TRUE(store_->delete_range({"y"}).ok());
  put("z", "4", lease->id);
  reopen();
  EXPECT_EQ(store_->status().revision, 6);
  EXPECT_EQ(get("x")->value, "3");
  EXPECT_EQ(get("x")->version, 2);
  EXPECT_EQ(get("x", 2)->value, "1");
  EXPECT_FALSE(get("y"));
  auto ttl = store_->lease_time_to_live(lease->id, true);
  ASSERT_TRUE(ttl.ok());
  EXPECT_EQ(ttl->keys, (std::vector<std::string>{"z"}));
  EXPECT_EQ(put("w", "5"), 7);
}

TEST_F(StoreTest, WatchReplaysHistoryFromAnOldRevisionThenFollows) {
  put("w/a", "1");                                  // 2
  put("w/b", "1");                                  // 3
  put("other", "1");                                // 4
  put("w/a", "2");                                  // 5
  ASSERT_TRUE(store_->delete_range({"w/b"}).ok());  // 6

  testing::WatchCollector c;
  WatchRequest req{"w/", prefix_end("w/"), /*start_revision=*/3, /*prev_kv=*/true};
  auto w = store_->watch(req, c.callback());
  ASSERT_TRUE(w.ok());
  auto replay = c.events();
  ASSERT_EQ(replay.size(), 3u);
  EXPECT_EQ(replay[0].kv.key, "w/b");
  EXPECT_EQ(replay[0].kv.mod_revision, 3);
  EXPECT_EQ(replay[1].kv.value, "2");
  ASSERT_TRUE(replay[1].prev_kv);
  EXPECT_EQ(replay[1].prev_kv->value, "1");
  EXPECT_EQ(replay[2].type, Event::Type::kDelete);
  EXPECT_EQ(replay[2].kv.mod_revision, 6);
  ASSERT_TRUE(replay[2].prev_kv);
  EXPECT_EQ(replay[2].prev_kv->key, "w/b");

  put("other", "2");  // 7, not watched
  put("w/c", "1");    // 8
  auto all = c.wait_events(4);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[3].kv.key, "w/c");
  EXPECT_EQ(all[3].kv.mod_revision, 8);
  EXPECT_FALSE(all[3].prev_kv);

  // A progress notification carries the current revision and no events.
  (*w)->request_progress();
  auto updates = c.snapshot();
  ASSERT_TRUE(updates.back().progress);
  EXPECT_EQ(updates.back().revision, 8);
  EXPECT_TRUE(updates.back().events.empty());

  // Cancelled: nothing more arrives.
  w->reset();
  put("w/d", "1");
  EXPECT_EQ(c.events().size(), 4u);
}

TEST_F(StoreTest, WatchFiltersAndSingleKeys) {
  testing::WatchCollector c;
  WatchRequest req{"k"};
  req.no_put = true;
  auto w = store_->watch(req, c.callback());
  ASSERT_TRUE(w.ok());
  put("k", "1");
  put("kk", "1");
  ASSERT_TRUE(store_->delete_range({"k"}).ok());
  auto events = c.wait_events(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, Event::Type::kDelete);
  EXPECT_EQ(events[0].kv.key, "k");
}

TEST_F(StoreTest, WatchTxnEventsShareARevisionInOrder) {
  testing::WatchCollector c;
  auto w = store_->watch({"t/", prefix_end("t/")}, c.callback());
  ASSERT_TRUE(w.ok());
  TxnRequest t;
  t.success = {PutRequest{"t/z", "1"}, PutRequest{"t/a", "1"}};
  ASSERT_TRUE(store_->txn(t).ok());
  auto events = c.wait_events(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kv.key, "t/z");
  EXPECT_EQ(events[1].kv.key, "t/a");
  EXPECT_EQ(events[0].kv.mod_revision, events[1].kv.mod_revision);
  EXPECT_EQ(c.snapshot().size(), 1u);  // one update per revision
}

TEST_F(StoreTest, WatchFromACompactedRevisionEndsWithTheCompactRevision) {
  put("a", "1");
  put("a", "2");
  put("a", "3");
  ASSERT_TRUE(store_->compact(3).ok());
  testing::WatchCollector c;
  auto w = store_->watch({"a", "", 2}, c.callback());
  ASSERT_TRUE(w.ok());
  auto updates = c.snapshot();
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].compact_revision, 3);
  EXPECT_TRUE(updates[0].events.empty());
  put("a", "4");
  EXPECT_EQ(c.snapshot().size(), 1u);

  testing::WatchCollector ok;
  auto from_compacted = store_->watch({"a", "", 3}, ok.callback());
  EXPECT_EQ(ok.snapshot().at(0).compact_revision, 0);
}

TEST_F(StoreTest, LeaseGrantAttachRevoke) {
  auto lease = store_->lease_grant(0, 10);
  ASSERT_TRUE(lease.ok());
  EXPECT_GT(lease->id, 0);
  EXPECT_EQ(lease->ttl, 10);
  auto fixed = store_->lease_grant(42, 1);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->ttl, 2);  // raised to the minimum
  auto dup = store_->lease_grant(42, 5);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, Errc::kLeaseExists);
  auto listed = store_->lease_list();
  EXPECT_EQ(listed.size(), 2u);

  put("l/1", "a", lease->id);
  put("l/2", "b", lease->id);
  put("l/3", "c");
  put("l/2", "b2", 0);  // moves off the lease
  auto ttl = store_->lease_time_to_live(lease->id, true);
  ASSERT_TRUE(ttl.ok());
  EXPECT_EQ(ttl->granted_ttl, 10);
  EXPECT_EQ(ttl->ttl, 10);
  EXPECT_EQ(ttl->keys, (std::vector<std::string>{"l/1"}));

  auto bad = store_->put({"x", "y", 999});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, Errc::kLeaseNotFound);

  const int64_t before = store_->status().revision;
  ASSERT_TRUE(store_->lease_revoke(lease->id).ok());
  EXPECT_EQ(store_->status().revision, before + 1);
  EXPECT_FALSE(get("l/1"));
  EXPECT_TRUE(get("l/2"));
  EXPECT_FALSE(store_->lease_time_to_live(lease->id, false).ok());
  auto again = store_->lease_revoke(lease->id);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::kLeaseNotFound);
}

TEST_F(StoreTest, LeaseTtlsAreCappedAndDeadlinesNeverWrap) {
  auto huge = store_->lease_grant(0, std::numeric_limits<int64_t>::max());
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code, Errc::kLeaseTtlTooLarge) << huge.error().message;
  EXPECT_FALSE(store_->lease_grant(0, kMaxLeaseTtl + 1).ok());
  // The largest TTL, on a clock far from its epoch: now + TTL would pass INT64_MAX.
  clock_.advance(std::chrono::nanoseconds(std::numeric_limits<int64_t>::max() - 2'000'000'000'000'000'000));
  auto longest = store_->lease_grant(0, kMaxLeaseTtl);
  ASSERT_TRUE(longest.ok()) << longest.error().message;
  ASSERT_GT(put("held", "v", longest->id), 0);
  clock_.advance(std::chrono::seconds(3600));
  store_->expire_leases();
  EXPECT_TRUE(get("held").has_value());
  auto ttl = store_->lease_time_to_live(longest->id, false);
  ASSERT_TRUE(ttl.ok());
  EXPECT_GT(ttl->ttl, 0);
  ASSERT_TRUE(store_->lease_keep_alive(longest->id).ok());
  store_->expire_leases();
  EXPECT_TRUE(get("held").has_value());
}

TEST_F(StoreTest, AutomaticCompactionKeepsTheLastRevisions) {
  store_.reset();
  EmbeddedStoreOptions options;
  options.clock = clock_.fn();
  options.expire_leases_in_background = false;
  options.auto_compaction_retention = 10;
  auto opened = EmbeddedStore::open(dir_.string(), options);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  store_ = std::move(*opened);
  const int64_t first = put("a", "0");
  int64_t last = first;
  for (int i = 1; i < 50; ++i) last = put("a", std::to_string(i));
  const int64_t compacted = store_->status().compact_revision;
  EXPECT_GE(compacted, last - 11);  // at most a tenth of the retention more (one revision)
  EXPECT_LE(compacted, last - 10);
  EXPECT_FALSE(store_->range({"a", "", 0, first}).ok());
  EXPECT_EQ(get("a", last - 9)->value, std::to_string(49 - 9));
}

TEST_F(StoreTest, PeriodicCompactionKeepsTheRetentionOfHistory) {
  store_.reset();
  EmbeddedStoreOptions options;
  options.clock = clock_.fn();
  options.expire_leases_in_background = false;
  options.auto_compaction_period = std::chrono::seconds(10);
  auto opened = EmbeddedStore::open(dir_.string(), options);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  store_ = std::move(*opened);
  const int64_t at_start = put("a", "0");
  clock_.advance(std::chrono::seconds(5));
  const int64_t at_5s = put("a", "1");
  EXPECT_EQ(store_->status().compact_revision, 0);  // nothing before a whole period
  clock_.advance(std::chrono::seconds(6));
  const int64_t at_11s = put("a", "2");
  // The revision current 10 s ago is the one written at the start.
  EXPECT_EQ(store_->status().compact_revision, at_start);
  EXPECT_EQ(get("a", at_5s)->value, "1");
  clock_.advance(std::chrono::seconds(1));
  put("a", "3");
  EXPECT_EQ(store_->status().compact_revision, at_start);  // the next run comes a period later
  clock_.advance(std::chrono::seconds(9));
  put("a", "4");
  EXPECT_EQ(store_->status().compact_revision, at_11s);
  EXPECT_FALSE(store_->range({"a", "", 0, at_5s}).ok());
  EXPECT_EQ(get("a", at_11s)->value, "2");
}

TEST_F(StoreTest, QuotaRaisesNospaceUntilCompactionFreesSpace) {
  store_.reset();
  EmbeddedStoreOptions options;
  options.clock = clock_.fn();
  options.expire_leases_in_background = false;
  options.quota_bytes = 1 << 20;
  auto opened = EmbeddedStore::open(dir_.string(), options);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  store_ = std::move(*opened);
  const std::string value(128 * 1024, 'q');
  std::optional<Error> refused;
  for (int i = 0; i < 40 && !refused; ++i) {
    auto r = store_->put({"q", value});
    if (!r.ok()) refused = r.error();
  }
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->code, Errc::kNoSpace) << refused->message;
  EXPECT_TRUE(store_->nospace_alarm());
  EXPECT_FALSE(store_->lease_grant(0, 10).ok());
  TxnRequest txn;
  txn.success.push_back(PutRequest{"t", "1"});
  EXPECT_FALSE(store_->txn(txn).ok());
  // Reads, deletes and read-only transactions go on.
  TxnRequest reads;
  reads.success.push_back(RangeRequest{"q"});
  EXPECT_TRUE(store_->txn(reads).ok());
  EXPECT_TRUE(store_->delete_range({"none"}).ok());
  ASSERT_TRUE(store_->compact(store_->status().revision).ok());
  EXPECT_FALSE(store_->nospace_alarm());
  EXPECT_GT(put("q", "small"), 0);
  // Disarmed by hand while still over, it comes back at the next commit.
  for (int i = 0; i < 40 && !store_->nospace_alarm(); ++i) (void)store_->put({"q", value});
  ASSERT_TRUE(store_->nospace_alarm());
  store_->disarm_nospace_alarm();
  EXPECT_GT(put("r", "1"), 0);
  EXPECT_TRUE(store_->nospace_alarm());
}

TEST_F(StoreTest, ExpiredLeaseDeletesItsKeysAndWatchersSeeIt) {
  auto lease = store_->lease_grant(0, 5);
  put("session/a", "1", lease->id);
  put("session/b", "1", lease->id);
  testing::WatchCollector c;
  auto w = store_->watch({"session/", prefix_end("session/")}, c.callback());

  clock_.advance(3s);
  ASSERT_TRUE(store_->lease_keep_alive(lease->id).ok());  // deadline now at +8s
  clock_.advance(4s);
  store_->expire_leases();
  EXPECT_TRUE(get("session/a"));
  EXPECT_EQ(store_->lease_time_to_live(lease->id, false)->ttl, 1);

  clock_.advance(2s);
  store_->expire_leases();
  EXPECT_FALSE(get("session/a"));
  EXPECT_FALSE(get("session/b"));
  auto events = c.wait_events(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, Event::Type::kDelete);
  EXPECT_EQ(events[0].kv.mod_revision, events[1].kv.mod_revision);
  EXPECT_FALSE(store_->lease_keep_alive(lease->id).ok());
  EXPECT_TRUE(store_->lease_list().empty());
}

TEST_F(StoreTest, ExpiryRunsInTheBackgroundWithTheRealClock) {
  store_.reset();
  auto opened = EmbeddedStore::open(dir_.string());
  ASSERT_TRUE(opened.ok());
  auto& s = *opened;
  auto lease = s->lease_grant(0, 1);
  ASSERT_TRUE(s->put({"ephemeral", "1", lease->id}).ok());
  testing::WatchCollector c;
  auto w = s->watch({"ephemeral"}, c.callback());
  auto events = c.wait_events(1);  // bounded wait for the deletion event
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, Event::Type::kDelete);
  EXPECT_EQ(s->range({"ephemeral"})->count, 0);
}

TEST_F(StoreTest, OneProcessAtATimeOpensAStore) {
  auto second = EmbeddedStore::open(dir_.string());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Errc::kUnavailable);
  EXPECT_NE(second.error().message.find(dir_.string()), std::string::npos) << second.error().message;
  EXPECT_FALSE(restore_snapshot("/nonexistent", dir_.string()).ok());
  store_.reset();
  EXPECT_TRUE(EmbeddedStore::open(dir_.string()).ok());
}

TEST_F(StoreTest, SnapshotRestoresTheWholeStore) {
  put("s/1", "one");
  put("s/2", "two");
  const fs::path snap = dir_.string() + ".snapshot";
  ASSERT_TRUE(store_->snapshot(snap.string()).ok());
  put("s/3", "after the snapshot");
  store_.reset();

  ASSERT_TRUE(restore_snapshot(snap.string(), dir_.string()).ok());
  reopen();
  EXPECT_EQ(get("s/2")->value, "two");
  EXPECT_FALSE(get("s/3"));
  EXPECT_EQ(store_->status().revision, 3);
  fs::remove(snap);

  const fs::path junk = dir_.string() + ".junk";
  std::ofstream(junk) << "not a database";
  auto bad = restore_snapshot(junk.string(), dir_.string());
  EXPECT_FALSE(bad.ok());
  fs::remove(junk);
}

TEST_F(StoreTest, AsyncWritesCompleteInOrderOnceDurable) {
  constexpr int kWrites = 200;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int64_t> revisions(kWrites, 0);
  int done = 0;
  for (int i = 0; i < kWrites; ++i) {
    store_->put_async({"async/" + std::to_string(i), "v"}, [&, i](Result<PutResponse> r) {
      std::lock_guard<std::mutex> lock(mu);
      revisions[i] = r.ok() ? r->revision : -1;
      ++done;
      cv.notify_all();
    });
  }
  TxnRequest t;
  t.success = {DeleteRangeRequest{"async/0"}};
  std::optional<Result<TxnResponse>> txn;
  store_->txn_async(t, [&](Result<TxnResponse> r) {
    std::lock_guard<std::mutex> lock(mu);
    txn = std::move(r);
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return done == kWrites && txn.has_value(); }));
  }
  for (int i = 0; i < kWrites; ++i) EXPECT_EQ(revisions[i], i + 2) << i;  // queue order is revision order
  ASSERT_TRUE(txn->ok());
  EXPECT_EQ((*txn)->revision, kWrites + 2);
  EXPECT_LT(store_->stats().commits, kWrites);  // queued together, committed together
  reopen();
  EXPECT_EQ(store_->range({"async/", prefix_end("async/")})->count, kWrites - 1);
}

TEST_F(StoreTest, ConcurrentWritersShareCommits) {
  constexpr int kThreads = 64;
  constexpr int kPuts = 20;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPuts; ++i) {
        if (!store_->put({"c/" + std::to_string(t) + "/" + std::to_string(i), "v"}).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const auto stats = store_->stats();
  EXPECT_EQ(stats.writes, kThreads * kPuts);
  // Group commit: many acknowledged writes per fsync'd transaction.
  EXPECT_LT(stats.commits * 2, stats.writes) << stats.commits << " commits for " << stats.writes << " writes";
  auto all = store_->range({"c/", prefix_end("c/")});
  EXPECT_EQ(all->count, kThreads * kPuts);
  EXPECT_EQ(all->revision, 1 + kThreads * kPuts);
  reopen();
  EXPECT_EQ(store_->range({"c/", prefix_end("c/")})->count, kThreads * kPuts);
}

}  // namespace
}  // namespace zeppelin::store
