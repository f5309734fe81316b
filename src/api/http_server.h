// The HTTP/1.1 transport of the API (Boost.Beast on the event loop): unix
// socket by default, TCP when asked. It parses requests, bounds their size,
// and hands each to one Handler; JSON in, JSON (or an NDJSON stream, or a
// file) out. On TCP it first refuses what a web browser could send on a page's
// behalf (common/http_guard.h): a Host that is not this server's, a
// state-changing request from another Origin, or one whose body is not JSON.
// TCP is HTTPS only (api/tls.h); the unix socket is plain HTTP.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/http_guard.h"
#include "common/result.h"

namespace zeppelin {
class TlsContextSource;
}  // namespace zeppelin

namespace zeppelin::api {

struct Request {
  std::string method;
  std::string path;  // without the query string, percent-decoded
  std::map<std::string, std::string> query;
  std::string body;
  // TCP only: the client's address (IP, without the port). Empty on the unix socket.
  std::string peer;
  bool tcp = false;           // came over TCP (HTTPS), where a bearer token is required
  std::string authorization;  // the Authorization header, as sent
};

// The reply side of one request. Exactly one reply() or a stream.
class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual void reply(int status, const nlohmann::json& body) = 0;
  // Sends `body`, JSON already serialised. May be called from any thread (the
  // connection's own executor sends it), so that a large answer is built off
  // the event loop.
  virtual void reply_serialized(int status, std::string body) = 0;
  // Sends the file at `path` as an application/octet-stream body, with extra
  // `headers`. The file is open when this returns: the caller may remove it.
  virtual void reply_file(int status, const std::string& path, const std::map<std::string, std::string>& headers) = 0;
  // Streams newline-delimited JSON until end_stream() or the client leaves.
  virtual void begin_stream() = 0;
  virtual void stream(const nlohmann::json& item) = 0;
  virtual void end_stream() = 0;
  // Runs when the client disconnects during a stream.
  virtual void on_disconnect(std::function<void()> callback) = 0;
};

using Handler = std::function<void(const Request&, const std::shared_ptr<Exchange>&)>;

// The answer a connection gives by itself, without calling the handler: the
// request could not be read (400, 413), or was screened out (403, 415).
struct Refusal {
  int status = 400;
  nlohmann::json body;  // {"error": {"code", "message"}}
};

// What a connection makes of the first request in `wire`: the same parser,
// body limit and (when `guard` is given, as on TCP) screening, without a
// socket; the peer and `tcp` are left for the caller to set. Nothing when the
// bytes end before any request begins (the connection would just close).
// Connections read their socket instead; this serves tests and fuzzing.
using ParsedRequest = std::variant<std::monostate, Request, Refusal>;
ParsedRequest parse_request(std::string_view wire, const HostGuard* guard);

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // Listens on a unix socket at `path` (mode 0600), replacing a stale one.
  static Result<std::unique_ptr<HttpServer>> listen_unix(boost::asio::io_context& io, const std::string& path,
                                                         Handler handler);
  // Listens on "HOST:PORT" (port 0 picks one; see address()) for HTTPS:
  // each connection is a TLS handshake with the context `tls` has at that
  // moment (it must outlive the server). Requests must name the listen
  // address, a loopback name or one of `allowed_hosts` in Host.
  static Result<std::unique_ptr<HttpServer>> listen_tcp(boost::asio::io_context& io, const std::string& address,
                                                        Handler handler, TlsContextSource& tls,
                                                        std::vector<std::string> allowed_hosts = {});
  virtual std::string address() const = 0;
  virtual void close() = 0;
};

}  // namespace zeppelin::api
