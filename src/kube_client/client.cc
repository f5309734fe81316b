#include "kube_client/client.h"

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

namespace zeppelin::kube {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using nlohmann::json;

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(30);

struct Endpoint {
  std::string host;  // without brackets
  std::string port;
  std::string prefix;  // path prefix of the server URL, without a trailing slash
};

Result<Endpoint> parse_server(const std::string& server) {
  constexpr std::string_view kScheme = "https://";
  if (!server.starts_with(kScheme)) {
    return make_error(Errc::kInvalidArgument, "server " + server + " is not an https:// URL");
  }
  std::string rest = server.substr(kScheme.size());
  Endpoint e;
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    e.prefix = rest.substr(slash);
    rest.resize(slash);
    while (e.prefix.ends_with('/')) e.prefix.pop_back();
  }
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string::npos)
      return make_error(Errc::kInvalidArgument, "server " + server + ": bad IPv6 address");
    e.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') e.port = rest.substr(close + 2);
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    e.host = rest.substr(0, colon);
    e.port = rest.substr(colon + 1);
  } else {
    e.host = rest;
  }
  if (e.port.empty()) e.port = "443";
  if (e.host.empty()) return make_error(Errc::kInvalidArgument, "server " + server + " has no host");
  return e;
}

bool is_ip(const std::string& host) {
  boost::system::error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

// One TLS connection with its own event loop. Every operation is asynchronous
// under the hood so that the tcp_stream's deadline bounds it; run() drives
// the loop until the operation completes.
class Connection {
 public:
  Connection(ssl::context& tls, const Endpoint& endpoint, const std::string& server)
      : endpoint_(endpoint), server_(server), stream_(ioc_, tls) {}

  Status open() {
    tcp::resolver resolver(ioc_);
    boost::system::error_code ec;
    const auto results = resolver.resolve(endpoint_.host, endpoint_.port, ec);
    if (ec) return unreachable("cannot resolve " + endpoint_.host + ": " + ec.message());
    beast::get_lowest_layer(stream_).expires_after(kRequestTimeout);
    ec = run([&](auto handler) { beast::get_lowest_layer(stream_).async_connect(results, handler); });
    if (ec) return unreachable(ec.message());
    // Requests are small and answered one at a time: no Nagle delay.
    beast::get_lowest_layer(stream_).socket().set_option(tcp::no_delay(true), ec);
    if (!is_ip(endpoint_.host)) SSL_set_tlsext_host_name(stream_.native_handle(), endpoint_.host.c_str());
    stream_.set_verify_callback(ssl::host_name_verification(endpoint_.host));
    ec = run([&](auto handler) { stream_.async_handshake(ssl::stream_base::client, handler); });
    if (ec) {
      return make_error(Errc::kUnavailable,
                        "TLS handshake with the Kubernetes API at " + server_ + " failed: " + ec.message() +
                            " (check the cluster's certificate-authority and the client certificate)");
    }
    open_ = true;
    return ok_status();
  }

  bool is_open() const { return open_; }

  Status write(http::request<http::string_body>& req) {
    beast::get_lowest_layer(stream_).expires_after(kRequestTimeout);
    auto ec = run([&](auto handler) { http::async_write(stream_, req, handler); });
    if (ec) return broken("sending the request: " + ec.message());
    return ok_status();
  }

  Result<Response> read_whole() {
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 * 1024 * 1024);
    beast::get_lowest_layer(stream_).expires_after(kRequestTimeout);
    auto ec = run([&](auto handler) { http::async_read(stream_, buffer_, parser, handler); });
    if (ec) return broken("reading the answer: " + ec.message());
    auto res = parser.release();
    if (!res.keep_alive()) open_ = false;
    return Response{static_cast<int>(res.result_int()), std::move(res.body())};
  }

  Result<Response> read_streaming(const std::function<bool(std::string_view)>& on_data,
                                  std::chrono::milliseconds idle_timeout) {
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    auto arm = [&] {
      if (idle_timeout.count() > 0) {
        beast::get_lowest_layer(stream_).expires_after(idle_timeout);
      } else {
        beast::get_lowest_layer(stream_).expires_never();
      }
    };
    arm();
    auto ec = run([&](auto handler) { http::async_read_header(stream_, buffer_, parser, handler); });
    if (ec) return broken("reading the answer: " + ec.message());
    Response response;
    response.status = static_cast<int>(parser.get().result_int());
    const bool deliver = response.status >= 200 && response.status < 300;
    char chunk[16384];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      arm();
      // read_some: hand over what has arrived instead of waiting for a full buffer.
      ec = run([&](auto handler) { http::async_read_some(stream_, buffer_, parser, handler); });
      if (ec == http::error::need_buffer) ec = {};
      const std::size_t n = sizeof chunk - parser.get().body().size;
      if (ec == beast::error::timeout) {
        open_ = false;
        return response;  // idle for too long: the caller decides (a watch re-lists)
      }
      if (ec) {
        open_ = false;
        if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == net::error::eof ||
            ec == ssl::error::stream_truncated) {
          return response;  // the server ended the stream
        }
        return make_error(Errc::kUnavailable, "the stream from " + server_ + " broke: " + ec.message());
      }
      if (n == 0) continue;
      if (deliver) {
        if (!on_data(std::string_view(chunk, n))) {
          open_ = false;
          return response;
        }
      } else {
        response.body.append(chunk, n);
      }
    }
    return response;
  }

 private:
  template <typename Start>
  boost::system::error_code run(Start start) {
    boost::system::error_code result = net::error::would_block;
    start([&result](const boost::system::error_code& ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

  Error unreachable(const std::string& why) {
    return make_error(Errc::kUnavailable, "cannot reach the Kubernetes API at " + server_ + ": " + why);
  }
  Error broken(const std::string& why) {
    open_ = false;
    return make_error(Errc::kUnavailable, "connection to the Kubernetes API at " + server_ + " failed " + why);
  }

  Endpoint endpoint_;
  std::string server_;
  net::io_context ioc_;
  ssl::stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  bool open_ = false;
};

class HttpsClient final : public Client {
 public:
  HttpsClient(ClusterConfig config, Endpoint endpoint)
      : config_(std::move(config)), endpoint_(std::move(endpoint)), tls_(ssl::context::tls_client) {}

  Status init() {
    boost::system::error_code ec;
    if (config_.insecure_skip_tls_verify) {
      tls_.set_verify_mode(ssl::verify_none);
    } else {
      tls_.set_verify_mode(ssl::verify_peer);
      if (!config_.ca_pem.empty()) {
        tls_.add_certificate_authority(net::buffer(config_.ca_pem), ec);
        if (ec) return bad("the certificate authority of cluster \"" + config_.cluster + "\"", ec);
      } else {
        tls_.set_default_verify_paths(ec);
      }
    }
    if (!config_.client_cert_pem.empty()) {
      tls_.use_certificate_chain(net::buffer(config_.client_cert_pem), ec);
      if (ec) return bad("the client certificate of user \"" + config_.user + "\"", ec);
      tls_.use_private_key(net::buffer(config_.client_key_pem), ssl::context::pem, ec);
      if (ec) return bad("the client key of user \"" + config_.user + "\"", ec);
    }
    return ok_status();
  }

  const ClusterConfig& config() const override { return config_; }

  Result<Response> request(std::string_view method, const std::string& path, const std::string& body,
                           std::string_view content_type) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto req = make_request(method, path);
    if (!body.empty() || method == "POST" || method == "PATCH" || method == "PUT") {
      req.set(http::field::content_type, std::string(content_type));
      req.body() = body;
      req.prepare_payload();
    }
    // A kept-alive connection may have been closed by the server meanwhile:
    // one retry on a fresh connection.
    for (int attempt = 0;; ++attempt) {
      const bool reused = connection_ && connection_->is_open();
      if (!reused) {
        connection_.emplace(tls_, endpoint_, config_.server);
        if (auto s = connection_->open(); !s) return s.error();
      }
      Result<Response> response = make_error(Errc::kInternal, "");
      if (auto s = connection_->write(req); !s) {
        response = s.error();
      } else {
        response = connection_->read_whole();
      }
      if (response || !reused || attempt > 0) return response;
    }
  }

  Result<Response> stream(const std::string& path, const std::function<bool(std::string_view)>& on_data,
                          std::chrono::milliseconds idle_timeout) override {
    Connection connection(tls_, endpoint_, config_.server);
    if (auto s = connection.open(); !s) return s.error();
    auto req = make_request("GET", path);
    if (auto s = connection.write(req); !s) return s.error();
    return connection.read_streaming(on_data, idle_timeout);
  }

 private:
  http::request<http::string_body> make_request(std::string_view method, const std::string& path) {
    http::request<http::string_body> req;
    req.method(http::string_to_verb(beast::string_view(method.data(), method.size())));
    req.target(endpoint_.prefix + path);
    req.version(11);
    req.set(http::field::host, endpoint_.host + ":" + endpoint_.port);
    req.set(http::field::user_agent, "zeppelin");
    req.set(http::field::accept, "application/json");
    if (!config_.token.empty()) req.set(http::field::authorization, "Bearer " + config_.token);
    req.keep_alive(true);
    return req;
  }

  static Error bad(const std::string& what, const boost::system::error_code& ec) {
    return make_error(Errc::kInvalidArgument, what + " is not usable PEM: " + ec.message());
  }

  ClusterConfig config_;
  Endpoint endpoint_;
  ssl::context tls_;
  std::mutex mu_;
  std::optional<Connection> connection_;
};

}  // namespace

Result<std::unique_ptr<Client>> Client::create(const ClusterConfig& config) {
  auto endpoint = parse_server(config.server);
  if (!endpoint) return make_error(Errc::kInvalidArgument, config.source + ": " + endpoint.error().message);
  auto client = std::make_unique<HttpsClient>(config, *endpoint);
  if (auto s = client->init(); !s) return make_error(s.error().code, config.source + ": " + s.error().message);
  return std::unique_ptr<Client>(std::move(client));
}

Error api_error(const Response& response, const ClusterConfig& config, std::string_view verb,
                std::string_view resource) {
  json status = json::parse(response.body, nullptr, false);
  std::string message;
  json causes = json::array();
  if (status.is_object() && status.value("kind", "") == "Status") {
    message = status.value("message", "");
    if (status.contains("details") && status["details"].is_object()) {
      causes = status["details"].value("causes", json::array());
    }
  } else {
    message = response.body.substr(0, 200);
  }
  const std::string what = std::string(verb) + " " + std::string(resource);
  const std::string user = config.user.empty() ? std::string("(no user)") : "\"" + config.user + "\"";
  const std::string quoted = message.empty() ? "" : ": \"" + message + "\"";
  switch (response.status) {
    case 401:
      return make_error(Errc::kInvalidArgument, "the Kubernetes API at " + config.server +
                                                    " rejected the credentials of user " + user + " (" + config.source +
                                                    ") trying to " + what + ": 401 Unauthorized" + quoted);
    case 403:
      return make_error(Errc::kInvalidArgument,
                        "user " + user + " is not allowed to " + what + ": 403 Forbidden" + quoted);
    case 404:
      return make_error(Errc::kNotFound, "cannot " + what + ": 404 Not Found" + quoted);
    case 409: {
      std::string text = "conflict trying to " + what + ": 409 Conflict" + quoted;
      bool managers = false;
      for (const auto& c : causes) {
        if (!c.is_object()) continue;
        text += "\n  " + c.value("field", std::string("?")) + ": " + c.value("message", "");
        managers = managers || c.value("reason", "") == "FieldManagerConflict";
      }
      if (managers)
        text += "\nthese fields are managed by someone else; rerun with --force-conflicts to take them over";
      return make_error(Errc::kAlreadyExists, text);
    }
    case 422: {
      std::string text =
          "the cluster rejected " + std::string(resource) + " as invalid: 422 Unprocessable Entity" + quoted;
      for (const auto& c : causes) {
        if (!c.is_object()) continue;
        text += "\n  " + c.value("field", std::string("?")) + ": " + c.value("message", "");
      }
      return make_error(Errc::kInvalidArgument, text);
    }
    default:
      return make_error(Errc::kUnavailable, "cannot " + what + ": HTTP " + std::to_string(response.status) + quoted);
  }
}

}  // namespace zeppelin::kube
