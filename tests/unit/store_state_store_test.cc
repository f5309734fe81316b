// StoreStateStore and StoreServiceRegistry over a real EmbeddedStore in a
// temporary directory.
#include "state/store_state_store.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "state/service_registry.h"
#include "store/embedded_store.h"

namespace zeppelin::state {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class StoreStateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("zeppelin-sss-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto opened = store::EmbeddedStore::open((dir_ / "store").string());
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(*opened);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  std::map<std::string, store::KeyValue> keys(const std::string& prefix) {
    store::RangeRequest request;
    request.key = prefix;
    request.range_end = store::prefix_end(prefix);
    auto r = store_->range(request);
    EXPECT_TRUE(r.ok());
    std::map<std::string, store::KeyValue> out;
    for (auto& kv : r->kvs) out[kv.key] = kv;
    return out;
  }

  void put(const std::string& key, const std::string& value) {
    store::PutRequest request;
    request.key = key;
    request.value = value;
    ASSERT_TRUE(store_->put(request).ok());
  }

  static SystemRecord shop() {
    SystemRecord r;
    r.name = "shop";
    r.spec_file = "/x/zeppelin.yaml";
    r.spec_text = "name: shop\n";
    r.caller_env = {{"PATH", "/bin"}};
    r.images = {{"web", "sha256:abc"}};
    r.running = false;
    r.scale = {{"web", 4}};
    r.replicas = {{"web/0", {"127.9.0.1", 3}}, {"web/1", {"127.9.0.2", 0}}};
    return r;
  }

  fs::path dir_;
  std::unique_ptr<store::EmbeddedStore> store_;
};

TEST_F(StoreStateStoreTest, RoundTripsEveryFieldUnderTheDocumentedKeys) {
  StoreStateStore state(*store_);
  auto empty = state.load();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  ASSERT_TRUE(state.save({shop()}).ok());

  auto systems = keys("/zeppelin/systems/");
  ASSERT_EQ(systems.size(), 1u) << "desired state is in the store when save() returns";
  state.flush();  // history follows in the background
  const json doc = json::parse(systems.at("/zeppelin/systems/shop").value);
  EXPECT_EQ(doc.at("spec_text"), "name: shop\n");
  EXPECT_EQ(doc.at("scale").at("web"), 4);
  EXPECT_FALSE(doc.contains("replicas")) << "history lives under replicas/, not in the desired state";
  auto replicas = keys("/zeppelin/replicas/");
  ASSERT_EQ(replicas.size(), 2u);
  EXPECT_EQ(json::parse(replicas.at("/zeppelin/replicas/shop/web/0").value),
            (json{{"address", "127.9.0.1"}, {"restarts", 3}}));
  // One save is two transactions: desired state, then all of the history.
  EXPECT_EQ(systems.at("/zeppelin/systems/shop").mod_revision + 1,
            replicas.at("/zeppelin/replicas/shop/web/1").mod_revision);
  EXPECT_EQ(replicas.at("/zeppelin/replicas/shop/web/0").mod_revision,
            replicas.at("/zeppelin/replicas/shop/web/1").mod_revision);

  StoreStateStore other(*store_);  // a fresh reader: nothing cached
  auto loaded = other.load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 1u);
  const SystemRecord& l = (*loaded)[0];
  EXPECT_EQ(l.name, "shop");
  EXPECT_EQ(l.spec_file, "/x/zeppelin.yaml");
  EXPECT_EQ(l.caller_env.at("PATH"), "/bin");
  EXPECT_EQ(l.images.at("web"), "sha256:abc");
  EXPECT_FALSE(l.running);
  EXPECT_EQ(l.scale.at("web"), 4);
  EXPECT_EQ(l.replicas.at("web/0").address, "127.9.0.1");
  EXPECT_EQ(l.replicas.at("web/0").restarts, 3);
  EXPECT_EQ(l.replicas.at("web/1").address, "127.9.0.2");
}

TEST_F(StoreStateStoreTest, SavesWriteOnlyWhatChangedAndDeleteWhatWentAway) {
  StoreStateStore state(*store_);
  SystemRecord r = shop();
  ASSERT_TRUE(state.save({r}).ok());
  state.flush();
  const int64_t first = store_->status().revision;
  ASSERT_TRUE(state.save({r}).ok());
  EXPECT_EQ(store_->status().revision, first) << "an unchanged save writes nothing";

  r.replicas["web/0"].restarts = 4;
  ASSERT_TRUE(state.save({r}).ok());
  state.flush();  // history alone is written in the background
  EXPECT_EQ(store_->status().revision, first + 1);
  EXPECT_EQ(keys("/zeppelin/systems/").at("/zeppelin/systems/shop").mod_revision, first - 1)
      << "a restart count is history: the desired state is not rewritten";

  ASSERT_TRUE(state.save(std::vector<SystemRecord>{}).ok());
  EXPECT_TRUE(keys("/zeppelin/systems/").empty()) << "the system is gone when save() returns";
  state.flush();
  EXPECT_EQ(store_->status().revision, first + 3) << "one revision for the system, one for all its history";
  EXPECT_TRUE(keys("/zeppelin/").empty());
}

TEST_F(StoreStateStoreTest, HistoryWrittenInTheBackgroundLandsBeforeTheNextDesiredState) {
  StoreStateStore state(*store_);
  SystemRecord r = shop();
  ASSERT_TRUE(state.save({r}).ok());
  for (int i = 0; i < 200; ++i) r.replicas["web/" + std::to_string(i + 2)] = ReplicaRecord{"127.9.1.1", i};
  ASSERT_TRUE(state.save({r}).ok());  // history only: queued
  r.running = true;
  ASSERT_TRUE(state.save({r}).ok());  // desired state: in the store when save() returns, and after the history
  const auto history = keys("/zeppelin/replicas/");
  EXPECT_EQ(history.size(), 202u);
  EXPECT_LT(history.at("/zeppelin/replicas/shop/web/99").mod_revision,
            keys("/zeppelin/systems/").at("/zeppelin/systems/shop").mod_revision);

  StoreStateStore reread(*store_);  // what another server would load
  auto loaded = reread.load();
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].replicas.size(), 202u);
  EXPECT_EQ((*loaded)[0].replicas.at("web/199").restarts, 197);
}

TEST_F(StoreStateStoreTest, AnIllFormedRecordIsReportedUnreadableNotFatal) {
  StoreStateStore state(*store_);
  ASSERT_TRUE(state.save({shop()}).ok());
  put("/zeppelin/systems/junk", "not json");
  put("/zeppelin/systems/neg", json{{"spec_file", "/a"}, {"spec_text", "name: neg\n"}, {"scale", {{"s", -1}}}}.dump());
  put("/zeppelin/systems/huge", json{{"spec_file", "/a"}, {"spec_text", "name: huge\n"}, {"scale", {{"s", 1e300}}}}.dump());
  put("/zeppelin/systems/rel", json{{"spec_file", "a.yaml"}, {"spec_text", "name: rel\n"}}.dump());
  auto loaded = state.load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 5u);
  for (const auto& r : *loaded) {
    EXPECT_EQ(r.unreadable.empty(), r.name == "shop") << r.name << ": " << r.unreadable;
    if (r.name != "shop") {
      EXPECT_TRUE(r.spec_text.empty() && r.spec_file.empty()) << r.name;
    }
  }
  auto neg = system_from_json("neg", keys("/zeppelin/systems/").at("/zeppelin/systems/neg").value, "/zeppelin/systems/neg");
  ASSERT_FALSE(neg.ok());
  EXPECT_NE(neg.error().message.find("/zeppelin/systems/neg: scale of \"s\" must be a whole number between 0 and 10000"),
            std::string::npos)
      << neg.error().message;
}

TEST_F(StoreStateStoreTest, WatchReportsDesiredStateChangesAndTellsOwnWritesApart) {
  StoreStateStore state(*store_);
  ASSERT_TRUE(state.load().ok());
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int64_t> seen;
  auto watch = state.watch([&](int64_t revision) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(revision);
    cv.notify_all();
  });
  ASSERT_TRUE(watch.ok()) << watch.error().message;
  ASSERT_TRUE(*watch);
  auto wait_for_count = [&](std::size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return seen.size() >= n; });
  };

  SystemRecord r = shop();
  ASSERT_TRUE(state.save({r}).ok());
  const int64_t own = store_->status().revision;
  r.replicas["web/0"].restarts = 9;  // history only: not reported
  ASSERT_TRUE(state.save({r}).ok());
  state.flush();  // history is written in the background: before the foreign write, so that revisions are known
  put("/zeppelin/systems/other", json{{"spec_file", "/o"}, {"spec_text", "name: other\n"}}.dump());
  const int64_t foreign = store_->status().revision;
  ASSERT_TRUE(wait_for_count(2));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen, (std::vector<int64_t>{own, foreign}));
  EXPECT_TRUE(state.own_write(own));
  EXPECT_FALSE(state.own_write(foreign));
}

TEST_F(StoreStateStoreTest, MigratesAStateFileOnceAndRenamesIt) {
  const std::string file = (dir_ / "state.json").string();
  ASSERT_TRUE(FileStateStore(file).save({shop()}).ok());
  StoreStateStore state(*store_);
  auto migrated = migrate_state_file(file, state);
  ASSERT_TRUE(migrated.ok()) << migrated.error().message;
  EXPECT_EQ(*migrated, 1);
  EXPECT_FALSE(fs::exists(file));
  EXPECT_TRUE(fs::exists(file + ".migrated"));
  auto loaded = state.load();
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].replicas.at("web/0").restarts, 3);

  // A stray state.json later on never overwrites what the store holds.
  SystemRecord stale = shop();
  stale.scale["web"] = 1;
  ASSERT_TRUE(FileStateStore(file).save({stale}).ok());
  auto again = migrate_state_file(file, state);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);
  EXPECT_TRUE(fs::exists(file));
  EXPECT_EQ((*state.load())[0].scale.at("web"), 4);
}

TEST_F(StoreStateStoreTest, RegistryAnnouncesOnALeaseAndRevokesItAtTheEnd) {
  std::string value;
  {
    auto registry = StoreServiceRegistry::open(*store_, "/zeppelin/", 10);
    ASSERT_TRUE(registry.ok()) << registry.error().message;
    (*registry)->announce("shop", "web", 0, R"({"address":"127.9.0.1"})");
    (*registry)->announce("shop", "web", 1, R"({"address":"127.9.0.2"})");
    (*registry)->withdraw("shop", "web", 1);
    // Writes are queued in order; a blocking write behind them sees them applied.
    put("/barrier", "");
    auto announced = keys("/zeppelin/services/");
    ASSERT_EQ(announced.size(), 1u);
    EXPECT_EQ(announced.at("/zeppelin/services/shop/web/0").value, R"({"address":"127.9.0.1"})");
    EXPECT_EQ(announced.at("/zeppelin/services/shop/web/0").lease, (*registry)->lease());

    // A lost lease (the owner stalled past the TTL) is replaced, and everything announced again.
    const int64_t lost = (*registry)->lease();
    ASSERT_TRUE(store_->lease_revoke(lost).ok());
    EXPECT_TRUE(keys("/zeppelin/services/").empty());
    ASSERT_TRUE((*registry)->keep_alive().ok());
    EXPECT_NE((*registry)->lease(), lost);
    put("/barrier", "");
    EXPECT_EQ(keys("/zeppelin/services/").at("/zeppelin/services/shop/web/0").lease, (*registry)->lease());

    (*registry)->withdraw_all("other");  // another system's withdrawal leaves this one alone
    put("/barrier", "");
    EXPECT_EQ(keys("/zeppelin/services/").size(), 1u);
  }
  EXPECT_TRUE(keys("/zeppelin/services/").empty()) << "the registry's end revokes its lease";
}

}  // namespace
}  // namespace zeppelin::state
