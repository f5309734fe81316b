// The reconciler on the coordination store: desired state written to the
// store by someone else is acted on, and ready replicas are announced for
// service discovery. Real processes, a real EmbeddedStore in a temp dir.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/process/process_driver.h"
#include "state/service_registry.h"
#include "state/store_state_store.h"
#include "store/embedded_store.h"
#include "supervisor/supervisor.h"
#include "test_waits.h"

namespace zeppelin::supervisor {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

// Counts the loads of the real StoreStateStore it forwards to: how often the
// supervisor read desired state back.
class CountingStateStore final : public state::StateStore {
 public:
  explicit CountingStateStore(state::StateStore& inner) : inner_(inner) {}
  Result<std::vector<state::SystemRecord>> load() override {
    ++loads;
    return inner_.load();
  }
  using state::StateStore::save;
  Status save(std::span<const state::SystemRecord* const> systems) override { return inner_.save(systems); }
  Result<std::unique_ptr<state::StateWatch>> watch(state::StateChangeCallback callback) override {
    return inner_.watch(std::move(callback));
  }
  bool own_write(int64_t revision) override { return inner_.own_write(revision); }
  int loads = 0;

 private:
  state::StateStore& inner_;
};

class SupervisorStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = fs::temp_directory_path() / ("zeppelin-supstore-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(home_);
    fs::create_directories(home_);
    auto opened = store::EmbeddedStore::open((home_ / "store").string());
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(*opened);
    state_ = std::make_unique<state::StoreStateStore>(*store_);
    counting_ = std::make_unique<CountingStateStore>(*state_);
    auto registry = state::StoreServiceRegistry::open(*store_, "/zeppelin/", 10);
    ASSERT_TRUE(registry.ok()) << registry.error().message;
    registry_ = std::move(*registry);
    driver_ = std::make_unique<runtime::ProcessDriver>(io_, home_.string());
    SupervisorOptions options;
    options.home = home_.string();
    options.registry = registry_.get();
    options.etcd_endpoints = {"http://127.0.0.1:1"};
    sup_ = std::make_unique<Supervisor>(io_, *driver_, *counting_, options);
    ASSERT_TRUE(sup_->recover().ok());
  }

  void TearDown() override {
    bool done = false;
    sup_->shutdown([&] { done = true; });
    run_until([&] { return done; });
    sup_.reset();
    registry_.reset();
    counting_.reset();
    state_.reset();
    store_.reset();
    fs::remove_all(home_);
  }

  template <typename Pred>
  bool run_until(Pred pred, std::chrono::milliseconds limit = 10s) {
    return testing::run_io_until(io_, pred, limit);
  }

  std::map<std::string, std::string> keys(const std::string& prefix) {
    store::RangeRequest request;
    request.key = prefix;
    request.range_end = store::prefix_end(prefix);
    auto r = store_->range(request);
    std::map<std::string, std::string> out;
    if (r) {
      for (auto& kv : r->kvs) out[kv.key] = kv.value;
    }
    return out;
  }

  int running(const std::string& service = "s") {
    int n = 0;
    auto rows = sup_->replicas(std::string("t"));
    if (!rows) return 0;
    for (const auto& r : *rows) n += r.service == service && r.state == ReplicaState::kRunning;
    return n;
  }

  ReplicaStatus replica(int ordinal) {
    auto rows = sup_->replicas(std::string("t"));
    if (!rows) return {};
    for (const auto& r : *rows) {
      if (r.replica == ordinal) return r;
    }
    return {};
  }

  // Rewrites the system's record in the store, as `etcdctl put` would.
  void edit_record(const std::function<void(json&)>& change) {
    auto current = keys("/zeppelin/systems/t");
    ASSERT_EQ(current.size(), 1u);
    json doc = json::parse(current.begin()->second);
    change(doc);
    store::PutRequest request;
    request.key = "/zeppelin/systems/t";
    request.value = doc.dump();
    ASSERT_TRUE(store_->put(request).ok());
  }

  boost::asio::io_context io_;
  fs::path home_;
  std::unique_ptr<store::EmbeddedStore> store_;
  std::unique_ptr<state::StoreStateStore> state_;
  std::unique_ptr<CountingStateStore> counting_;
  std::unique_ptr<state::StoreServiceRegistry> registry_;
  std::unique_ptr<runtime::ProcessDriver> driver_;
  std::unique_ptr<Supervisor> sup_;
};

state::SystemRecord record(const fs::path& home, const std::string& text) {
  state::SystemRecord r;
  r.spec_file = (home / "zeppelin.yaml").string();
  r.spec_text = text;
  r.caller_env = {{"PATH", "/usr/bin:/bin"}};
  return r;
}

const char kSpec[] =
    "name: t\nservices:\n  s:\n    command: [\"sleep\", \"1000\"]\n    ports: [{name: http, port: 8080}]\n";

TEST_F(SupervisorStoreTest, ScaleAndStopWrittenToTheStoreAreReconciled) {
  ASSERT_TRUE(sup_->apply(record(home_, kSpec)).ok());
  run_until([&] { return running() == 1; });

  edit_record([](json& doc) { doc["scale"] = {{"s", 3}}; });
  run_until([&] { return running() == 3; });
  EXPECT_EQ(sup_->systems().at(0).replicas, 3);

  edit_record([](json& doc) { doc["running"] = false; });
  run_until([&] { return running() == 0 && replica(0).pid == 0; });
  EXPECT_FALSE(sup_->systems().at(0).running);

  // A deleted record is a removed system.
  store::DeleteRangeRequest del;
  del.key = "/zeppelin/systems/t";
  ASSERT_TRUE(store_->delete_range(del).ok());
  run_until([&] { return sup_->systems().empty(); });
  run_until([&] { return keys("/zeppelin/replicas/t/").empty(); });
}

TEST_F(SupervisorStoreTest, OwnWritesAreNotReadBack) {
  EXPECT_EQ(counting_->loads, 1);  // recover()
  ASSERT_TRUE(sup_->apply(record(home_, kSpec)).ok());
  ASSERT_TRUE(sup_->scale("t", "s", 2).ok());
  ASSERT_TRUE(sup_->scale("t", "s", 3).ok());
  run_until([&] { return running() == 3; });
  // Changes are reported in revision order: once this one has been acted on,
  // the reports of the server's own saves before it have been handled too.
  edit_record([](json& doc) { doc["scale"] = {{"s", 1}}; });
  run_until([&] { return running() == 1; });
  EXPECT_EQ(counting_->loads, 2) << "only the foreign change is read back";
}

TEST_F(SupervisorStoreTest, ASystemPutIntoTheStoreIsStarted) {
  state::SystemRecord r = record(home_, kSpec);
  r.name = "t";
  store::PutRequest put;
  put.key = "/zeppelin/systems/t";
  put.value = state::system_to_json(r);
  ASSERT_TRUE(store_->put(put).ok());
  run_until([&] { return !sup_->systems().empty() && running() == 1; });
}

TEST_F(SupervisorStoreTest, ReadyReplicasAreAnnouncedAndWithdrawn) {
  ASSERT_TRUE(sup_->apply(record(home_, "name: t\nservices:\n  s:\n    command: [\"sleep\", \"1000\"]\n    replicas: 2\n"
                                        "    ports: [{name: http, port: 8080}]\n"))
                  .ok());
  run_until([&] { return running() == 2 && keys("/zeppelin/services/t/s/").size() == 2; });
  const auto announced = keys("/zeppelin/services/t/s/");
  for (int i = 0; i < 2; ++i) {
    const ReplicaStatus r = replica(i);
    const json doc = json::parse(announced.at("/zeppelin/services/t/s/" + std::to_string(i)));
    EXPECT_EQ(doc.at("address").get<std::string>() + ":8080", r.address);
    EXPECT_EQ(doc.at("ports"), (json{{"http", 8080}}));
    EXPECT_EQ(doc.at("replica"), i);
    EXPECT_EQ(doc.at("pid"), r.pid);
  }

  ASSERT_TRUE(sup_->scale("t", "s", 1).ok());
  run_until([&] { return keys("/zeppelin/services/t/s/").size() == 1; });
  EXPECT_TRUE(keys("/zeppelin/services/t/s/").count("/zeppelin/services/t/s/0"));

  // A crash withdraws the announcement; the restarted replica is announced with its new pid.
  const int old_pid = replica(0).pid;
  ::kill(old_pid, SIGKILL);
  run_until([&] {
    auto now = keys("/zeppelin/services/t/s/");
    return now.size() == 1 && json::parse(now.begin()->second).at("pid") != old_pid && replica(0).pid != old_pid &&
           replica(0).state == ReplicaState::kRunning;
  });
  EXPECT_EQ(json::parse(keys("/zeppelin/services/t/s/").begin()->second).at("pid"), replica(0).pid);
}

}  // namespace
}  // namespace zeppelin::supervisor
