// The limits on a system's size and on the server's replicas, through every
// door: apply (the API), scale, and records read back from the state store.
// The event loop never runs: nothing here starts a replica.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>

#include "supervisor/supervisor.h"

namespace zeppelin::supervisor {
namespace {

namespace fs = std::filesystem;

// Process services are supported; starting one would be a test failure.
class NoStartDriver final : public runtime::Driver {
 public:
  Status supports(const spec::Service&) override { return ok_status(); }
  Result<std::unique_ptr<runtime::Instance>> start(const runtime::LaunchSpec&, runtime::InstanceEvents) override {
    ADD_FAILURE() << "a replica was started";
    return make_error(Errc::kInternal, "not in this test");
  }
  int reap_leftovers(const std::function<bool(const std::string&)>&) override { return 0; }
  bool adoptable(const std::string&) const override { return false; }
};

using state::MemoryStateStore;

std::string spec_text(const std::string& name, int services, int replicas) {
  std::string text = "name: " + name + "\nservices:\n";
  for (int i = 0; i < services; ++i) {
    text += "  s" + std::to_string(i) + ":\n    command: [\"true\"]\n    replicas: " + std::to_string(replicas) + "\n";
  }
  return text;
}

state::SystemRecord record(const std::string& name, int services, int replicas) {
  state::SystemRecord r;
  r.spec_file = "/srv/" + name + "/zeppelin.yaml";
  r.spec_text = spec_text(name, services, replicas);
  return r;
}

class SupervisorLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override { options_.home = (fs::temp_directory_path() / "zeppelin-limits-never-written").string(); }

  Supervisor& supervisor() {
    if (!sup_) {
      sup_ = std::make_unique<Supervisor>(io_, driver_, state_, options_);
      EXPECT_TRUE(sup_->recover().ok());
    }
    return *sup_;
  }

  boost::asio::io_context io_;
  NoStartDriver driver_;
  MemoryStateStore state_;
  SupervisorOptions options_;
  std::unique_ptr<Supervisor> sup_;
};

TEST_F(SupervisorLimitsTest, AMillionReplicasAreRefusedAtTheServiceThatPassesTheLimit) {
  auto applied = supervisor().apply(record("big", 100, 10000));
  ASSERT_FALSE(applied.ok());
  EXPECT_EQ(applied.error().code, Errc::kInvalidArgument);
  // The second service's replicas pass 10,000 (line 8 of the spec).
  EXPECT_NE(applied.error().message.find("/srv/big/zeppelin.yaml:8:15: the system wants 1000000 replicas in total, "
                                         "over the limit of 10000 per system (zeppelin server "
                                         "--max-replicas-per-system)"),
            std::string::npos)
      << applied.error().message;
  EXPECT_TRUE(supervisor().systems().empty());
}

TEST_F(SupervisorLimitsTest, ASpecOverTheSizeLimitIsTooLarge) {
  options_.limits.max_spec_bytes = 1024;
  auto r = record("big", 1, 1);
  r.spec_text += "# " + std::string(1100, 'x') + "\n";
  auto applied = supervisor().apply(r);
  ASSERT_FALSE(applied.ok());
  EXPECT_EQ(applied.error().code, Errc::kTooLarge);
  EXPECT_NE(applied.error().message.find("over the limit of 1024 (zeppelin server --max-spec-bytes)"), std::string::npos)
      << applied.error().message;
}

TEST_F(SupervisorLimitsTest, TooManyServicesAreRefusedBeforeTheyAreRead) {
  options_.limits.max_services = 3;
  auto applied = supervisor().apply(record("wide", 4, 1));
  ASSERT_FALSE(applied.ok());
  EXPECT_NE(applied.error().message.find(
                "zeppelin.yaml:3:3: the system has 4 services, over the limit of 3 per system (zeppelin server "
                "--max-services-per-system)"),
            std::string::npos)
      << applied.error().message;
}

TEST_F(SupervisorLimitsTest, TheServerLimitCountsEverySystem) {
  options_.max_replicas = 5;
  ASSERT_TRUE(supervisor().apply(record("a", 1, 3)).ok());
  auto applied = supervisor().apply(record("b", 1, 3));
  ASSERT_FALSE(applied.ok());
  EXPECT_NE(applied.error().message.find("system b wants 3 replicas, but this server runs at most 5 and the other "
                                         "systems want 3"),
            std::string::npos)
      << applied.error().message;
  EXPECT_NE(applied.error().message.find("--max-replicas"), std::string::npos);
  // Re-applying a system counts it once.
  EXPECT_TRUE(supervisor().apply(record("a", 1, 5)).ok());
}

TEST_F(SupervisorLimitsTest, ScaleIsHeldToBothLimits) {
  options_.limits.max_replicas_per_system = 4;
  options_.max_replicas = 6;
  ASSERT_TRUE(supervisor().apply(record("a", 2, 1)).ok());
  auto over_system = supervisor().scale("a", "s0", 4);
  ASSERT_FALSE(over_system.ok());
  EXPECT_NE(over_system.error().message.find("system a wants 5 replicas, over the limit of 4 per system"),
            std::string::npos)
      << over_system.error().message;
  ASSERT_TRUE(supervisor().scale("a", "s0", 3).ok());
  ASSERT_TRUE(supervisor().apply(record("b", 1, 2)).ok());
  EXPECT_FALSE(supervisor().scale("b", "s0", 3).ok());  // 4 + 3 > 6
  EXPECT_EQ(supervisor().systems().size(), 2u);
  int wanted = 0;
  for (const auto& s : supervisor().systems()) wanted += s.replicas;
  EXPECT_EQ(wanted, 6);
}

TEST_F(SupervisorLimitsTest, ARecordInTheStoreOverTheLimitsIsNotRestored) {
  options_.limits.max_replicas_per_system = 100;
  auto scaled = record("scaled", 1, 1);
  scaled.name = "scaled";
  scaled.scale["s0"] = 101;  // written by someone else, past the limit
  auto fine = record("fine", 1, 2);
  fine.name = "fine";
  state_.systems = {scaled, fine};
  ASSERT_EQ(supervisor().systems().size(), 1u);
  EXPECT_EQ(supervisor().systems()[0].name, "fine");
}

}  // namespace
}  // namespace zeppelin::supervisor
