// The etcd port under signals: a handled signal (installed without
// SA_RESTART, as Asio's signal_set installs SIGCHLD's) interrupts whatever
// blocking call the thread it lands on is in. The accept loop and the
// connections' reads must try again, not end; and a listening socket that
// truly fails must be reported, not left to die quietly.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/write.hpp>
#include <csignal>
#include <filesystem>
#include <string>
#include <thread>

#include "loopback_socket.h"
#include "etcd_api/etcd_server.h"
#include "etcd_api/shared_port.h"
#include "store/embedded_store.h"

namespace zeppelin::etcd_api {
namespace {

namespace fs = std::filesystem;

std::atomic<int> g_delivered{0};
void count_signal(int) { g_delivered.fetch_add(1, std::memory_order_relaxed); }

// Sends SIGUSR1, handled without SA_RESTART, to every other thread of the
// process until destroyed. Threads started before it get it (the ones under
// test); the test's own thread blocks it from construction on, and so does
// the storm's thread, which inherits that mask.
class SignalStorm {
 public:
  SignalStorm() {
    struct sigaction action {};
    action.sa_handler = count_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: blocking calls fail with EINTR
    ::sigaction(SIGUSR1, &action, nullptr);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    ::pthread_sigmask(SIG_BLOCK, &set, &old_mask_);
    thread_ = std::thread([this] {
      const pid_t self = static_cast<pid_t>(::syscall(SYS_gettid));
      while (!stop_.load()) {
        for (const auto& entry : fs::directory_iterator("/proc/self/task")) {
          const pid_t tid = std::stoi(entry.path().filename().string());
          if (tid != self) ::syscall(SYS_tgkill, ::getpid(), tid, SIGUSR1);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  ~SignalStorm() {
    stop_.store(true);
    thread_.join();
    // What is still pending for this thread is delivered (and counted) here.
    ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
    // The handler stays: a signal sent just before the storm stopped may
    // reach a thread that has not run since, and by default SIGUSR1 would
    // end the test process.
  }

 private:
  sigset_t old_mask_{};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

using zeppelin::testing::connect_to;

// Sends `request` on a connection of its own and reads the answer until the
// server closes it (or nothing more comes within the timeout).
std::string exchange(int port, const std::string& request) {
  const int fd = connect_to(port);
  if (fd < 0) return "";
  std::string answer;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      answer.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return answer;
}

// An HTTP/1.1 handler, asynchronous on the port's loop: reads up to the end
// of the request headers and answers "ok".
class AnswerOk final : public PortConnection, public std::enable_shared_from_this<AnswerOk> {
 public:
  AnswerOk(boost::asio::ip::tcp::socket socket, SharedPort::ConnectionSlot slot)
      : socket_(std::move(socket)), slot_(std::move(slot)) {}

  void read() {
    socket_.async_read_some(boost::asio::buffer(buf_),
                            [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                              if (ec) return;
                              self->request_.append(self->buf_, n);
                              if (self->request_.find("\r\n\r\n") == std::string::npos) return self->read();
                              self->answer();
                            });
  }
  void close() override {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  void answer() {
    static constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    boost::asio::async_write(socket_, boost::asio::buffer(kOk),
                             [self = shared_from_this()](const boost::system::error_code&, size_t) {
                               boost::system::error_code ignored;
                               self->socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
                               self->close();
                             });
  }

  boost::asio::ip::tcp::socket socket_;
  SharedPort::ConnectionSlot slot_;
  char buf_[1024];
  std::string request_;
};

std::shared_ptr<PortConnection> answer_ok(boost::asio::ip::tcp::socket socket, SharedPort::ConnectionSlot slot) {
  auto connection = std::make_shared<AnswerOk>(std::move(socket), std::move(slot));
  connection->read();
  return connection;
}

void close_http2(int fd, const SharedPort::ConnectionSlot&) { ::close(fd); }

// This process's listening TCP socket on `port`, or -1.
int listening_socket(int port) {
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    int fd = -1;
    try {
      fd = std::stoi(entry.path().filename().string());
    } catch (const std::exception&) {
      continue;
    }
    int listening = 0;
    socklen_t length = sizeof listening;
    sockaddr_storage address{};
    socklen_t address_length = sizeof address;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || !listening) continue;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &address_length) != 0) continue;
    if (address.ss_family == AF_INET && ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port) == port) return fd;
  }
  return -1;
}

constexpr int kConnections = 300;

TEST(EtcdPortSignals, TheAcceptLoopGoesOnWhenSignalsInterruptIt) {
  auto port = SharedPort::bind("127.0.0.1:0");
  ASSERT_TRUE(port.ok()) << port.error().message;
  std::atomic<bool> failed{false};
  (*port)->start(
      {.http2 = close_http2, .http1 = answer_ok, .failed = [&failed](const std::string&) { failed = true; }});
  const int before = g_delivered.load();
  int answered = 0;
  {
    SignalStorm storm;
    for (int i = 0; i < kConnections; ++i) {
      const std::string answer = exchange((*port)->port(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      if (answer.find("200 OK") == std::string::npos) break;
      ++answered;
    }
  }
  EXPECT_EQ(answered, kConnections) << "the port stopped answering";
  EXPECT_GT(g_delivered.load() - before, 0) << "no signal reached a thread";
  EXPECT_FALSE(failed.load());
  EXPECT_NE(exchange((*port)->port(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n").find("200 OK"), std::string::npos);
  (*port)->stop();
}

TEST(EtcdPortSignals, AListeningSocketThatFailsIsReported) {
  auto port = SharedPort::bind("127.0.0.1:0");
  ASSERT_TRUE(port.ok()) << port.error().message;
  std::atomic<int> failures{0};
  (*port)->start({.http2 = close_http2, .http1 = answer_ok, .failed = [&failures](const std::string&) { ++failures; }});
  ASSERT_NE(exchange((*port)->port(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n").find("200 OK"), std::string::npos);
  // Shut down from under the accept loop (not by stop()): accept() fails with EINVAL from now on.
  const int fd = listening_socket((*port)->port());
  ASSERT_GE(fd, 0);
  ::shutdown(fd, SHUT_RDWR);
  for (int i = 0; i < 500 && failures.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(failures.load(), 1);
  (*port)->stop();
  EXPECT_EQ(failures.load(), 1);
}

// The whole etcd API, its JSON gateway on the port's event loops and gRPC
// behind it, every one of their threads under the storm.
TEST(EtcdPortSignals, TheGatewayAnswersEveryRequestWhileSignalsInterruptIt) {
  const fs::path dir = fs::temp_directory_path() / ("zeppelin-etcd-port-signals-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto store = store::EmbeddedStore::open(dir.string());
  ASSERT_TRUE(store.ok()) << store.error().message;
  EtcdServerOptions options;
  options.listen = "127.0.0.1:0";
  options.snapshot_dir = dir.string();
  options.cluster_id = 11;
  options.member_id = 22;
  std::atomic<bool> failed{false};
  options.on_failure = [&failed](const std::string&) { failed = true; };
  auto server = EtcdServer::start(**store, options);
  ASSERT_TRUE(server.ok()) << server.error().message;
  const int port = std::stoi((*server)->address().substr((*server)->address().rfind(':') + 1));
  const std::string body = "{}";
  const std::string request = "POST /v3/maintenance/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                              "Content-Type: application/json\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  int answered = 0;
  std::string last;
  {
    SignalStorm storm;
    for (int i = 0; i < kConnections / 2; ++i) {
      last = exchange(port, request);
      if (last.find("200 OK") == std::string::npos || last.find("\"header\"") == std::string::npos) break;
      ++answered;
    }
  }
  EXPECT_EQ(answered, kConnections / 2) << "last answer: " << last;
  EXPECT_FALSE(failed.load());
  (*server)->shutdown();
  server->reset();
  store->reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace zeppelin::etcd_api
