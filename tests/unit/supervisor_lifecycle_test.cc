// The replica lifecycle of docs/spec.md ("Lifecycle", `health`, `restart`,
// `stop_grace`, `depends_on`, `mode`), one transition at a time: the
// supervisor runs against the in-memory driver and a clock the test moves, so
// nothing sleeps and every step is deterministic.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <csignal>
#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "runtime/memory/memory_driver.h"
#include "state/state_store.h"
#include "supervisor/supervisor.h"

namespace zeppelin::supervisor {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

runtime::ExitStatus exited(int code) { return runtime::ExitStatus{code, 0, false}; }

// What is announced for discovery: "system/service/ordinal" -> the document.
class AnnouncedReplicas final : public state::ServiceRegistry {
 public:
  void announce(const std::string& system, const std::string& service, int ordinal, const std::string& value) override {
    docs[system + "/" + service + "/" + std::to_string(ordinal)] = nlohmann::json::parse(value);
  }
  void withdraw(const std::string& system, const std::string& service, int ordinal) override {
    docs.erase(system + "/" + service + "/" + std::to_string(ordinal));
  }
  void withdraw_all(const std::string& system) override {
    std::erase_if(docs, [&](const auto& kv) { return kv.first.starts_with(system + "/"); });
  }
  std::map<std::string, nlohmann::json> docs;
};

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = fs::temp_directory_path() / ("zeppelin-lifecycle-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(home_);
    fs::create_directories(home_);
    start_supervisor();
  }

  void TearDown() override {
    if (sup_) {
      bool done = false;
      sup_->shutdown([&] { done = true; });
      for (int i = 0; i < 100 && !done; ++i) clock_.advance(1s);
      EXPECT_TRUE(done) << "shutdown did not finish";
      sup_.reset();
    }
    fs::remove_all(home_);
  }

  void start_supervisor() {
    SupervisorOptions options;
    options.home = home_.string();
    options.clock = &clock_;
    options.address_block = 100;
    options.registry = &announced_;
    sup_ = std::make_unique<Supervisor>(io_, driver_, store_, options);
    auto recovered = sup_->recover();
    ASSERT_TRUE(recovered.ok()) << recovered.error().message;
    settle();
  }

  void apply(const std::string& services) {
    state::SystemRecord r;
    r.spec_file = (home_ / "zeppelin.yaml").string();
    r.spec_text = "name: t\nservices:\n" + services;
    auto applied = sup_->apply(r);
    ASSERT_TRUE(applied.ok()) << applied.error().message;
    settle();
  }

  // Runs what is ready on the loop, without moving time.
  void settle() { clock_.advance(0ms); }

  ReplicaStatus replica(const std::string& key) {
    auto rows = sup_->replicas(std::string("t"));
    EXPECT_TRUE(rows.ok());
    for (const auto& r : *rows) {
      if (r.service + "/" + std::to_string(r.replica) == key) return r;
    }
    ADD_FAILURE() << "no replica " << key;
    return {};
  }

  // "state/health" of a replica, as `zeppelin ps` shows them.
  std::string state(const std::string& key) {
    const ReplicaStatus r = replica(key);
    return std::string(to_string(r.state)) + "/" + to_string(r.health);
  }

  static std::string id(const std::string& key) { return "t/" + key; }

  // The driver's history since the last call, from the entries naming `what` ("start", "terminate"...).
  std::vector<std::string> taken(const std::string& what = "") {
    std::vector<std::string> out;
    for (const auto& h : driver_.history()) {
      if (what.empty() || h.rfind(what + " ", 0) == 0) out.push_back(h);
    }
    driver_.clear_history();
    return out;
  }

  boost::asio::io_context io_;
  ManualClock clock_{io_};
  runtime::MemoryDriver driver_{io_};
  state::MemoryStateStore store_;
  AnnouncedReplicas announced_;
  fs::path home_;
  std::unique_ptr<Supervisor> sup_;
};

TEST_F(LifecycleTest, WithoutAHealthCheckAReplicaIsRunningAsSoonAsItStarts) {
  apply("  s:\n    command: [app]\n    replicas: 2\n");
  EXPECT_EQ(state("s/0"), "running/none");
  EXPECT_EQ(state("s/1"), "running/none");
  EXPECT_TRUE(driver_.running(id("s/0")));
  EXPECT_EQ(replica("s/0").address, "127.100.0.1");
  EXPECT_EQ(replica("s/1").address, "127.100.0.2");
  clock_.advance(3s);
  EXPECT_DOUBLE_EQ(replica("s/0").uptime_seconds, 3.0);
}

TEST_F(LifecycleTest, AHealthCheckedReplicaIsStartingUntilItsFirstCheckPasses) {
  driver_.set_probe(id("s/0"), false);
  apply("  s:\n    command: [app]\n    health: {exec: check, interval: 1s, retries: 3}\n");
  EXPECT_EQ(state("s/0"), "starting/starting");
  // The first check runs after min(interval, 50ms), then every min(interval, 100ms).
  clock_.advance(49ms);
  EXPECT_TRUE(taken("probe").empty());
  clock_.advance(1ms);
  EXPECT_EQ(taken("probe").size(), 1u);
  clock_.advance(100ms);
  EXPECT_EQ(taken("probe").size(), 1u);
  EXPECT_EQ(state("s/0"), "starting/starting") << "failures before the first pass leave the health as it is";
  driver_.set_probe(id("s/0"), true);
  clock_.advance(100ms);
  EXPECT_EQ(state("s/0"), "running/healthy");
  // From then on, checks run every interval.
  taken();
  clock_.advance(999ms);
  EXPECT_TRUE(taken("probe").empty());
  clock_.advance(1ms);
  EXPECT_EQ(taken("probe").size(), 1u);
}

TEST_F(LifecycleTest, ANewReplicaThatNeverPassesIsRestartedAfterStartPeriodAndRetriesIntervals) {
  driver_.set_probe(id("s/0"), false);
  apply("  s:\n    command: [app]\n    health: {exec: check, interval: 1s, retries: 2, start_period: 3s}\n");
  // start_period + retries x interval = 5 s of failing checks are allowed.
  clock_.advance(4900ms);
  EXPECT_EQ(state("s/0"), "starting/starting");
  EXPECT_TRUE(taken("terminate").empty());
  clock_.advance(200ms);
  EXPECT_EQ(taken("terminate"), std::vector<std::string>{"terminate t/s/0"});
  // Stopped for health, it is restarted whatever the restart policy, and it counts.
  EXPECT_EQ(driver_.starts(id("s/0")), 2);
  EXPECT_EQ(state("s/0"), "starting/starting");
  EXPECT_EQ(replica("s/0").restarts, 1);
  EXPECT_NE(replica("s/0").last_exit.find("signal 15"), std::string::npos) << replica("s/0").last_exit;
  EXPECT_EQ(replica("s/0").last_exit.find("stopped as asked"), std::string::npos) << "a restart for health is a failure";
}

TEST_F(LifecycleTest, FailedChecksAfterAPassMakeItUnhealthyAndRetriesOfThemRestartIt) {
  apply("  s:\n    command: [app]\n    restart: never\n    health: {exec: check, interval: 1s, retries: 3}\n");
  clock_.advance(50ms);
  ASSERT_EQ(state("s/0"), "running/healthy");
  driver_.set_probe(id("s/0"), false);
  clock_.advance(1s);
  EXPECT_EQ(state("s/0"), "running/unhealthy");
  clock_.advance(1s);
  EXPECT_EQ(state("s/0"), "running/unhealthy");
  // A pass makes it healthy again and resets the count.
  driver_.set_probe(id("s/0"), true);
  clock_.advance(1s);
  EXPECT_EQ(state("s/0"), "running/healthy");
  driver_.set_probe(id("s/0"), false);
  clock_.advance(2s);
  EXPECT_TRUE(taken("terminate").empty());
  clock_.advance(1s);
  EXPECT_EQ(taken("terminate"), std::vector<std::string>{"terminate t/s/0"});
  EXPECT_EQ(driver_.starts(id("s/0")), 2) << "restart: never does not hold back a restart for health";
}

TEST_F(LifecycleTest, CrashesAreRestartedAtOnceThenWithADoublingBackoffThatALongRunResets) {
  apply("  s:\n    command: [app]\n");
  driver_.exit(id("s/0"), exited(1));
  settle();
  EXPECT_EQ(driver_.starts(id("s/0")), 2) << "the first restart is immediate";
  EXPECT_EQ(replica("s/0").restarts, 1);

  // Then 100 ms, 200 ms, 400 ms, each varied by +-20%.
  for (const auto base : {100ms, 200ms, 400ms}) {
    const int before = driver_.starts(id("s/0"));
    driver_.exit(id("s/0"), exited(1));
    settle();
    EXPECT_EQ(state("s/0"), "backoff/none");
    EXPECT_NE(replica("s/0").detail.find("restarting in"), std::string::npos) << replica("s/0").detail;
    clock_.advance(base * 8 / 10 - 1ms);
    EXPECT_EQ(driver_.starts(id("s/0")), before) << "restarted before " << base.count() << " ms - 20%";
    clock_.advance(base * 4 / 10 + 2ms);
    EXPECT_EQ(driver_.starts(id("s/0")), before + 1) << "not restarted by " << base.count() << " ms + 20%";
    EXPECT_EQ(state("s/0"), "running/none");
  }
  EXPECT_EQ(replica("s/0").restarts, 4);

  // A run of 10 s or more starts the backoff over: restarted at once.
  clock_.advance(10s);
  const int before = driver_.starts(id("s/0"));
  driver_.exit(id("s/0"), exited(1));
  settle();
  EXPECT_EQ(driver_.starts(id("s/0")), before + 1);
}

TEST_F(LifecycleTest, TheBackoffStopsDoublingAtItsCap) {
  apply("  s:\n    command: [app]\n");
  // Crash again as soon as each restart happens: 100 ms doubled 9 times passes 30 s.
  for (int i = 0; i < 12; ++i) {
    const int before = driver_.starts(id("s/0"));
    driver_.exit(id("s/0"), exited(1));
    while (driver_.starts(id("s/0")) == before) ASSERT_TRUE(clock_.run_next());
  }
  const int before = driver_.starts(id("s/0"));
  driver_.exit(id("s/0"), exited(1));
  settle();
  clock_.advance(24s - 1ms);  // 30 s - 20%
  EXPECT_EQ(driver_.starts(id("s/0")), before);
  clock_.advance(12s + 2ms);  // 30 s + 20%
  EXPECT_EQ(driver_.starts(id("s/0")), before + 1);
}

TEST_F(LifecycleTest, RestartPoliciesDecideBetweenStoppedFailedAndRestarted) {
  apply(
      "  always:\n    command: [app]\n"
      "  onfail:\n    command: [app]\n    restart: on-failure\n"
      "  never:\n    command: [app]\n    restart: never\n    replicas: 2\n");
  driver_.exit(id("always/0"), exited(0));
  driver_.exit(id("onfail/0"), exited(0));
  driver_.exit(id("never/0"), exited(0));
  driver_.exit(id("never/1"), exited(3));
  settle();
  EXPECT_EQ(driver_.starts(id("always/0")), 2);
  EXPECT_EQ(state("onfail/0"), "stopped/none");
  EXPECT_EQ(state("never/0"), "stopped/none");
  EXPECT_EQ(state("never/1"), "failed/none");
  EXPECT_EQ(replica("never/1").detail, "exited with code 3");

  driver_.exit(id("onfail/0"), exited(0));  // no longer running: nothing happens
  clock_.advance(1min);
  EXPECT_EQ(driver_.starts(id("onfail/0")), 1);
  EXPECT_EQ(driver_.starts(id("never/1")), 1) << "a failed replica is not restarted";
}

TEST_F(LifecycleTest, AnOnFailureReplicaIsRestartedAfterAFailureOnly) {
  apply("  s:\n    command: [app]\n    restart: on-failure\n");
  driver_.exit(id("s/0"), runtime::ExitStatus{128 + SIGSEGV, SIGSEGV, false});
  settle();
  EXPECT_EQ(driver_.starts(id("s/0")), 2);
  EXPECT_EQ(state("s/0"), "running/none");
}

TEST_F(LifecycleTest, AStartThatFailsIsAFailedExit) {
  driver_.refuse_starts(id("never/0"), "app: not found");
  driver_.refuse_starts(id("always/0"), "app: not found");
  apply("  never:\n    command: [app]\n    restart: never\n  always:\n    command: [app]\n");
  EXPECT_EQ(state("never/0"), "failed/none");
  EXPECT_EQ(replica("never/0").detail, "app: not found");
  // Under `always` the first retry is at once, and then it backs off.
  EXPECT_EQ(state("always/0"), "backoff/none");
  EXPECT_EQ(replica("always/0").restarts, 2);
  driver_.refuse_starts(id("always/0"), "");
  clock_.advance(121ms);
  EXPECT_EQ(state("always/0"), "running/none");
}

TEST_F(LifecycleTest, StopSendsSigtermAndSigkillAfterTheGrace) {
  driver_.exit_on_terminate = false;
  apply("  s:\n    command: [app]\n    stop_grace: 2s\n");
  taken();
  bool stopped = false;
  ASSERT_TRUE(sup_->stop("t", [&] { stopped = true; }).ok());
  settle();
  EXPECT_EQ(state("s/0"), "stopping/none");
  EXPECT_EQ(taken(), std::vector<std::string>{"terminate t/s/0"});
  clock_.advance(2s - 1ms);
  EXPECT_FALSE(stopped);
  EXPECT_TRUE(taken("kill").empty());
  clock_.advance(1ms);
  EXPECT_EQ(taken("kill"), std::vector<std::string>{"kill t/s/0"});
  settle();
  EXPECT_TRUE(stopped);
  EXPECT_EQ(state("s/0"), "stopped/none");
  EXPECT_EQ(replica("s/0").last_exit, "stopped as asked: killed by signal 9 (Killed)");
  EXPECT_EQ(replica("s/0").restarts, 0) << "a stop that was asked for is no crash";
}

TEST_F(LifecycleTest, AReplicaThatExitsOnSigtermIsNotKilled) {
  apply("  s:\n    command: [app]\n    stop_grace: 2s\n");
  bool stopped = false;
  ASSERT_TRUE(sup_->stop("t", [&] { stopped = true; }).ok());
  settle();
  EXPECT_TRUE(stopped);
  clock_.advance(5s);
  EXPECT_TRUE(taken("kill").empty());
  EXPECT_EQ(state("s/0"), "stopped/none");
  // Started again as it was last applied.
  ASSERT_TRUE(sup_->start("t").ok());
  settle();
  EXPECT_EQ(state("s/0"), "running/none");
  EXPECT_EQ(driver_.starts(id("s/0")), 2);
}

TEST_F(LifecycleTest, AnOrderedStatefulServiceStartsEachOrdinalOnceThePreviousIsReady) {
  for (int i = 0; i < 3; ++i) driver_.set_probe(id("db/" + std::to_string(i)), false);
  apply("  db:\n    command: [db]\n    mode: stateful\n    replicas: 3\n    health: {exec: check, interval: 1s}\n");
  EXPECT_EQ(taken("start"), std::vector<std::string>{"start t/db/0"});
  EXPECT_EQ(state("db/1"), "stopped/none");
  clock_.advance(1s);
  EXPECT_TRUE(taken("start").empty());
  driver_.set_probe(id("db/0"), true);
  clock_.advance(100ms);
  EXPECT_EQ(taken("start"), std::vector<std::string>{"start t/db/1"});
  driver_.set_probe(id("db/1"), true);
  clock_.advance(100ms);
  EXPECT_EQ(taken("start"), std::vector<std::string>{"start t/db/2"});
}

TEST_F(LifecycleTest, AnOrderedStatefulServiceStopsFromTheHighestOrdinalOneAtATime) {
  apply("  db:\n    command: [db]\n    mode: stateful\n    replicas: 3\n");
  ASSERT_EQ(taken("start").size(), 3u);
  driver_.exit_on_terminate = false;
  bool stopped = false;
  ASSERT_TRUE(sup_->stop("t", [&] { stopped = true; }).ok());
  settle();
  EXPECT_EQ(taken(), std::vector<std::string>{"terminate t/db/2"});
  driver_.exit(id("db/2"), runtime::ExitStatus{128 + SIGTERM, SIGTERM, false});
  settle();
  EXPECT_EQ(taken(), (std::vector<std::string>{"exit t/db/2", "terminate t/db/1"}));
  driver_.exit(id("db/1"), exited(0));
  settle();
  EXPECT_EQ(taken(), (std::vector<std::string>{"exit t/db/1", "terminate t/db/0"}));
  EXPECT_FALSE(stopped);
  driver_.exit(id("db/0"), exited(0));
  settle();
  EXPECT_TRUE(stopped);
}

TEST_F(LifecycleTest, DependentsStartOnceEveryDependencyReplicaIsReadyAndStopFirst) {
  driver_.set_probe(id("db/1"), false);
  apply(
      "  web:\n    command: [web]\n    depends_on: [db]\n"
      "  db:\n    command: [db]\n    replicas: 2\n    health: {exec: check, interval: 1s}\n");
  clock_.advance(1s);
  EXPECT_EQ(taken("start"), (std::vector<std::string>{"start t/db/0", "start t/db/1"}));
  EXPECT_EQ(state("web/0"), "stopped/none");
  driver_.set_probe(id("db/1"), true);
  clock_.advance(100ms);
  EXPECT_EQ(taken("start"), std::vector<std::string>{"start t/web/0"});
  // The dependency's address reaches the dependent.
  const runtime::LaunchSpec* web = driver_.launch(id("web/0"));
  ASSERT_NE(web, nullptr);
  EXPECT_NE(std::find(web->env.begin(), web->env.end(), "ZEPPELIN_SERVICE_DB=127.100.0.1,127.100.0.2"), web->env.end());

  // A dependency failing later does not touch the dependents.
  driver_.exit(id("db/0"), exited(1));
  settle();
  EXPECT_TRUE(taken("terminate").empty());

  driver_.exit_on_terminate = false;
  ASSERT_TRUE(sup_->stop("t", [] {}).ok());
  settle();
  EXPECT_EQ(taken("terminate"), std::vector<std::string>{"terminate t/web/0"});
  driver_.exit(id("web/0"), exited(0));
  settle();
  // Replicas of one service are stopped together.
  auto terminated = taken("terminate");
  std::sort(terminated.begin(), terminated.end());
  EXPECT_EQ(terminated, (std::vector<std::string>{"terminate t/db/0", "terminate t/db/1"}));
}

TEST_F(LifecycleTest, ScalingAddsOrdinalsAndRemovesTheHighest) {
  apply("  s:\n    command: [app]\n    replicas: 2\n");
  taken();
  ASSERT_TRUE(sup_->scale("t", "s", 4).ok());
  settle();
  EXPECT_EQ(taken("start"), (std::vector<std::string>{"start t/s/2", "start t/s/3"}));
  ASSERT_TRUE(sup_->scale("t", "s", 1).ok());
  settle();
  auto terminated = taken("terminate");
  std::sort(terminated.begin(), terminated.end());
  EXPECT_EQ(terminated, (std::vector<std::string>{"terminate t/s/1", "terminate t/s/2", "terminate t/s/3"}));
  EXPECT_EQ(sup_->replicas(std::string("t"))->size(), 1u);
  EXPECT_TRUE(driver_.running(id("s/0")));
  EXPECT_EQ(store_.systems.at(0).scale.at("s"), 1) << "the scale is persisted";
}

TEST_F(LifecycleTest, ARollingRestartReplacesOneReplicaAtATimeEachReadyBeforeTheNext) {
  apply("  s:\n    command: [app]\n    replicas: 3\n    health: {exec: check, interval: 1s}\n");
  clock_.advance(50ms);
  ASSERT_EQ(state("s/2"), "running/healthy");
  taken();
  for (int i = 0; i < 3; ++i) driver_.set_probe(id("s/" + std::to_string(i)), false);
  ASSERT_TRUE(sup_->restart("t", std::nullopt).ok());
  settle();
  // Replicated: ordinal 0 first.
  EXPECT_EQ(taken(), (std::vector<std::string>{"terminate t/s/0", "start t/s/0"}));
  clock_.advance(500ms);
  EXPECT_TRUE(taken("terminate").empty()) << "the next waits until the replaced one is ready";
  driver_.set_probe(id("s/0"), true);
  clock_.advance(100ms);
  EXPECT_EQ(taken("terminate"), std::vector<std::string>{"terminate t/s/1"});
  driver_.set_probe(id("s/1"), true);
  clock_.advance(100ms);
  EXPECT_EQ(taken("terminate"), std::vector<std::string>{"terminate t/s/2"});
  EXPECT_EQ(replica("s/0").restarts, 0) << "a replacement is no restart";
}

TEST_F(LifecycleTest, ReapplyingReplacesOnlyServicesWhoseDefinitionChanged) {
  apply("  a:\n    command: [a]\n  b:\n    command: [b]\n");
  taken();
  apply("  a:\n    command: [a, --new]\n  b:\n    command: [b]\n    stop_grace: 1s\n");
  clock_.advance(1s);
  EXPECT_EQ(taken(), (std::vector<std::string>{"terminate t/a/0", "start t/a/0"}));
  EXPECT_EQ(driver_.launch(id("a/0"))->argv, (std::vector<std::string>{"a", "--new"}));
  EXPECT_EQ(driver_.starts(id("b/0")), 1);
}

TEST_F(LifecycleTest, ReapplyingStartsFailedReplicasAgain) {
  apply("  s:\n    command: [app]\n    restart: never\n");
  driver_.exit(id("s/0"), exited(2));
  settle();
  ASSERT_EQ(state("s/0"), "failed/none");
  apply("  s:\n    command: [app]\n    restart: never\n");
  EXPECT_EQ(state("s/0"), "running/none");
  EXPECT_EQ(driver_.starts(id("s/0")), 2);
}

TEST_F(LifecycleTest, WaitReadyNeedsReplicasWithoutAHealthCheckToStayUpAMoment) {
  apply("  s:\n    command: [app]\n");
  std::optional<ReadyReport> report;
  ASSERT_TRUE(sup_->wait_ready("t", 60s, [&](ReadyReport r) { report = r; }).ok());
  clock_.advance(499ms);
  EXPECT_FALSE(report);
  clock_.advance(1ms);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok) << report->message;
}

TEST_F(LifecycleTest, WaitReadyFailsAtOnceWhenAReplicaCrashesAndAfterItsTimeout) {
  apply("  s:\n    command: [app]\n  h:\n    command: [app]\n    health: {exec: check}\n");
  driver_.set_probe(id("h/0"), false);
  std::optional<ReadyReport> crashed, timed_out;
  ASSERT_TRUE(sup_->wait_ready("t", 60s, [&](ReadyReport r) { crashed = r; }).ok());
  driver_.exit(id("s/0"), exited(1));
  settle();
  ASSERT_TRUE(crashed);
  EXPECT_FALSE(crashed->ok);
  EXPECT_EQ(crashed->replica, "s/0");

  ASSERT_TRUE(sup_->wait_ready("t", 5s, [&](ReadyReport r) { timed_out = r; }).ok());
  clock_.advance(5s - 1ms);
  EXPECT_FALSE(timed_out);
  clock_.advance(1ms);
  ASSERT_TRUE(timed_out);
  EXPECT_FALSE(timed_out->ok);
  EXPECT_EQ(timed_out->message, "not ready after 5s; h/0 is starting (health: starting)");
}

TEST_F(LifecycleTest, ANewSupervisorRestoresSystemsWithTheirAddressesAndRestartCounts) {
  apply("  s:\n    command: [app]\n    replicas: 2\n");
  driver_.exit(id("s/1"), exited(1));
  clock_.advance(1s);  // the history is persisted soon after
  ASSERT_EQ(replica("s/1").restarts, 1);
  ASSERT_TRUE(sup_->scale("t", "s", 3).ok());
  settle();
  const std::string address = replica("s/2").address;

  // The server goes away without stopping anything; the next one reaps what
  // it does not want, and starts the rest again.
  sup_.reset();
  driver_.leftovers = {id("s/0"), id("s/1"), id("s/2"), "gone/x/0"};
  start_supervisor();
  EXPECT_TRUE(driver_.leftovers.empty()) << "leftovers were not looked at";
  EXPECT_EQ(replica("s/1").restarts, 1);
  EXPECT_EQ(replica("s/2").address, address);
  EXPECT_EQ(state("s/2"), "running/none");
}

TEST_F(LifecycleTest, ReadyReplicasAreAnnouncedWithTheirPidOrContainerAndWithdrawnWhenNotReady) {
  driver_.set_probe(id("web/0"), false);
  apply("  web:\n    command: [web]\n    ports: [{name: http, port: 8080}]\n    health: {exec: check}\n"
        "  cache:\n    image: redis:7\n");
  EXPECT_EQ(announced_.docs.count("t/web/0"), 0u) << "not ready yet";
  ASSERT_EQ(announced_.docs.count("t/cache/0"), 1u);
  EXPECT_EQ(announced_.docs["t/cache/0"].value("container", ""), "memory-" + std::to_string(replica("cache/0").pid));
  EXPECT_FALSE(announced_.docs["t/cache/0"].contains("pid"));

  driver_.set_probe(id("web/0"), true);
  clock_.advance(100ms);
  ASSERT_EQ(announced_.docs.count("t/web/0"), 1u);
  EXPECT_EQ(announced_.docs["t/web/0"]["pid"], replica("web/0").pid);
  EXPECT_EQ(announced_.docs["t/web/0"]["ports"]["http"], 8080);
  EXPECT_EQ(announced_.docs["t/web/0"]["address"], "127.100.0.1");

  driver_.exit(id("web/0"), exited(1));
  settle();
  EXPECT_EQ(announced_.docs.count("t/web/0"), 0u) << "an exited replica is withdrawn";
}

TEST_F(LifecycleTest, AReplicaWhoseAddressWasInUseIsToldToListenOnItsOwn) {
  apply("  s:\n    command: [app]\n    replicas: 2\n");
  driver_.output(id("s/1"), "OSError: [Errno 98] Address already in use\n");
  driver_.exit(id("s/1"), exited(1));
  settle();
  EXPECT_NE(replica("s/1").last_exit.find("listen on $ZEPPELIN_HOST (127.100.0.2"), std::string::npos)
      << replica("s/1").last_exit;
  // Only the run that said so gets the hint.
  driver_.exit(id("s/1"), exited(1));
  settle();
  EXPECT_EQ(replica("s/1").last_exit, "exited with code 1");
}

}  // namespace
}  // namespace zeppelin::supervisor
