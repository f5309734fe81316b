// The API's bearer tokens on a real EmbeddedStore, the roles table and the
// limit on failed attempts.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "api/routes.h"
#include "api/tokens.h"
#include "store/embedded_store.h"

namespace zeppelin::api {
namespace {

namespace fs = std::filesystem;

class TokensTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("zeppelin-tokens-" + std::to_string(::getpid()) + "-" +
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

  fs::path dir_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(TokensTest, OnlyTheHashIsStoredAndTheSecretAuthenticates) {
  std::int64_t now = 1000;
  Tokens tokens(*store_, [&] { return now; });
  auto secret = tokens.create("ci", Role::kOperator, std::nullopt);
  ASSERT_TRUE(secret.ok()) << secret.error().message;
  EXPECT_TRUE(secret->starts_with("zpt_"));
  EXPECT_EQ(secret->size(), 4u + 43u);  // 256 bits in base64url

  store::RangeRequest range;
  range.key = kTokensPrefix;
  range.range_end = store::prefix_end(kTokensPrefix);
  auto stored = store_->range(range);
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->kvs.size(), 1u);
  EXPECT_EQ(stored->kvs[0].key, "/zeppelin/tokens/ci");
  EXPECT_EQ(stored->kvs[0].value.find(secret->substr(4)), std::string::npos);

  std::string why;
  auto who = tokens.authenticate(*secret, why);
  ASSERT_TRUE(who.has_value()) << why;
  EXPECT_EQ(who->name, "ci");
  EXPECT_EQ(who->role, Role::kOperator);
  EXPECT_FALSE(tokens.authenticate(*secret + "x", why).has_value());
  EXPECT_FALSE(tokens.authenticate("", why).has_value());

  EXPECT_EQ(tokens.create("ci", Role::kAdmin, std::nullopt).error().code, Errc::kAlreadyExists);
  EXPECT_EQ(tokens.create("Not A Name", Role::kAdmin, std::nullopt).error().code, Errc::kInvalidArgument);
}

TEST_F(TokensTest, AnInstalledSecretAuthenticatesAndIsReplacedOnlyWhenItChanges) {
  std::int64_t now = 1000;
  Tokens tokens(*store_, [&] { return now; });
  const std::string first(40, 'a');
  ASSERT_TRUE(tokens.install("bootstrap", Role::kAdmin, first).ok());
  std::string why;
  auto who = tokens.authenticate(first, why);
  ASSERT_TRUE(who.has_value()) << why;
  EXPECT_EQ(who->role, Role::kAdmin);
  EXPECT_EQ(who->created, 1000);
  // The same secret again (a restart) leaves the record as it was.
  now = 2000;
  ASSERT_TRUE(tokens.install("bootstrap", Role::kAdmin, first).ok());
  EXPECT_EQ(tokens.authenticate(first, why)->created, 1000);
  // A rotated secret replaces the old one, which stops working.
  const std::string second(40, 'b');
  ASSERT_TRUE(tokens.install("bootstrap", Role::kAdmin, second).ok());
  EXPECT_FALSE(tokens.authenticate(first, why).has_value());
  EXPECT_EQ(tokens.authenticate(second, why)->created, 2000);
  // Too short to be unguessable, or a bad name: refused, and the secret is not in the message.
  auto short_one = tokens.install("bootstrap", Role::kAdmin, "hunter2");
  ASSERT_FALSE(short_one.ok());
  EXPECT_EQ(short_one.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(short_one.error().message.find("hunter2"), std::string::npos);
  EXPECT_TRUE(tokens.authenticate(second, why).has_value()) << "a refused install changes nothing";
  EXPECT_EQ(tokens.install("Boot Strap", Role::kAdmin, second).error().code, Errc::kInvalidArgument);
}

TEST_F(TokensTest, ExpiredAndRevokedTokensAreRefused) {
  std::int64_t now = 1000;
  Tokens tokens(*store_, [&] { return now; });
  auto short_lived = tokens.create("short", Role::kViewer, std::chrono::seconds(5));
  auto other = tokens.create("other", Role::kAdmin, std::nullopt);
  ASSERT_TRUE(short_lived.ok() && other.ok());
  std::string why;
  EXPECT_TRUE(tokens.authenticate(*short_lived, why).has_value());
  now += 5;
  EXPECT_FALSE(tokens.authenticate(*short_lived, why).has_value());
  EXPECT_EQ(why, "token \"short\" expired");

  ASSERT_TRUE(tokens.revoke("other").ok());
  EXPECT_FALSE(tokens.authenticate(*other, why).has_value());
  EXPECT_EQ(tokens.revoke("other").error().code, Errc::kNotFound);
  auto list = tokens.list();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "short");
  EXPECT_EQ((*list)[0].expires, 1005);
}

// Anyone with the store's root may write under /zeppelin/tokens/: a record
// with fields of the wrong type is skipped (it used to throw out of the request).
TEST_F(TokensTest, ARecordWithFieldsOfTheWrongTypeIsSkipped) {
  Tokens tokens(*store_);
  auto secret = tokens.create("ci", Role::kViewer, std::nullopt);
  ASSERT_TRUE(secret.ok()) << secret.error().message;
  const std::string hash(64, 'a');
  for (const auto& [name, value] : std::map<std::string, std::string>{
           {"role-number", R"({"role": 2, "sha256": ")" + hash + "\"}"},
           {"created-string", R"({"role": "admin", "created": "today", "sha256": ")" + hash + "\"}"},
           {"hash-array", R"({"role": "admin", "sha256": [1]})"}}) {
    store::PutRequest put;
    put.key = std::string(kTokensPrefix) + name;
    put.value = value;
    ASSERT_TRUE(store_->put(put).ok());
  }
  std::string why;
  EXPECT_TRUE(tokens.authenticate(*secret, why).has_value()) << why;
  auto list = tokens.list();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].name, "ci");
}

TEST(RolesTest, EveryRouteHasItsLeastRole) {
  EXPECT_EQ(required_role("GET", "/v1/version"), Role::kViewer);
  EXPECT_EQ(required_role("GET", "/v1/systems"), Role::kViewer);
  EXPECT_EQ(required_role("GET", "/v1/systems/shop"), Role::kViewer);
  EXPECT_EQ(required_role("GET", "/v1/systems/shop/logs"), Role::kViewer);
  EXPECT_EQ(required_role("GET", "/v1/systems/shop/wait"), Role::kViewer);
  EXPECT_EQ(required_role("GET", "/v1/replicas"), Role::kViewer);
  EXPECT_EQ(required_role("GET", "/v1/etcd"), Role::kViewer);
  for (const char* action : {"start", "stop", "scale", "restart"}) {
    EXPECT_EQ(required_role("POST", std::string("/v1/systems/shop/") + action), Role::kOperator) << action;
  }
  EXPECT_EQ(required_role("POST", "/v1/systems"), Role::kAdmin);
  EXPECT_EQ(required_role("DELETE", "/v1/systems/shop"), Role::kAdmin);
  EXPECT_EQ(required_role("POST", "/v1/store/snapshot"), Role::kAdmin);
  EXPECT_EQ(required_role("POST", "/v1/shutdown"), Role::kAdmin);
  EXPECT_EQ(required_role("POST", "/v1/tokens"), Role::kAdmin);
  EXPECT_EQ(required_role("GET", "/v1/tokens"), Role::kAdmin);
  EXPECT_EQ(required_role("DELETE", "/v1/tokens/ci"), Role::kAdmin);
  // What the table does not name needs admin: other methods, deeper or empty segments.
  EXPECT_EQ(required_role("POST", "/v1/version"), Role::kAdmin);
  EXPECT_EQ(required_role("GET", "/v1/systems/shop/logs/more"), Role::kAdmin);
  EXPECT_EQ(required_role("GET", "/v1/systems//logs"), Role::kAdmin);
  EXPECT_EQ(required_role("POST", "/v1/systems/shop/exec"), Role::kAdmin);
}

TEST(FailureLimiterTest, TenFailuresInAMinuteBlockThatAddressForAMinute) {
  FailureLimiter limiter;
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 9; ++i) EXPECT_FALSE(limiter.fail("10.0.0.1", t0 + std::chrono::seconds(i)));
  EXPECT_FALSE(limiter.blocked("10.0.0.1", t0 + std::chrono::seconds(9)));
  EXPECT_TRUE(limiter.fail("10.0.0.1", t0 + std::chrono::seconds(9)));
  EXPECT_TRUE(limiter.blocked("10.0.0.1", t0 + std::chrono::seconds(10)));
  EXPECT_FALSE(limiter.blocked("10.0.0.2", t0 + std::chrono::seconds(10)));
  EXPECT_TRUE(limiter.blocked("10.0.0.1", t0 + std::chrono::seconds(68)));
  EXPECT_FALSE(limiter.blocked("10.0.0.1", t0 + std::chrono::seconds(69)));
  // Failures spread over more than a minute never add up to a block.
  FailureLimiter slow;
  for (int i = 0; i < 30; ++i) EXPECT_FALSE(slow.fail("10.0.0.3", t0 + std::chrono::seconds(7 * i)));
}

}  // namespace
}  // namespace zeppelin::api
