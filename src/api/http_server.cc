#include "api/http_server.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>

#include "common/http_guard.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/tls.h"

namespace zeppelin::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using TlsStream = ssl::stream<asio::ip::tcp::socket>;

namespace {

constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

template <typename Socket>
constexpr bool kIsTls = std::is_same_v<Socket, TlsStream>;

// Closes the connection under a plain socket or a TLS stream. A TLS stream
// is closed without close_notify: the peer sees the end of the stream.
template <typename Socket>
void close_stream(Socket& socket) {
  beast::error_code ec;
  auto& lowest = socket.lowest_layer();
  lowest.shutdown(asio::socket_base::shutdown_both, ec);
  lowest.close(ec);
}

constexpr std::size_t kMaxBody = 8 * 1024 * 1024;
constexpr std::size_t kMaxStreamBacklog = 64 * 1024 * 1024;  // a follower that stops reading is dropped
constexpr auto kIdleTimeout = std::chrono::seconds(120);
constexpr std::size_t kFileChunk = 256 * 1024;

std::string_view view(boost::beast::string_view s) { return {s.data(), s.size()}; }

nlohmann::json error_json(const char* code, const std::string& message) {
  return {{"error", {{"code", code}, {"message", message}}}};
}

// What a web page could make a browser send (common/http_guard.h), refused
// before routing: a Host that is not this server's (DNS rebinding), and for
// state-changing methods a foreign Origin or a body that is not JSON (a
// cross-site "simple" request: text/plain, a form or multipart, sent without
// a CORS preflight). Our own clients send JSON and no Origin.
std::optional<Refusal> screen(const HostGuard& guard, const http::request<http::string_body>& raw) {
  const std::string_view host = view(raw[http::field::host]);
  if (auto s = guard.check_host(host); !s) return Refusal{403, error_json("forbidden", s.error().message)};
  if (!changes_state(view(raw.method_string()))) return std::nullopt;
  if (auto origin = raw.find(http::field::origin); origin != raw.end()) {
    if (auto s = HostGuard::check_origin(view(origin->value()), host); !s) {
      return Refusal{403, error_json("forbidden", s.error().message)};
    }
  }
  if (!raw.body().empty()) {
    const std::string type = media_type(view(raw[http::field::content_type]));
    if (type != "application/json") {
      return Refusal{415, error_json("unsupported_media_type",
                                     "a request body must be application/json" +
                                         (type.empty() ? std::string(" (no Content-Type given)") : ", not " + type))};
    }
  }
  return std::nullopt;
}

std::string percent_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else if (in[i] == '+') {
      out += ' ';
    } else {
      out += in[i];
    }
  }
  return out;
}

Request to_request(const http::request<http::string_body>& raw) {
  Request req;
  req.method = std::string(raw.method_string());
  const std::string_view target(raw.target().data(), raw.target().size());
  const auto q = target.find('?');
  req.path = percent_decode(target.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
      const auto amp = query.find('&');
      const std::string_view pair = query.substr(0, amp);
      const auto eq = pair.find('=');
      req.query[percent_decode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }
  req.body = raw.body();
  return req;
}

// The refusal for a failed read, or nothing when the client just left.
std::optional<Refusal> read_failure(const beast::error_code& ec) {
  if (ec == http::error::body_limit) return Refusal{413, error_json("too_large", "request body larger than 8 MiB")};
  if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::operation_aborted ||
      ec == asio::error::connection_reset || ec == ssl::error::stream_truncated) {
    return std::nullopt;
  }
  return Refusal{400, error_json("bad_request", ec.message())};
}

// A request read in full, as the handler gets it, or why it is refused.
std::variant<Request, Refusal> admit_request(const http::request<http::string_body>& raw, const HostGuard* guard) {
  if (guard) {
    if (auto refused = screen(*guard, raw)) return std::move(*refused);
  }
  Request req = to_request(raw);
  req.authorization = std::string(view(raw[http::field::authorization]));
  return req;
}

template <typename Socket>
class Session : public Exchange, public std::enable_shared_from_this<Session<Socket>> {
 public:
  // `guard` (TCP only, may be null) screens requests before the handler sees
  // them; `peer` is the client's address (TCP). The socket is made of `args`.
  template <typename... Args>
  Session(Handler& handler, const HostGuard* guard, std::string peer, Args&&... args)
      : socket_(std::forward<Args>(args)...),
        handler_(handler),
        guard_(guard),
        peer_(std::move(peer)),
        idle_(socket_.get_executor()) {}
  ~Session() override { close_file(); }

  void start() {
    if constexpr (kIsTls<Socket>) {
      // A client that neither completes nor abandons the handshake is dropped.
      idle_.expires_after(kHandshakeTimeout);
      auto self = this->shared_from_this();
      idle_.async_wait([self](const beast::error_code& ec) {
        if (!ec) self->close();
      });
      socket_.async_handshake(ssl::stream_base::server, [self](const beast::error_code& ec) {
        self->idle_.cancel();
        if (ec) {
          log::debug("API: TLS handshake with {} failed: {}", self->peer_, ec.message());
          return self->close();
        }
        self->read_request();
      });
    } else {
      read_request();
    }
  }

  void reply(int status, const nlohmann::json& body) override {
    // Messages may quote user input: invalid UTF-8 is replaced, never fatal.
    send_json(status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }

  void reply_serialized(int status, std::string body) override {
    auto self = this->shared_from_this();
    asio::post(socket_.get_executor(),
               [self, status, body = std::move(body)]() mutable { self->send_json(status, std::move(body)); });
  }

  void send_json(int status, std::string body) {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
    res->set(http::field::content_type, "application/json");
    res->set(http::field::server, "zeppelin");
    res->keep_alive(keep_alive_);
    res->body() = std::move(body);
    res->body() += '\n';
    res->prepare_payload();
    auto self = this->shared_from_this();
    http::async_write(socket_, *res, [self, res](const beast::error_code& ec, std::size_t) {
      if (ec || !self->keep_alive_) return self->close();
      self->read_request();
    });
  }

  void reply_file(int status, const std::string& path, const std::map<std::string, std::string>& headers) override {
    file_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (file_ < 0 || ::fstat(file_, &st) != 0) {
      const std::string why = std::strerror(errno);
      close_file();
      return reply(500, error_json("internal", "cannot read " + path + ": " + why));
    }
    file_left_ = static_cast<std::uint64_t>(st.st_size);
    auto res = std::make_shared<http::response<http::empty_body>>(static_cast<http::status>(status), 11);
    res->set(http::field::content_type, "application/octet-stream");
    res->set(http::field::server, "zeppelin");
    for (const auto& [name, value] : headers) res->set(name, value);
    res->content_length(file_left_);
    res->keep_alive(keep_alive_);
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    auto self = this->shared_from_this();
    http::async_write_header(socket_, *sr, [self, res, sr](const beast::error_code& ec, std::size_t) {
      if (ec) return self->close();
      self->send_file();
    });
  }

  void begin_stream() override {
    streaming_ = true;
    auto res = std::make_shared<http::response<http::empty_body>>(http::status::ok, 11);
    res->set(http::field::content_type, "application/x-ndjson");
    res->set(http::field::server, "zeppelin");
    res->keep_alive(false);  // the body ends when the connection closes
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    auto self = this->shared_from_this();
    writing_ = true;
    http::async_write_header(socket_, *sr, [self, res, sr](const beast::error_code& ec, std::size_t) {
      self->writing_ = false;
      if (ec) return self->disconnect();
      self->flush();
    });
    watch_disconnect();
  }

  void stream(const nlohmann::json& item) override {
    if (closed_) return;
    std::string line = item.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    backlog_bytes_ += line.size();
    pending_.push_back(std::move(line));
    if (backlog_bytes_ > kMaxStreamBacklog) return disconnect();
    flush();
  }

  void end_stream() override {
    ending_ = true;
    flush();
  }

  void on_disconnect(std::function<void()> callback) override { on_disconnect_ = std::move(callback); }

 private:
  void read_request() {
    parser_.emplace();
    parser_->body_limit(kMaxBody);
    idle_.expires_after(kIdleTimeout);
    auto self = this->shared_from_this();
    idle_.async_wait([self](const beast::error_code& ec) {
      if (!ec) self->close();
    });
    http::async_read(socket_, buffer_, *parser_, [self](const beast::error_code& ec, std::size_t) {
      self->idle_.cancel();
      if (ec) {
        auto refusal = read_failure(ec);
        if (!refusal) return self->close();
        self->keep_alive_ = false;
        return self->reply(refusal->status, refusal->body);
      }
      auto raw = self->parser_->release();
      self->keep_alive_ = raw.keep_alive();
      auto admitted = admit_request(raw, self->guard_);
      if (auto* refusal = std::get_if<Refusal>(&admitted)) return self->reply(refusal->status, refusal->body);
      auto& req = std::get<Request>(admitted);
      req.peer = self->peer_;
      req.tcp = kIsTls<Socket>;
      self->handler_(req, self);
    });
  }

  // The body of reply_file(), one chunk at a time; then the next request.
  void send_file() {
    if (file_left_ == 0) {
      close_file();
      if (!keep_alive_) return close();
      return read_request();
    }
    auto chunk = std::make_shared<std::string>(static_cast<std::size_t>(std::min<std::uint64_t>(file_left_, kFileChunk)), '\0');
    ssize_t n;
    do {
      n = ::read(file_, chunk->data(), chunk->size());
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {  // the file shrank: the client sees a body shorter than announced
      close_file();
      return close();
    }
    chunk->resize(static_cast<std::size_t>(n));
    file_left_ -= static_cast<std::uint64_t>(n);
    auto self = this->shared_from_this();
    asio::async_write(socket_, asio::buffer(*chunk), [self, chunk](const beast::error_code& ec, std::size_t) {
      if (ec) {
        self->close_file();
        return self->close();
      }
      self->send_file();
    });
  }

  void close_file() {
    if (file_ >= 0) ::close(file_);
    file_ = -1;
  }

  // A streaming client sends nothing more; a completed read means it left.
  void watch_disconnect() {
    auto self = this->shared_from_this();
    socket_.async_read_some(asio::buffer(sink_), [self](const beast::error_code& ec, std::size_t) {
      if (ec) return self->disconnect();
      self->watch_disconnect();
    });
  }

  void flush() {
    if (writing_ || closed_ || !streaming_) return;
    if (pending_.empty()) {
      if (ending_) close();
      return;
    }
    writing_ = true;
    auto batch = std::make_shared<std::string>();
    while (!pending_.empty() && batch->size() < 256 * 1024) {
      *batch += pending_.front();
      pending_.pop_front();
    }
    backlog_bytes_ -= batch->size();
    auto self = this->shared_from_this();
    asio::async_write(socket_, asio::buffer(*batch), [self, batch](const beast::error_code& ec, std::size_t) {
      self->writing_ = false;
      if (ec) return self->disconnect();
      self->flush();
    });
  }

  void disconnect() {
    if (closed_) return;
    close();
    if (on_disconnect_) {
      auto cb = std::move(on_disconnect_);
      on_disconnect_ = nullptr;
      cb();
    }
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    idle_.cancel();
    close_stream(socket_);
  }

  Socket socket_;
  Handler& handler_;
  const HostGuard* guard_;
  std::string peer_;
  asio::steady_timer idle_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
  bool streaming_ = false;
  bool writing_ = false;
  bool ending_ = false;
  bool closed_ = false;
  std::deque<std::string> pending_;
  std::size_t backlog_bytes_ = 0;
  std::array<char, 512> sink_{};
  std::function<void()> on_disconnect_;
  int file_ = -1;  // reply_file()'s, while it is sent
  std::uint64_t file_left_ = 0;
};

template <typename Protocol>
class Listener final : public HttpServer {
 public:
  Listener(asio::io_context& io, typename Protocol::endpoint endpoint, Handler handler, std::string address,
           TlsContextSource* tls = nullptr, const std::vector<std::string>& allowed_hosts = {})
      : acceptor_(io), retry_(io), handler_(std::move(handler)), address_(std::move(address)), tls_(tls) {
    acceptor_.open(endpoint.protocol());
    if constexpr (std::is_same_v<Protocol, asio::ip::tcp>) acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    if constexpr (std::is_same_v<Protocol, asio::ip::tcp>) {
      address_ = acceptor_.local_endpoint().address().to_string() + ":" + std::to_string(acceptor_.local_endpoint().port());
      guard_.emplace(address_, allowed_hosts);
    }
    accept();
  }

  std::string address() const override { return address_; }
  void close() override {
    beast::error_code ec;
    acceptor_.close(ec);
    retry_.cancel();
  }

 private:
  void accept() {
    acceptor_.async_accept([this](const beast::error_code& ec, typename Protocol::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        backoffs_ = 0;
        if constexpr (std::is_same_v<Protocol, asio::ip::tcp>) {
          beast::error_code peer_ec;
          const auto remote = socket.remote_endpoint(peer_ec);
          std::string peer = peer_ec ? "unknown" : remote.address().to_string();
          // The certificate files are checked here, so that replaced ones take effect.
          auto context = tls_->current();
          std::make_shared<Session<TlsStream>>(handler_, &*guard_, std::move(peer), std::move(socket), *context)
              ->start();
        } else {
          std::make_shared<Session<typename Protocol::socket>>(handler_, nullptr, std::string(), std::move(socket))
              ->start();
        }
        return accept();
      }
      // Asio retries a call a signal interrupted by itself.
      if (classify_accept_error(ec.value()) == AcceptError::kRetry) return accept();
      // Out of descriptors or memory (or worse): the pending connection keeps
      // the socket readable, so accepting again at once would spin. Wait.
      const auto delay = accept_backoff(++backoffs_);
      if (uint64_t held_back = 0; log_throttle_.allow(held_back)) {
        log::warn("API on {}: accept failed: {}; accepting again in {} ms{}", address_, ec.message(), delay.count(),
                  held_back > 0 ? " (" + std::to_string(held_back) + " such failures since the last line)" : "");
      }
      retry_.expires_after(delay);
      retry_.async_wait([this](const beast::error_code& wait_ec) {
        if (!wait_ec && acceptor_.is_open()) accept();
      });
    });
  }

  typename Protocol::acceptor acceptor_;
  asio::steady_timer retry_;  // the wait before accepting again after a failure
  int backoffs_ = 0;          // failures in a row
  LogThrottle log_throttle_;
  Handler handler_;
  std::string address_;
  std::optional<HostGuard> guard_;  // TCP: a unix socket is not reachable by browsers
  TlsContextSource* tls_;           // TCP: where each connection's TLS context comes from
};

}  // namespace

ParsedRequest parse_request(std::string_view wire, const HostGuard* guard) {
  http::request_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  parser.eager(true);
  beast::error_code ec;
  while (!parser.is_done()) {
    const std::size_t used = parser.put(asio::buffer(wire.data(), wire.size()), ec);
    wire.remove_prefix(used);
    if (ec && ec != http::error::need_more) break;
    if (ec || used == 0) {
      // The bytes end here, as a socket's would at the peer's close.
      if (parser.got_some()) {
        ec = {};
        parser.put_eof(ec);
      } else {
        ec = http::error::end_of_stream;
      }
      break;
    }
  }
  if (ec) {
    if (auto refusal = read_failure(ec)) return *refusal;
    return std::monostate{};
  }
  auto admitted = admit_request(parser.release(), guard);
  if (auto* refusal = std::get_if<Refusal>(&admitted)) return std::move(*refusal);
  return std::get<Request>(std::move(admitted));
}

Result<std::unique_ptr<HttpServer>> HttpServer::listen_unix(asio::io_context& io, const std::string& path, Handler handler) {
  ::unlink(path.c_str());
  const mode_t old = ::umask(0077);  // the socket is created 0600
  try {
    auto server = std::make_unique<Listener<asio::local::stream_protocol>>(
        io, asio::local::stream_protocol::endpoint(path), std::move(handler), path);
    ::umask(old);
    ::chmod(path.c_str(), 0600);
    return std::unique_ptr<HttpServer>(std::move(server));
  } catch (const boost::system::system_error& e) {
    ::umask(old);
    return make_error(Errc::kUnavailable, "cannot listen on " + path + ": " + e.code().message());
  }
}

Result<std::unique_ptr<HttpServer>> HttpServer::listen_tcp(asio::io_context& io, const std::string& address, Handler handler,
                                                          TlsContextSource& tls, std::vector<std::string> allowed_hosts) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) return make_error(Errc::kInvalidArgument, "listen address must be HOST:PORT, got " + address);
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(address.substr(0, colon), ec);
  if (ec) return make_error(Errc::kInvalidArgument, "invalid listen host in " + address);
  int port = 0;
  try {
    port = std::stoi(address.substr(colon + 1));
  } catch (const std::exception&) {
    port = -1;
  }
  if (port < 0 || port > 65535) return make_error(Errc::kInvalidArgument, "invalid listen port in " + address);
  try {
    return std::unique_ptr<HttpServer>(std::make_unique<Listener<asio::ip::tcp>>(
        io, asio::ip::tcp::endpoint(ip, static_cast<unsigned short>(port)), std::move(handler), address, &tls,
        allowed_hosts));
  } catch (const boost::system::system_error& e) {
    return make_error(Errc::kUnavailable, "cannot listen on " + address + ": " + e.code().message());
  }
}

}  // namespace zeppelin::api
