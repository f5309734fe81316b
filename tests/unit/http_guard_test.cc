#include "common/http_guard.h"

#include <gtest/gtest.h>

namespace zeppelin {
namespace {

TEST(HostGuard, AcceptsLoopbackNamesTheListenAddressAndAllowedHosts) {
  const HostGuard guard("10.1.2.3:8080", {"zeppelin.internal", "Build-Box:9000"});
  for (const char* host : {"localhost", "localhost:8080", "LOCALHOST:1", "localhost.:8080", "127.0.0.1",
                           "127.0.0.1:8080", "[::1]", "[::1]:8080", "10.1.2.3:8080", "10.1.2.3",
                           "zeppelin.internal", "zeppelin.internal:443", "build-box:9000"}) {
    EXPECT_TRUE(guard.check_host(host).ok()) << host;
  }
}

TEST(HostGuard, RefusesForeignMissingAndMalformedHosts) {
  const HostGuard guard("127.0.0.1:8080", {"build-box:9000"});
  for (const char* host : {"", "evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.2:8080",
                           "build-box", "build-box:9001", "::1", "[::1", "localhost:80x", "localhost:99999",
                           "user@localhost", "local host", "0.0.0.0:8080"}) {
    auto s = guard.check_host(host);
    EXPECT_FALSE(s.ok()) << host;
  }
  auto s = guard.check_host("evil.example:8080");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("--allowed-host"), std::string::npos) << s.error().message;
}

TEST(HostGuard, WildcardListenAddressesAreNotNames) {
  EXPECT_FALSE(HostGuard("0.0.0.0:2379", {}).check_host("0.0.0.0:2379").ok());
  EXPECT_FALSE(HostGuard("[::]:2379", {}).check_host("[::]:2379").ok());
  EXPECT_TRUE(HostGuard("[::]:2379", {}).check_host("[::1]:2379").ok());
  EXPECT_TRUE(HostGuard("::1:2379", {}).check_host("[::1]:2379").ok());
}

TEST(HostGuard, OriginMustBeTheServerItself) {
  EXPECT_TRUE(HostGuard::check_origin("http://127.0.0.1:8080", "127.0.0.1:8080").ok());
  EXPECT_TRUE(HostGuard::check_origin("HTTP://LocalHost:8080", "localhost:8080").ok());
  EXPECT_TRUE(HostGuard::check_origin("http://localhost", "localhost:80").ok());
  EXPECT_TRUE(HostGuard::check_origin("https://box:443", "box").ok());
  EXPECT_TRUE(HostGuard::check_origin("http://[::1]:8080", "[::1]:8080").ok());
  for (const char* origin : {"null", "", "http://evil.example", "http://localhost:3000", "http://127.0.0.1",
                             "https://127.0.0.1:8080/", "file://", "ftp://127.0.0.1:8080",
                             "http://127.0.0.1:8080@evil.example", "chrome-extension://abc"}) {
    EXPECT_FALSE(HostGuard::check_origin(origin, "127.0.0.1:8080").ok()) << origin;
  }
}

TEST(MediaType, DropsParametersAndCase) {
  EXPECT_EQ(media_type("application/json"), "application/json");
  EXPECT_EQ(media_type(" Application/JSON ; charset=utf-8"), "application/json");
  EXPECT_EQ(media_type("text/plain;charset=UTF-8"), "text/plain");
  EXPECT_EQ(media_type(""), "");
}

TEST(ChangesState, OnlySafeMethodsAreExempt) {
  for (const char* m : {"GET", "HEAD", "OPTIONS"}) EXPECT_FALSE(changes_state(m)) << m;
  for (const char* m : {"POST", "PUT", "PATCH", "DELETE", "BLAH"}) EXPECT_TRUE(changes_state(m)) << m;
}

}  // namespace
}  // namespace zeppelin
