#include "etcd_api/shared_port.h"

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>

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

  void start(Http2Handler grpc, Http1Handler http1) override {
    grpc_ = std::move(grpc);
    http1_ = std::move(http1);
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
    if (accept_thread_.joinable()) accept_thread_.join();
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return connections_.empty(); });
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  void accept_loop() {
    for (;;) {
      tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec == net::error::no_descriptors || ec == net::error::no_buffer_space) {
        // Out of file descriptors: back off rather than spin, then try again.
        if (is_stopping()) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      if (ec == net::error::connection_aborted) continue;
      if (ec) return;
      const uint64_t id = next_id_++;
      connections_[id] = socket.native_handle();
      std::thread([this, id, s = std::move(socket)]() mutable { serve(id, std::move(s)); }).detach();
    }
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
  std::thread accept_thread_;

  std::mutex mu_;
  std::condition_variable done_;
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
