#include "client/client.h"

#include "common/url.h"

#include <unistd.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <limits>

namespace zeppelin::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using local = asio::local::stream_protocol;
using tcp = asio::ip::tcp;
using TlsStream = ssl::stream<tcp::socket>;
using nlohmann::json;

std::string Response::error_message() const {
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    return body["error"].value("message", "request failed");
  }
  return "request failed with HTTP " + std::to_string(status);
}

std::string url_encode(const std::string& value) { return percent_encode(value, "/"); }

Result<Remote> parse_server_url(const std::string& url) {
  constexpr std::string_view scheme = "https://";
  if (!url.starts_with(scheme)) {
    return make_error(Errc::kInvalidArgument, "the server URL must be https://HOST:PORT, got \"" + url + "\"");
  }
  std::string rest = url.substr(scheme.size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  Remote remote;
  remote.port = "443";
  if (rest.starts_with("[")) {
    const auto close = rest.find(']');
    if (close == std::string::npos) return make_error(Errc::kInvalidArgument, "invalid server URL " + url);
    remote.host = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return make_error(Errc::kInvalidArgument, "invalid server URL " + url);
      remote.port = rest.substr(1);
    }
  } else {
    const auto colon = rest.find(':');
    remote.host = rest.substr(0, colon);
    if (colon != std::string::npos) remote.port = rest.substr(colon + 1);
  }
  if (remote.host.empty() || remote.port.empty() || remote.host.find('/') != std::string::npos ||
      !std::all_of(remote.port.begin(), remote.port.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return make_error(Errc::kInvalidArgument, "the server URL must be https://HOST:PORT, got \"" + url + "\"");
  }
  return remote;
}

namespace {

std::string describe(const Remote& r) {
  return "https://" + (r.host.find(':') != std::string::npos ? "[" + r.host + "]" : r.host) + ":" + r.port;
}

// One connection to the server: the unix socket, or TLS over TCP.
struct Connection {
  asio::io_context io;
  std::optional<local::socket> unix_socket;
  std::optional<ssl::context> context;
  std::optional<TlsStream> tls;

  // Calls `f` with the stream, whichever it is.
  template <typename F>
  auto with(F&& f) {
    if (tls) return f(*tls);
    return f(*unix_socket);
  }
};

Status connect_unix(Connection& c, const std::string& path) {
  c.unix_socket.emplace(c.io);
  boost::system::error_code ec;
  c.unix_socket->connect(local::endpoint(path), ec);
  if (ec) return make_error(Errc::kUnavailable, "cannot reach the zeppelin server at " + path + ": " + ec.message());
  return ok_status();
}

Status connect_tls(Connection& c, const Remote& remote) {
  const std::string where = describe(remote);
  c.context.emplace(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(c.context->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  if (!remote.cacert.empty()) {
    c.context->load_verify_file(remote.cacert, ec);
    if (ec) return make_error(Errc::kInvalidArgument, "cannot read the CA file " + remote.cacert + ": " + ec.message());
  } else {
    c.context->set_default_verify_paths(ec);
  }
  c.context->set_verify_mode(ssl::verify_peer);
  c.tls.emplace(c.io, *c.context);
  SSL* handle = c.tls->native_handle();
  // The certificate must name the host the client asked for.
  boost::system::error_code ip_ec;
  asio::ip::make_address(remote.host, ip_ec);
  if (ip_ec) {
    SSL_set_tlsext_host_name(handle, remote.host.c_str());
    SSL_set1_host(handle, remote.host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), remote.host.c_str());
  }
  tcp::resolver resolver(c.io);
  const auto endpoints = resolver.resolve(remote.host, remote.port, ec);
  if (ec) return make_error(Errc::kUnavailable, "cannot resolve " + remote.host + ": " + ec.message());
  asio::connect(c.tls->lowest_layer(), endpoints, ec);
  if (ec) return make_error(Errc::kUnavailable, "cannot reach the zeppelin server at " + where + ": " + ec.message());
  c.tls->handshake(ssl::stream_base::client, ec);
  if (ec) {
    std::string why = ec.message();
    if (const long verify = SSL_get_verify_result(handle); verify != X509_V_OK) {
      why = X509_verify_cert_error_string(verify);
    }
    return make_error(Errc::kUnavailable,
                      "TLS with the zeppelin server at " + where + " failed: " + why +
                          (remote.cacert.empty() ? " (give its CA with --cacert or ZEPPELIN_CACERT)" : ""));
  }
  return ok_status();
}

http::request<http::string_body> make_request(const std::optional<Remote>& remote, const std::string& method,
                                              const std::string& target, const json& body) {
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  if (remote) {
    const std::string host = remote->host.find(':') != std::string::npos ? "[" + remote->host + "]" : remote->host;
    req.set(http::field::host, host + ":" + remote->port);
    if (!remote->token.empty()) req.set(http::field::authorization, "Bearer " + remote->token);
  } else {
    req.set(http::field::host, "zeppelin");
  }
  req.set(http::field::user_agent, "zeppelin-cli");
  req.keep_alive(false);
  if (!body.is_null()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body.dump();
  }
  req.prepare_payload();
  return req;
}

Status connect(Connection& c, const std::string& path, const std::optional<Remote>& remote) {
  return remote ? connect_tls(c, *remote) : connect_unix(c, path);
}

// Connects and sends one request; the caller reads the answer.
Status send_request(Connection& c, const std::string& path, const std::optional<Remote>& remote,
                    const std::string& method, const std::string& target, const json& body) {
  if (auto s = connect(c, path, remote); !s) return s;
  boost::system::error_code ec;
  c.with([&](auto& stream) { http::write(stream, make_request(remote, method, target, body), ec); });
  if (ec) return make_error(Errc::kUnavailable, "the zeppelin server closed the connection: " + ec.message());
  return ok_status();
}

// The end of a body that runs to the end of the connection.
bool is_end(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == http::error::partial_message ||
         ec == ssl::error::stream_truncated;
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

json parse_json(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json(text) : j;
}

}  // namespace

namespace {

// The status and headers (names in lower case) of an answer whose body the
// caller then reads in chunks through `parser`.
template <typename Socket>
Response read_head(Socket& socket, beast::flat_buffer& buffer, http::response_parser<http::buffer_body>& parser) {
  // Not boost::none: Boost 1.74 then rejects every answer with a Content-Length.
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  http::read_header(socket, buffer, parser);
  Response head;
  head.status = static_cast<int>(parser.get().result_int());
  for (const auto& field : parser.get()) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    head.headers[name] = std::string(field.value());
  }
  return head;
}

}  // namespace

bool Client::reachable() const {
  Connection c;
  return connect(c, socket_path_, remote_).ok();
}

Result<Response> Client::call(const std::string& method, const std::string& target, const json& body) const {
  Connection c;
  if (auto s = send_request(c, socket_path_, remote_, method, target, body); !s) return s.error();
  return c.with([&](auto& socket) -> Result<Response> {
    try {
      beast::flat_buffer buffer;
      http::response_parser<http::string_body> parser;
      parser.body_limit(256 * 1024 * 1024);
      http::read(socket, buffer, parser);
      Response out;
      out.status = static_cast<int>(parser.get().result_int());
      out.body = parse_json(parser.get().body());
      return out;
    } catch (const boost::system::system_error& e) {
      return make_error(Errc::kUnavailable, "the zeppelin server closed the connection: " + e.code().message());
    }
  });
}

Result<Response> Client::stream(const std::string& method, const std::string& target, const json& body,
                                const std::function<bool(const json&)>& on_item) const {
  Connection c;
  if (auto s = send_request(c, socket_path_, remote_, method, target, body); !s) return s.error();
  return c.with([&](auto& socket) -> Result<Response> {
    try {
      beast::flat_buffer buffer;
      http::response_parser<http::buffer_body> parser;
      Response out = read_head(socket, buffer, parser);
      std::string collected;
      std::string pending;
      char chunk[16384];
      bool keep_going = true;
      while (!parser.is_done() && keep_going) {
        parser.get().body().data = chunk;
        parser.get().body().size = sizeof chunk;
        boost::system::error_code ec;
        http::read_some(socket, buffer, parser, ec);  // returns as soon as some body arrived
        if (ec == http::error::need_buffer) ec = {};
        const std::size_t n = sizeof chunk - parser.get().body().size;
        if (!out.ok()) {
          collected.append(chunk, n);
        } else {
          pending.append(chunk, n);
          std::size_t start = 0;
          for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
            json item = json::parse(pending.substr(start, nl - start), nullptr, false);
            start = nl + 1;
            if (!item.is_discarded() && !on_item(item)) {
              keep_going = false;
              break;
            }
          }
          pending.erase(0, start);
        }
        if (is_end(ec)) break;
        if (ec) {
          if (out.ok()) return out;  // the server went away mid-stream: the stream simply ends
          return make_error(Errc::kUnavailable, "reading from the zeppelin server: " + ec.message());
        }
      }
      if (!out.ok()) out.body = parse_json(collected);
      return out;
    } catch (const boost::system::system_error& e) {
      return make_error(Errc::kUnavailable, "the zeppelin server closed the connection: " + e.code().message());
    }
  });
}

Result<Response> Client::download(const std::string& method, const std::string& target, int out) const {
  Connection c;
  if (auto s = send_request(c, socket_path_, remote_, method, target, nullptr); !s) return s.error();
  return c.with([&](auto& socket) -> Result<Response> {
    try {
      beast::flat_buffer buffer;
      http::response_parser<http::buffer_body> parser;
      Response response = read_head(socket, buffer, parser);
      std::string error_text;
      char chunk[65536];
      while (!parser.is_done()) {
        parser.get().body().data = chunk;
        parser.get().body().size = sizeof chunk;
        boost::system::error_code ec;
        http::read(socket, buffer, parser, ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) return make_error(Errc::kUnavailable, "the zeppelin server ended the answer early: " + ec.message());
        const std::size_t n = sizeof chunk - parser.get().body().size;
        if (!response.ok()) {
          error_text.append(chunk, n);
        } else if (!write_all(out, chunk, n)) {
          return make_error(Errc::kInternal, std::string("cannot write the answer: ") + std::strerror(errno));
        }
      }
      if (!response.ok()) response.body = parse_json(error_text);
      return response;
    } catch (const boost::system::system_error& e) {
      return make_error(Errc::kUnavailable, "the zeppelin server closed the connection: " + e.code().message());
    }
  });
}

}  // namespace zeppelin::client
