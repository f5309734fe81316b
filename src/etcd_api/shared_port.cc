#include "etcd_api/shared_port.h"

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>

#include "common/listener.h"
#include "common/log.h"

namespace zeppelin::etcd_api {

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// Every HTTP/2 connection opens with this (RFC 9113, section 3.4).
constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

class SharedPortImpl final : public SharedPort {
 public:
  SharedPortImpl() : acceptor_(io_) {}
  ~SharedPortImpl() override { stop(); }

  Status open(const std::string& listen) {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) {
      return make_error(Errc::kInvalidArgument, "etcd listen address " + listen + " is not HOST:PORT");
    }
    std::string host = listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    boost::system::error_code ec;
    tcp::resolver resolver(io_);
    auto endpoints = resolver.resolve(host, listen.substr(colon + 1), tcp::resolver::numeric_service, ec);
    if (ec || endpoints.empty()) {
      return make_error(Errc::kInvalidArgument, "etcd listen address " + listen + ": " + ec.message());
    }
    const tcp::endpoint endpoint = endpoints.begin()->endpoint();
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return make_error(Errc::kUnavailable, "cannot listen on " + listen + " for the etcd API: " + ec.message());
    port_ = acceptor_.local_endpoint().port();
    return ok_status();
  }

  int port() const override { return port_; }

  void start(Http2Handler grpc, Http1Handler http1, Failed failed) override {
    grpc_ = std::move(grpc);
    http1_ = std::move(http1);
    failed_ = std::move(failed);
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  void stop() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      // Wakes the blocked accept() and every connection thread's blocked read.
      if (acceptor_.is_open()) ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
      for (auto& [id, fd] : connections_) ::shutdown(fd, SHUT_RDWR);
    }
    wake_.notify_all();  // an accept thread backing off
    if (accept_thread_.joinable()) accept_thread_.join();
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return connections_.empty(); });
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  // Accepts until stop(). A failed accept() ends the loop only when the
  // listening socket itself is gone bad, and then loudly (failed_): a signal,
  // a connection dropped before it was taken, or a shortage of descriptors or
  // memory must never leave a dead port behind a live server.
  void accept_loop() {
    int backoffs = 0;  // in a row
    for (;;) {
      tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (is_stopping()) return;
      if (ec) {
        switch (classify_accept_error(ec.value())) {
          case AcceptError::kRetry:
            continue;
          case AcceptError::kBackOff:
            back_off("accept", ec.message(), ++backoffs);
            continue;
          case AcceptError::kFatal:
            return fail("accept: " + ec.message());
        }
      }
      const int fd = socket.native_handle();
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_) return;
      const uint64_t id = next_id_++;
      connections_[id] = fd;
      try {
        std::thread([this, id, s = std::move(socket)]() mutable { serve(id, std::move(s)); }).detach();
        backoffs = 0;
      } catch (const std::exception& e) {
        // No thread to serve it (out of threads or memory): drop this
        // connection (closed with the lambda that held it), not the port.
        connections_.erase(id);
        lock.unlock();
        back_off("starting a connection's thread", e.what(), ++backoffs);
      }
    }
  }

  // Waits before accepting again (or until stop()), with a log line now and then.
  void back_off(const char* what, const std::string& error, int attempt) {
    const auto delay = accept_backoff(attempt);
    if (uint64_t held_back = 0; log_throttle_.allow(held_back)) {
      log::warn("etcd API on port {}: {} failed: {}; accepting again in {} ms{}", port_, what, error, delay.count(),
                held_back > 0 ? " (" + std::to_string(held_back) + " such failures since the last line)" : "");
    }
    std::unique_lock<std::mutex> lock(mu_);
    wake_.wait_for(lock, delay, [this] { return stopping_; });
  }

  // The port cannot accept any more: say so, and let the owner stop.
  void fail(const std::string& reason) {
    log::error("etcd API on port {} stopped accepting connections: {}", port_, reason);
    if (failed_) failed_(reason);
  }

  void serve(uint64_t id, tcp::socket socket) {
    const Protocol protocol = sniff(socket.native_handle());
    if (protocol == Protocol::kHttp2) {
      hand_to_grpc(id, std::move(socket));
      return;
    }
    boost::system::error_code ec;
    // Each answer is one small write: without Nagle it leaves at once instead
    // of waiting for the client's delayed ACK (etcd's gateway does the same).
    socket.set_option(tcp::no_delay(true), ec);
    if (protocol == Protocol::kHttp1) http1_(socket);
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
    finished(id);
  }

  enum class Protocol { kHttp2, kHttp1, kClosed };

  // Looks at the first bytes without consuming them, so that whoever serves
  // the connection reads it from its start.
  static Protocol sniff(int fd) {
    char buf[kHttp2Preface.size()];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_PEEK);  // blocks until the first bytes arrive
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == ENOMEM || errno == ENOBUFS)) {
        // The kernel is short of memory, which is not this connection's end
        // (stop() ends the wait: the peek then returns 0).
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      if (n <= 0) return Protocol::kClosed;
      if (kHttp2Preface.substr(0, n) != std::string_view(buf, n)) return Protocol::kHttp1;
      if (static_cast<size_t>(n) == kHttp2Preface.size()) return Protocol::kHttp2;
      // Part of the preface so far: a peek returns at once from now on, so wait a little for the rest.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  void hand_to_grpc(uint64_t id, tcp::socket socket) {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) {
      lock.unlock();
      finished(id);
      return;
    }
    connections_.erase(id);  // gRPC owns it from here on
    lock.unlock();
    // gRPC expects a non-blocking descriptor with Nagle's algorithm off, as
    // its own accept() makes them: a blocking read would stall the
    // transport's thread, and with Nagle a small message written after
    // another (one watch response after the next) would wait for the peer's
    // delayed ACK, up to 40 ms.
    boost::system::error_code ec;
    socket.non_blocking(true, ec);
    socket.set_option(tcp::no_delay(true), ec);
    grpc_(socket.release());
    done_.notify_all();
  }

  bool is_stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  void finished(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    connections_.erase(id);
    done_.notify_all();
  }

  net::io_context io_;  // only for the blocking socket calls; never run
  tcp::acceptor acceptor_;
  int port_ = 0;
  Http2Handler grpc_;
  Http1Handler http1_;
  Failed failed_;
  std::thread accept_thread_;
  LogThrottle log_throttle_;  // the accept thread's back-off lines

  std::mutex mu_;
  std::condition_variable done_;
  std::condition_variable wake_;  // stop() wakes a backing-off accept thread
  std::map<uint64_t, int> connections_;  // guarded by mu_: connections being sniffed or served as HTTP/1.1
  uint64_t next_id_ = 0;                 // guarded by mu_
  bool stopping_ = false;                // guarded by mu_
};

}  // namespace

Result<std::unique_ptr<SharedPort>> SharedPort::bind(const std::string& listen) {
  auto port = std::make_unique<SharedPortImpl>();
  if (auto s = port->open(listen); !s) return s.error();
  return std::unique_ptr<SharedPort>(std::move(port));
}

}  // namespace zeppelin::etcd_api
