// The reconciler with the real process driver and real processes, driven by
// running the event loop until a condition holds (no sleeps).
#include "supervisor/supervisor.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <csignal>
#include <filesystem>
#include <set>

#include "common/fs_util.h"
#include "runtime/process/process_driver.h"
#include "state/state_store.h"
#include "test_waits.h"

namespace zeppelin::supervisor {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// An in-memory issuer, as the server's over the etcd API's users: it knows
// users zeppelin-replica (the default) and app, and which tokens are live.
class LiveTokens final : public ReplicaCredentials {
 public:
  std::set<std::string> live;
  bool enabled = true;

  Result<std::unique_ptr<ReplicaCredential>> issue(const std::string& user, const std::string&) override {
    if (!enabled) return std::unique_ptr<ReplicaCredential>();
    if (user != kReplicaStoreUser && user != "app") return make_error(Errc::kNotFound, "no user " + user);
    auto c = std::make_unique<Token>(*this, user, "token-" + std::to_string(++issued_));
    live.insert(c->token());
    return std::unique_ptr<ReplicaCredential>(std::move(c));
  }

 private:
  struct Token final : ReplicaCredential {
    Token(LiveTokens& owner, std::string user, std::string token)
        : owner_(owner), user_(std::move(user)), token_(std::move(token)) {}
    ~Token() override { owner_.live.erase(token_); }
    const std::string& user() const override { return user_; }
    const std::string& token() const override { return token_; }
    LiveTokens& owner_;
    std::string user_;
    std::string token_;
  };
  int issued_ = 0;

 public:
  void retain(const std::function<bool(const std::string&)>&) override {}
};

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = fs::temp_directory_path() / ("zeppelin-sup-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(home_);
    fs::create_directories(home_);
    driver_ = std::make_unique<runtime::ProcessDriver>(io_, home_.string());
    store_ = std::make_unique<state::FileStateStore>((home_ / "state.json").string());
    SupervisorOptions options;
    options.home = home_.string();
    options.backoff_base = 20ms;
    sup_ = std::make_unique<Supervisor>(io_, *driver_, *store_, options);
  }

  void TearDown() override {
    bool done = false;
    sup_->shutdown([&] { done = true; });
    run_until([&] { return done; });
    fs::remove_all(home_);
  }

  template <typename Pred>
  bool run_until(Pred pred, std::chrono::milliseconds limit = 10s) {
    return testing::run_io_until(io_, pred, limit);
  }

  void apply(const std::string& spec_text) {
    state::SystemRecord r;
    r.spec_file = (home_ / "zeppelin.yaml").string();
    r.spec_text = spec_text;
    r.caller_env = {{"PATH", "/usr/bin:/bin"}};
    auto applied = sup_->apply(r);
    ASSERT_TRUE(applied.ok()) << applied.error().message;
  }

  ReplicaStatus replica(int ordinal = 0, const std::string& service = "s") {
    auto rows = sup_->replicas(std::string("t"));
    for (const auto& r : *rows) {
      if (r.service == service && r.replica == ordinal) return r;
    }
    return {};
  }

  boost::asio::io_context io_;
  fs::path home_;
  std::unique_ptr<runtime::ProcessDriver> driver_;
  std::unique_ptr<state::FileStateStore> store_;
  LiveTokens tokens_;  // outlives sup_
  std::unique_ptr<Supervisor> sup_;
};

TEST_F(SupervisorTest, CrashLoopBacksOffExponentially) {
  apply("name: t\nservices:\n  s:\n    command: [\"false\"]\n");
  std::vector<std::string> details;
  run_until([&] {
    auto r = replica();
    if (r.state == ReplicaState::kBackoff && (details.empty() || details.back() != r.detail)) details.push_back(r.detail);
    return r.restarts >= 5;
  });
  // First restart is immediate; later ones wait base * 2^(n-1), +-20% jitter.
  ASSERT_GE(details.size(), 3u);
  auto delay_of = [](const std::string& d) {
    const auto at = d.find("restarting in ");
    return std::stoi(d.substr(at + 14));
  };
  EXPECT_NEAR(delay_of(details[0]), 20, 4);
  EXPECT_NEAR(delay_of(details[1]), 40, 8);
  EXPECT_NEAR(delay_of(details[2]), 80, 16);
  EXPECT_NE(details[0].find("exited with code 1"), std::string::npos) << details[0];
}

TEST_F(SupervisorTest, RestartNeverLeavesAFailedReplica) {
  apply("name: t\nservices:\n  s:\n    command: 'exit 3'\n    restart: never\n");
  run_until([&] { return replica().state == ReplicaState::kFailed; });
  EXPECT_EQ(replica().last_exit, "exited with code 3");
  EXPECT_EQ(replica().restarts, 0);
}

TEST_F(SupervisorTest, OnFailureDoesNotRestartACleanExit) {
  apply("name: t\nservices:\n  s:\n    command: 'exit 0'\n    restart: on-failure\n");
  run_until([&] { return !replica().last_exit.empty(); });
  EXPECT_EQ(replica().state, ReplicaState::kStopped);
  EXPECT_EQ(replica().restarts, 0);
}

TEST_F(SupervisorTest, StopCompletesOnlyAfterEveryProcessExited) {
  apply("name: t\nservices:\n  s:\n    command: [\"sleep\", \"100\"]\n    replicas: 3\n");
  run_until([&] { return replica(2).state == ReplicaState::kRunning; });
  std::vector<int> pids;
  for (int i = 0; i < 3; ++i) pids.push_back(replica(i).pid);
  bool stopped = false;
  ASSERT_TRUE(sup_->stop("t", [&] { stopped = true; }).ok());
  run_until([&] { return stopped; });
  for (int pid : pids) EXPECT_FALSE(fs::exists("/proc/" + std::to_string(pid))) << pid;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(replica(i).state, ReplicaState::kStopped);
  // Not shown as a failure.
  EXPECT_EQ(replica(0).last_exit, "stopped as asked: killed by signal 15 (Terminated)");
}

TEST_F(SupervisorTest, StopGraceEndsWithSigkill) {
  bool trapped = false;
  LogFilter filter;
  filter.system = "t";
  sup_->logs().subscribe(filter, [&](const LogLine& line) { trapped = trapped || line.text == "trapped"; });
  apply("name: t\nservices:\n  s:\n    command: 'trap \"\" TERM; echo trapped; sleep 100 & wait'\n    stop_grace: 200ms\n");
  run_until([&] { return trapped; });  // SIGTERM is ignored from here on
  bool stopped = false;
  ASSERT_TRUE(sup_->stop("t", [&] { stopped = true; }).ok());
  run_until([&] { return stopped; });
  EXPECT_EQ(replica().last_exit, "stopped as asked: killed by signal 9 (Killed)");
}

TEST_F(SupervisorTest, ScaleDownStopsHighestOrdinals) {
  apply("name: t\nservices:\n  s:\n    command: [\"sleep\", \"100\"]\n    replicas: 3\n");
  run_until([&] { return replica(2).state == ReplicaState::kRunning; });
  const int pid0 = replica(0).pid;
  ASSERT_TRUE(sup_->scale("t", "s", 1).ok());
  run_until([&] { return sup_->replicas(std::string("t"))->size() == 1; });
  EXPECT_EQ(replica(0).pid, pid0);
  EXPECT_FALSE(sup_->scale("t", "nope", 1).ok());
}

TEST_F(SupervisorTest, ReplicaTokensLiveExactlyAsLongAsTheirRun) {
  LiveTokens& tokens = tokens_;
  SupervisorOptions options;
  options.home = home_.string();
  options.backoff_base = 20ms;
  options.etcd_endpoints = {"http://127.0.0.1:2379"};
  options.credentials = &tokens;
  sup_ = std::make_unique<Supervisor>(io_, *driver_, *store_, options);
  const std::string out = (home_ / "env.").string();
  apply(
      "name: t\nstore: {user: app}\nservices:\n  s:\n    replicas: 2\n    command: 'printf %s \"$ZEPPELIN_ETCD_USER "
      "$ZEPPELIN_ETCD_TOKEN\" > " +
      out + "$ZEPPELIN_REPLICA.tmp && mv " + out + "$ZEPPELIN_REPLICA.tmp " + out +
      "$ZEPPELIN_REPLICA; exec sleep 100'\n");
  auto seen = [&](int ordinal) {
    auto text = read_file(out + std::to_string(ordinal));
    return text ? *text : std::string();
  };
  run_until([&] { return !seen(0).empty() && !seen(1).empty(); });
  EXPECT_EQ(tokens.live, (std::set<std::string>{"token-1", "token-2"}));
  EXPECT_EQ(seen(0).substr(0, 4), "app ");
  EXPECT_TRUE(tokens.live.count(seen(1).substr(4))) << seen(1);

  // A crash ends the run's token; the restart gets a new one.
  const std::string before = seen(1);
  fs::remove(out + "1");
  ::kill(replica(1).pid, SIGKILL);
  run_until([&] { return !seen(1).empty(); });
  EXPECT_NE(seen(1), before);
  EXPECT_EQ(tokens.live.size(), 2u);
  EXPECT_FALSE(tokens.live.count(before.substr(4)));
  EXPECT_TRUE(tokens.live.count(seen(1).substr(4)));

  ASSERT_TRUE(sup_->scale("t", "s", 1).ok());
  run_until([&] { return sup_->replicas(std::string("t"))->size() == 1; });
  EXPECT_EQ(tokens.live, (std::set<std::string>{seen(0).substr(4)}));
  bool stopped = false;
  ASSERT_TRUE(sup_->stop("t", [&] { stopped = true; }).ok());
  run_until([&] { return stopped; });
  EXPECT_TRUE(tokens.live.empty());
}

TEST_F(SupervisorTest, AReplicaWithoutItsStoreUserDoesNotStart) {
  LiveTokens& tokens = tokens_;
  SupervisorOptions options;
  options.home = home_.string();
  options.etcd_endpoints = {"http://127.0.0.1:2379"};
  options.credentials = &tokens;
  sup_ = std::make_unique<Supervisor>(io_, *driver_, *store_, options);
  apply("name: t\nstore: {user: ghost}\nservices:\n  s:\n    restart: never\n    command: [\"sleep\", \"100\"]\n");
  run_until([&] { return replica().state == ReplicaState::kFailed; });
  EXPECT_EQ(replica().detail, "no store token for the replica: no user ghost");
  EXPECT_EQ(replica().pid, 0);
  EXPECT_TRUE(tokens.live.empty());
}

TEST_F(SupervisorTest, InvalidSpecOrUnknownVariableIsRejectedBeforeAnythingStarts) {
  state::SystemRecord r;
  r.spec_file = (home_ / "zeppelin.yaml").string();
  r.spec_text = "name: t\nservices:\n  s:\n    command: [\"echo\", \"${NOT_SET_ANYWHERE}\"]\n";
  auto applied = sup_->apply(r);
  ASSERT_FALSE(applied.ok());
  EXPECT_NE(applied.error().message.find("${NOT_SET_ANYWHERE}"), std::string::npos);
  EXPECT_TRUE(sup_->systems().empty());
}

}  // namespace
}  // namespace zeppelin::supervisor
