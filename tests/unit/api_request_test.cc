// The connection's reading of a request from bytes (parse_request): what the
// handler gets, and what the connection answers by itself.
#include <gtest/gtest.h>

#include "api/http_server.h"

namespace zeppelin::api {
namespace {

TEST(ParseRequestTest, AReadRequestHasItsDecodedPathQueryBodyAndToken) {
  const std::string wire =
      "POST /v1/systems/shop%2Dweb/scale?service=web&x=a%20b+c HTTP/1.1\r\nHost: localhost\r\n"
      "Authorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
  auto parsed = parse_request(wire, nullptr);
  auto* req = std::get_if<Request>(&parsed);
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(req->method, "POST");
  EXPECT_EQ(req->path, "/v1/systems/shop-web/scale");
  EXPECT_EQ(req->query.at("service"), "web");
  EXPECT_EQ(req->query.at("x"), "a b c");
  EXPECT_EQ(req->body, "{}");
  EXPECT_EQ(req->authorization, "Bearer t");
}

TEST(ParseRequestTest, BytesEndingBeforeARequestAreNothingOrABadRequest) {
  EXPECT_TRUE(std::holds_alternative<std::monostate>(parse_request("", nullptr)));
  auto partial = parse_request("GET /v1/vers", nullptr);
  ASSERT_TRUE(std::holds_alternative<Refusal>(partial));
  EXPECT_EQ(std::get<Refusal>(partial).status, 400);
}

TEST(ParseRequestTest, ABodyOverTheLimitIs413) {
  auto parsed = parse_request("POST /v1/systems HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999\r\n\r\n{}",
                              nullptr);
  ASSERT_TRUE(std::holds_alternative<Refusal>(parsed));
  EXPECT_EQ(std::get<Refusal>(parsed).status, 413);
  EXPECT_EQ(std::get<Refusal>(parsed).body["error"]["code"], "too_large");
}

TEST(ParseRequestTest, OverTcpAForeignHostOrAFormBodyIsScreenedOut) {
  const HostGuard guard("127.0.0.1:7440", {});
  auto foreign = parse_request("GET /v1/version HTTP/1.1\r\nHost: evil.example\r\n\r\n", &guard);
  ASSERT_TRUE(std::holds_alternative<Refusal>(foreign));
  EXPECT_EQ(std::get<Refusal>(foreign).status, 403);
  auto form = parse_request(
      "POST /v1/shutdown HTTP/1.1\r\nHost: 127.0.0.1:7440\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
      &guard);
  ASSERT_TRUE(std::holds_alternative<Refusal>(form));
  EXPECT_EQ(std::get<Refusal>(form).status, 415);
  EXPECT_TRUE(std::holds_alternative<Request>(
      parse_request("GET /v1/version HTTP/1.1\r\nHost: localhost:7440\r\n\r\n", &guard)));
}

}  // namespace
}  // namespace zeppelin::api
