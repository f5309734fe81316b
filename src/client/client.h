// A synchronous client of Zeppelin's HTTP/JSON API, as used by the CLI: over
// the local server's unix socket, or over HTTPS to a remote one (`--server`)
// with a bearer token. Each call opens its own connection, so calls may be
// made from any thread.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/result.h"

namespace zeppelin::client {

struct Response {
  int status = 0;
  nlohmann::json body;  // download(): only for an error
  std::map<std::string, std::string> headers;  // download() only; names in lowercase
  bool ok() const { return status >= 200 && status < 300; }
  // The API's error message, or a generic one.
  std::string error_message() const;
};

// A server reached over HTTPS.
struct Remote {
  std::string host;    // a name or an IP address (without brackets)
  std::string port;
  std::string cacert;  // PEM file of the CAs to trust; empty: the system's default trust store
  std::string token;   // sent as "Authorization: Bearer TOKEN"; never logged or shown
};

// Parses "https://HOST:PORT" (an IPv6 HOST in brackets; the port defaults to 443).
Result<Remote> parse_server_url(const std::string& url);

class Client {
 public:
  explicit Client(std::string socket_path) : socket_path_(std::move(socket_path)) {}
  explicit Client(Remote remote) : remote_(std::move(remote)) {}

  // True when a server answers on the socket (remote: completes a TLS handshake).
  bool reachable() const;
  Result<Response> call(const std::string& method, const std::string& target,
                        const nlohmann::json& body = nullptr) const;
  // Sends a request whose answer is an NDJSON stream; calls `on_item` for each
  // item until the stream ends or `on_item` returns false. Non-2xx answers
  // come back as a Response with the error.
  Result<Response> stream(const std::string& method, const std::string& target, const nlohmann::json& body,
                          const std::function<bool(const nlohmann::json&)>& on_item) const;

  // Sends a request whose answer is a file: a 2xx answer's body is written to
  // the descriptor `out` as it arrives; other answers come back as a Response
  // with the error. A body cut short is an error.
  Result<Response> download(const std::string& method, const std::string& target, int out) const;

  const std::string& socket_path() const { return socket_path_; }
  bool is_remote() const { return remote_.has_value(); }

 private:
  std::string socket_path_;
  std::optional<Remote> remote_;
};

// Percent-encodes a query parameter value.
std::string url_encode(const std::string& value);

}  // namespace zeppelin::client
