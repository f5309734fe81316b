#include "etcd_api/shared_port.h"

#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "common/listener.h"
#include "common/log.h"
#include "common/tls.h"

namespace zeppelin::etcd_api {

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// Every HTTP/2 connection opens with this (RFC 9113, section 3.4).
constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// How many connections are open, and how many of them the port itself still
// serves (being sniffed, or HTTP/1.1). Shared with every slot, which may
// outlive the port (an HTTP/2 connection closes after the front stops).
struct Census {
  std::mutex mu;
  std::condition_variable changed;
  int open = 0;         // guarded by mu
  int served_here = 0;  // guarded by mu
};

// One open connection's place in the census, released when its server drops it.
struct Slot {
  explicit Slot(std::shared_ptr<Census> census) : census(std::move(census)) {}
  ~Slot() {
    std::lock_guard<std::mutex> lock(census->mu);
    --census->open;
    if (served_here) --census->served_here;
    census->changed.notify_all();
  }
  // The connection leaves the port's loops (handed to HTTP/2).
  void hand_over() {
    std::lock_guard<std::mutex> lock(census->mu);
    if (served_here) --census->served_here;
    served_here = false;
    census->changed.notify_all();
  }

  const std::shared_ptr<Census> census;
  bool served_here = true;  // guarded by census->mu
};

class SharedPortImpl;

// A connection until its first bytes tell its protocol: waits until it is
// readable and peeks, so that whoever serves it reads it from its start.
class Sniffer final : public PortConnection, public std::enable_shared_from_this<Sniffer> {
 public:
  Sniffer(SharedPortImpl& port, tcp::socket socket, std::shared_ptr<Slot> slot)
      : port_(port),
        socket_(std::move(socket)),
        slot_(std::move(slot)),
        idle_timer_(socket_.get_executor()),
        retry_timer_(socket_.get_executor()) {}

  void start(std::chrono::milliseconds idle_timeout);
  void close() override {
    closed_ = true;
    idle_timer_.cancel();
    retry_timer_.cancel();
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  void wait_readable();
  void retry_after(std::chrono::milliseconds delay);
  void peek();

  SharedPortImpl& port_;
  tcp::socket socket_;
  std::shared_ptr<Slot> slot_;
  net::steady_timer idle_timer_;   // a connection that never speaks is closed
  net::steady_timer retry_timer_;  // part of the preface so far, or the kernel short of memory
  bool closed_ = false;
};

// A connection on a TLS port until its handshake is done: then ALPN tells its protocol.
class Handshaker final : public PortConnection, public std::enable_shared_from_this<Handshaker> {
 public:
  Handshaker(SharedPortImpl& port, TlsStream stream, std::shared_ptr<Slot> slot)
      : port_(port), stream_(std::move(stream)), slot_(std::move(slot)), idle_timer_(stream_->get_executor()) {}

  void start(std::chrono::milliseconds idle_timeout);
  void close() override {
    closed_ = true;
    idle_timer_.cancel();
    boost::system::error_code ignored;
    if (stream_) stream_->close(ignored);
  }

 private:
  void handshaken();

  SharedPortImpl& port_;
  std::optional<TlsStream> stream_;
  std::shared_ptr<Slot> slot_;
  net::steady_timer idle_timer_;  // bounds the whole handshake
  bool closed_ = false;
};

class SharedPortImpl final : public SharedPort {
 public:
  explicit SharedPortImpl(SharedPortOptions options)
      : options_(options), census_(std::make_shared<Census>()) {
    for (int i = 0; i < std::max(1, options_.event_loops); ++i) loops_.push_back(std::make_unique<net::io_context>(1));
    acceptor_.emplace(*loops_.front());
    backoff_timer_.emplace(*loops_.front());
  }
  ~SharedPortImpl() override { stop(); }

  Status open(const std::string& listen) {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) {
      return make_error(Errc::kInvalidArgument, "etcd listen address " + listen + " is not HOST:PORT");
    }
    std::string host = listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    boost::system::error_code ec;
    tcp::resolver resolver(*loops_.front());
    auto endpoints = resolver.resolve(host, listen.substr(colon + 1), tcp::resolver::numeric_service, ec);
    if (ec || endpoints.empty()) {
      return make_error(Errc::kInvalidArgument, "etcd listen address " + listen + ": " + ec.message());
    }
    const tcp::endpoint endpoint = endpoints.begin()->endpoint();
    acceptor_->open(endpoint.protocol(), ec);
    if (!ec) acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_->bind(endpoint, ec);
    if (!ec) acceptor_->listen(net::socket_base::max_listen_connections, ec);
    if (ec) return make_error(Errc::kUnavailable, "cannot listen on " + listen + " for the etcd API: " + ec.message());
    port_ = acceptor_->local_endpoint().port();
    return ok_status();
  }

  int port() const override { return port_; }

  void start(Handlers handlers) override {
    handlers_ = std::move(handlers);
    for (auto& loop : loops_) guards_.emplace_back(loop->get_executor());
    net::post(*loops_.front(), [this] { accept_next(); });
    for (auto& loop : loops_) threads_.emplace_back([io = loop.get()] { io->run(); });
  }

  void stop() override {
    std::vector<Registered> to_close;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      to_close.swap(connections_);
    }
    if (threads_.empty()) {  // never started
      boost::system::error_code ignored;
      acceptor_->close(ignored);
      return;
    }
    net::post(*loops_.front(), [this] {
      boost::system::error_code ignored;
      acceptor_->close(ignored);
      backoff_timer_->cancel();
    });
    for (auto& [weak, io] : to_close) {
      if (auto connection = weak.lock()) net::post(*io, [connection] { connection->close(); });
    }
    to_close.clear();
    {
      // A connection's calls in flight (a KV write waiting for its commit, a
      // gRPC call being cancelled) hold it, and answer through its loop.
      std::unique_lock<std::mutex> lock(census_->mu);
      census_->changed.wait(lock, [this] { return census_->served_here == 0; });
    }
    guards_.clear();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  // Serves a sniffed connection as HTTP/2 (hands it over) or HTTP/1.1. On its loop.
  void serve_http2(tcp::socket socket, const std::shared_ptr<Slot>& slot) {
    if (is_stopping()) return;
    // gRPC expects a non-blocking descriptor with Nagle's algorithm off, as
    // its own accept() makes them: a blocking read would stall the
    // transport's thread, and with Nagle a small message written after
    // another (one watch response after the next) would wait for the peer's
    // delayed ACK, up to 40 ms.
    boost::system::error_code ec;
    socket.non_blocking(true, ec);
    socket.set_option(tcp::no_delay(true), ec);
    slot->hand_over();
    handlers_.http2(socket.release(), slot);
  }

  void serve_http2_tls(TlsStream stream, const std::shared_ptr<Slot>& slot) {
    if (is_stopping()) return;
    slot->hand_over();
    auto [fd, ssl] = stream.release();
    handlers_.http2_tls(fd, std::move(ssl), slot);
  }

  void serve_http1_tls(TlsStream stream, const std::shared_ptr<Slot>& slot) {
    net::io_context* io = &static_cast<net::io_context&>(stream.get_executor().context());
    auto connection = handlers_.http1_tls(std::move(stream), slot);
    if (connection) track(connection, io);
  }

  void serve_http1(tcp::socket socket, const std::shared_ptr<Slot>& slot) {
    // Each answer is one small write: without Nagle it leaves at once instead
    // of waiting for the client's delayed ACK (etcd's gateway does the same).
    boost::system::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    net::io_context* io = &static_cast<net::io_context&>(socket.get_executor().context());
    auto connection = handlers_.http1(std::move(socket), slot);
    if (connection) track(connection, io);
  }

 private:
  using Registered = std::pair<std::weak_ptr<PortConnection>, net::io_context*>;

  void accept_next() {
    net::io_context& loop = *loops_[next_loop_++ % loops_.size()];
    acceptor_->async_accept(loop, [this](const boost::system::error_code& ec, tcp::socket socket) {
      accepted(ec, std::move(socket));
    });
  }

  // A failed accept ends accepting only when the listening socket itself is
  // gone bad, and then loudly (failed_): a signal, a connection dropped before
  // it was taken, or a shortage of descriptors or memory must never leave a
  // dead port behind a live server.
  void accepted(const boost::system::error_code& ec, tcp::socket socket) {
    if (is_stopping()) return;
    if (ec) {
      switch (classify_accept_error(ec.value())) {
        case AcceptError::kRetry:
          return accept_next();
        case AcceptError::kBackOff:
          return back_off(ec.message());
        case AcceptError::kFatal:
          return fail("accept: " + ec.message());
      }
    }
    backoffs_ = 0;
    if (auto slot = take_slot()) {
      net::io_context* io = &static_cast<net::io_context&>(socket.get_executor().context());
      if (options_.tls) {
        handshake(std::move(socket), std::move(slot), io);
      } else {
        auto sniffer = std::make_shared<Sniffer>(*this, std::move(socket), std::move(slot));
        if (track(sniffer, io)) net::post(*io, [sniffer, timeout = options_.idle_timeout] { sniffer->start(timeout); });
      }
    } else {
      refuse(std::move(socket));
    }
    accept_next();
  }

  // Starts a TLS connection's handshake on its loop, with the context of the
  // moment (a rotated certificate serves new connections).
  void handshake(tcp::socket socket, std::shared_ptr<Slot> slot, net::io_context* io) {
    SslPtr ssl(SSL_new(options_.tls->current()->native_handle()));
    if (!ssl) {
      log::warn("etcd API on port {}: cannot make a TLS session; closing the connection", port_);
      return;
    }
    // Handshake messages and then answers leave at once (see serve_http1).
    boost::system::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    auto handshaker =
        std::make_shared<Handshaker>(*this, TlsStream(std::move(socket), std::move(ssl)), std::move(slot));
    if (track(handshaker, io)) {
      net::post(*io, [handshaker, timeout = options_.idle_timeout] { handshaker->start(timeout); });
    }
  }

  // A place for one more connection, or none at the cap.
  std::shared_ptr<Slot> take_slot() {
    std::lock_guard<std::mutex> lock(census_->mu);
    if (census_->open >= options_.max_connections) return nullptr;
    ++census_->open;
    ++census_->served_here;
    return std::make_shared<Slot>(census_);
  }

  // Over the cap: the new connection is closed at once, so that the client
  // sees it fail rather than wait (its peer may retry elsewhere or later).
  void refuse(tcp::socket socket) {
    boost::system::error_code ignored;
    socket.close(ignored);
    if (uint64_t held_back = 0; refusal_log_.allow(held_back)) {
      log::warn("etcd API on port {}: {} connections open, the most allowed; closing new ones{}", port_,
                options_.max_connections,
                held_back > 0 ? " (" + std::to_string(held_back) + " more refused since the last line)" : "");
    }
  }

  // Remembers a connection for stop(); false (and closed) when the port is stopping.
  bool track(const std::shared_ptr<PortConnection>& connection, net::io_context* io) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_) {
        if (connections_.size() > 2 * last_sweep_ + 64) {
          std::erase_if(connections_, [](const Registered& r) { return r.first.expired(); });
          last_sweep_ = connections_.size();
        }
        connections_.emplace_back(connection, io);
        return true;
      }
    }
    net::post(*io, [connection] { connection->close(); });
    return false;
  }

  // Waits before accepting again (or until stop()), with a log line now and then.
  void back_off(const std::string& error) {
    const auto delay = accept_backoff(++backoffs_);
    if (uint64_t held_back = 0; backoff_log_.allow(held_back)) {
      log::warn("etcd API on port {}: accept failed: {}; accepting again in {} ms{}", port_, error, delay.count(),
                held_back > 0 ? " (" + std::to_string(held_back) + " such failures since the last line)" : "");
    }
    backoff_timer_->expires_after(delay);
    backoff_timer_->async_wait([this](const boost::system::error_code& ec) {
      if (!ec && !is_stopping()) accept_next();
    });
  }

  // The port cannot accept any more: say so, and let the owner stop.
  void fail(const std::string& reason) {
    log::error("etcd API on port {} stopped accepting connections: {}", port_, reason);
    if (handlers_.failed) handlers_.failed(reason);
  }

  bool is_stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  const SharedPortOptions options_;
  const std::shared_ptr<Census> census_;
  std::vector<std::unique_ptr<net::io_context>> loops_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
  // On the first loop: the listening socket and its back-off.
  std::optional<tcp::acceptor> acceptor_;
  std::optional<net::steady_timer> backoff_timer_;
  int backoffs_ = 0;  // in a row
  size_t next_loop_ = 0;
  int port_ = 0;
  Handlers handlers_;
  LogThrottle backoff_log_;
  LogThrottle refusal_log_;

  std::mutex mu_;
  std::vector<Registered> connections_;  // guarded by mu_: those served on the loops (may have ended since)
  size_t last_sweep_ = 0;                // guarded by mu_
  bool stopping_ = false;                // guarded by mu_
};

void Sniffer::start(std::chrono::milliseconds idle_timeout) {
  if (closed_) return;
  idle_timer_.expires_after(idle_timeout);
  idle_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->close();  // not a word since it connected
  });
  wait_readable();
}

void Sniffer::wait_readable() {
  socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](const boost::system::error_code& ec) {
    if (self->closed_) return;
    if (ec) return self->close();
    self->peek();
  });
}

void Sniffer::retry_after(std::chrono::milliseconds delay) {
  retry_timer_.expires_after(delay);
  retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec && !self->closed_) self->peek();
  });
}

void Sniffer::peek() {
  char buf[kHttp2Preface.size()];
  const ssize_t n = ::recv(socket_.native_handle(), buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return wait_readable();
  // The kernel is short of memory, which is not this connection's end.
  if (n < 0 && (errno == ENOMEM || errno == ENOBUFS)) return retry_after(std::chrono::milliseconds(10));
  if (n <= 0) return close();
  const std::string_view first(buf, static_cast<size_t>(n));
  if (kHttp2Preface.substr(0, first.size()) != first) {
    idle_timer_.cancel();
    closed_ = true;
    return port_.serve_http1(std::move(socket_), slot_);
  }
  if (first.size() == kHttp2Preface.size()) {
    idle_timer_.cancel();
    closed_ = true;
    return port_.serve_http2(std::move(socket_), slot_);
  }
  // Part of the preface so far: the socket stays readable, so look again a
  // little later rather than spin (the idle timer still bounds the wait).
  retry_after(std::chrono::milliseconds(1));
}

void Handshaker::start(std::chrono::milliseconds idle_timeout) {
  if (closed_) return;
  idle_timer_.expires_after(idle_timeout);
  idle_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->close();  // no complete handshake since it connected
  });
  stream_->async_handshake([self = shared_from_this()](const boost::system::error_code& ec) {
    if (self->closed_) return;
    if (ec) return self->close();  // not TLS, or not a TLS we speak
    self->handshaken();
  });
}

void Handshaker::handshaken() {
  idle_timer_.cancel();
  closed_ = true;
  const unsigned char* protocol = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(stream_->native_handle(), &protocol, &length);
  TlsStream stream = std::move(*stream_);
  stream_.reset();
  if (std::string_view(reinterpret_cast<const char*>(protocol), length) == "h2") {
    return port_.serve_http2_tls(std::move(stream), slot_);
  }
  port_.serve_http1_tls(std::move(stream), slot_);
}

}  // namespace

Result<std::unique_ptr<SharedPort>> SharedPort::bind(const std::string& listen, SharedPortOptions options) {
  auto port = std::make_unique<SharedPortImpl>(options);
  if (auto s = port->open(listen); !s) return s.error();
  return std::unique_ptr<SharedPort>(std::move(port));
}

}  // namespace zeppelin::etcd_api
