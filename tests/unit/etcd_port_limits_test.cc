// The etcd port under many connections: idle ones and gateway watches cost
// no thread each, a connection that says nothing is closed after the idle
// timeout while a silent watch is not, and the connection cap turns the
// excess away. Over TLS: gRPC (ALPN h2) and the gateway (http/1.1) answer
// verified clients, plaintext gets no answer, a client that never completes
// its handshake is closed after the idle timeout, and TLS connections count
// towards the cap. Real sockets on loopback against the whole etcd API.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/fs_util.h"
#include "common/tls.h"
#include "etcd_api/etcd_server.h"
#include "loopback_socket.h"
#include "rpc.grpc.pb.h"
#include "store/embedded_store.h"

namespace zeppelin::etcd_api {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr int kManyConnections = 2000;
// The port's loops, gRPC's pollers and executors, the front's loops, the
// store's threads: a few dozen whatever the connections.
constexpr int kMaxThreads = 64;

int thread_count() {
  return static_cast<int>(std::distance(fs::directory_iterator("/proc/self/task"), fs::directory_iterator()));
}

// 2,000 connections on both ends need more than the usual soft limit of 1,024 descriptors.
void raise_descriptor_limit() {
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  limit.rlim_cur = limit.rlim_max;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
  ASSERT_GE(limit.rlim_cur, rlim_t{3 * kManyConnections + 200}) << "too few descriptors for this test";
}

using zeppelin::testing::connect_to;

bool send_all(int fd, const std::string& bytes) {
  return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

std::string post(const std::string& path, const std::string& body, bool keep_alive = false) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         (keep_alive ? "" : "Connection: close\r\n") + "Content-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// Reads until `needle` has come (true), or the connection ends or times out (false).
bool read_until(int fd, const std::string& needle, std::string* seen = nullptr) {
  std::string got;
  char buf[4096];
  while (got.find(needle) == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  if (seen) *seen = got;
  return got.find(needle) != std::string::npos;
}

// Sends one request on a connection of its own and returns all of the answer.
std::string request_once(int port, const std::string& request) {
  const int fd = connect_to(port);
  if (fd < 0) return "";
  std::string answer;
  if (send_all(fd, request)) read_until(fd, "\r\n\r\n{never}", &answer);
  ::close(fd);
  return answer;
}

// How a connection the server is expected to close ends for the client.
enum class Ending { kClosed, kStillOpen, kGotBytes };

Ending wait_for_close(int fd) {
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, 0);
  if (n == 0 || (n < 0 && errno == ECONNRESET)) return Ending::kClosed;
  if (n > 0) return Ending::kGotBytes;
  return Ending::kStillOpen;  // the read timed out
}

struct CtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};

// A blocking TLS client connection, verified against `ca`, offering `alpn`.
class TlsClient {
 public:
  TlsClient(int fd, const std::string& ca, const std::string& alpn) : fd_(fd) {
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_load_verify_locations(ctx_.get(), ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    ssl_.reset(SSL_new(ctx_.get()));
    const std::string wire = std::string(1, static_cast<char>(alpn.size())) + alpn;
    SSL_set_alpn_protos(ssl_.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
    SSL_set1_host(ssl_.get(), "127.0.0.1");
    SSL_set_fd(ssl_.get(), fd_);
    connected_ = SSL_connect(ssl_.get()) == 1;
  }
  ~TlsClient() { ::close(fd_); }

  bool connected() const { return connected_; }
  std::string alpn() const {
    const unsigned char* p = nullptr;
    unsigned int n = 0;
    SSL_get0_alpn_selected(ssl_.get(), &p, &n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  bool send(const std::string& bytes) {
    return SSL_write(ssl_.get(), bytes.data(), static_cast<int>(bytes.size())) == static_cast<int>(bytes.size());
  }
  bool read_until(const std::string& needle) {
    std::string got;
    char buf[4096];
    while (got.find(needle) == std::string::npos) {
      const int n = SSL_read(ssl_.get(), buf, sizeof buf);
      if (n <= 0) return false;
      got.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

 private:
  int fd_;
  std::unique_ptr<SSL_CTX, CtxFree> ctx_;
  struct SslFree {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
  };
  std::unique_ptr<SSL, SslFree> ssl_;
  bool connected_ = false;
};

class EtcdPortLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    raise_descriptor_limit();
    dir_ = fs::temp_directory_path() / ("zeppelin-etcd-port-limits-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    auto store = store::EmbeddedStore::open(dir_.string());
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
  }
  void TearDown() override {
    for (int fd : clients_) ::close(fd);
    if (server_) server_->shutdown();
    server_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  void start(EtcdServerOptions options = {}) {
    options.listen = "127.0.0.1:0";
    options.snapshot_dir = dir_.string();
    options.cluster_id = 1;
    options.member_id = 2;
    auto server = EtcdServer::start(*store_, options);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(*server);
    port_ = std::stoi(server_->address().substr(server_->address().rfind(':') + 1));
  }

  // The same over TLS, with a certificate of a private CA in dir_/tls (ca_).
  void start_tls(EtcdServerOptions options = {}) {
    std::signal(SIGPIPE, SIG_IGN);  // as the server does: OpenSSL writes with write(2)
    auto files = ensure_generated_certificate((dir_ / "tls").string(), default_sans("127.0.0.1", {}), "etcd-server");
    ASSERT_TRUE(files.ok()) << files.error().message;
    auto tls = TlsContextSource::load(*files, {"h2", "http/1.1"});
    ASSERT_TRUE(tls.ok()) << tls.error().message;
    tls_ = std::move(*tls);
    ca_ = (dir_ / "tls" / "ca.pem").string();
    options.tls = tls_.get();
    start(options);
  }

  grpc::Status grpc_range(const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
    auto kv = etcdserverpb::KV::NewStub(grpc::CreateChannel(server_->address(), credentials));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(5));
    etcdserverpb::RangeRequest request;
    request.set_key("foo");
    etcdserverpb::RangeResponse response;
    return kv->Range(&ctx, request, &response);
  }

  // A client connection closed by TearDown.
  int open_client(milliseconds read_timeout = seconds(10)) {
    const int fd = connect_to(port_, read_timeout);
    if (fd >= 0) clients_.push_back(fd);
    return fd;
  }

  std::string gateway_put(const std::string& key64, const std::string& value64) {
    return request_once(port_, post("/v3/kv/put", R"({"key":")" + key64 + R"(","value":")" + value64 + R"("})"));
  }

  // A watch on `key64` over the gateway, once its creation is confirmed; -1 if it failed.
  int open_gateway_watch(const std::string& key64, milliseconds read_timeout = seconds(10)) {
    const int fd = open_client(read_timeout);
    if (fd < 0) return -1;
    if (!send_all(fd, post("/v3/watch", R"({"create_request":{"key":")" + key64 + R"("}})", true))) return -1;
    return read_until(fd, "\"created\":true") ? fd : -1;
  }

  std::string grpc_get(const std::string& key) {
    auto kv = etcdserverpb::KV::NewStub(grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
    etcdserverpb::RangeRequest request;
    request.set_key(key);
    etcdserverpb::RangeResponse response;
    const grpc::Status status = kv->Range(&ctx, request, &response);
    if (!status.ok()) return "error: " + status.error_message();
    return response.kvs_size() == 1 ? response.kvs(0).value() : "";
  }

  fs::path dir_;
  std::unique_ptr<store::EmbeddedStore> store_;
  std::unique_ptr<TlsContextSource> tls_;  // outlives server_
  std::string ca_;
  std::unique_ptr<EtcdServer> server_;
  int port_ = 0;
  std::vector<int> clients_;
};

TEST_F(EtcdPortLimitsTest, IdleConnectionsCostNoThreadEach) {
  start();
  const int threads_before = thread_count();
  for (int i = 0; i < kManyConnections; ++i) ASSERT_GE(open_client(), 0) << "connection " << i;
  // The port accepts in order: once a later connection is answered, the idle ones are all in.
  EXPECT_NE(gateway_put("Zm9v", "YmFy").find("200 OK"), std::string::npos);
  EXPECT_EQ(grpc_get("foo"), "bar");
  const int threads_after = thread_count();
  EXPECT_LT(threads_after, kMaxThreads) << "before the connections: " << threads_before;
  // Still open: none was turned away or timed out.
  char byte;
  EXPECT_EQ(::recv(clients_.front(), &byte, 1, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
}

TEST_F(EtcdPortLimitsTest, GatewayWatchesCostNoThreadEach) {
  start();
  std::vector<int> watches;
  for (int i = 0; i < kManyConnections; ++i) {
    const int fd = open_gateway_watch("d2F0Y2hlZA==");  // "watched"
    ASSERT_GE(fd, 0) << "watch " << i;
    watches.push_back(fd);
  }
  EXPECT_LT(thread_count(), kMaxThreads);
  ASSERT_NE(gateway_put("d2F0Y2hlZA==", "ZXZlbnQ=").find("200 OK"), std::string::npos);  // "event"
  int delivered = 0;
  for (size_t i = 0; i < watches.size(); i += 97) {
    if (read_until(watches[i], "\"value\":\"ZXZlbnQ=\"")) ++delivered;
  }
  EXPECT_EQ(delivered, static_cast<int>((watches.size() + 96) / 97));
  EXPECT_LT(thread_count(), kMaxThreads);
}

TEST_F(EtcdPortLimitsTest, IdleConnectionsAreClosedButSilentWatchesAreNot) {
  EtcdServerOptions options;
  options.idle_timeout = milliseconds(300);
  start(options);
  const int watch = open_gateway_watch("c2lsZW50", seconds(5));  // "silent"
  ASSERT_GE(watch, 0);
  const auto opened = Clock::now();
  const int silent = open_client(seconds(5));
  ASSERT_GE(silent, 0);
  EXPECT_EQ(wait_for_close(silent), Ending::kClosed) << "a connection that never spoke";
  EXPECT_GE(Clock::now() - opened, milliseconds(250));

  // A kept-alive connection is closed once it has been idle after its answer.
  const int kept = open_client(seconds(5));
  ASSERT_GE(kept, 0);
  ASSERT_TRUE(send_all(kept, post("/v3/kv/range", R"({"key":"Zm9v"})", true)));
  std::string answer;
  ASSERT_TRUE(read_until(kept, "\"header\"", &answer)) << answer;
  EXPECT_EQ(wait_for_close(kept), Ending::kClosed) << "a kept-alive connection between requests";

  // The watch stays silent for several idle timeouts, and still delivers.
  std::this_thread::sleep_until(opened + 3 * options.idle_timeout);
  ASSERT_NE(gateway_put("c2lsZW50", "c3RpbGwgdGhlcmU=").find("200 OK"), std::string::npos);
  EXPECT_TRUE(read_until(watch, "\"value\":\"c3RpbGwgdGhlcmU=\""));
}

// The frame types an HTTP/2 client reads until the connection ends (or the read times out).
std::vector<int> http2_frame_types(int fd) {
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(n));
  std::vector<int> types;
  for (size_t at = 0; at + 9 <= got.size();) {
    const size_t length = (static_cast<uint8_t>(got[at]) << 16) | (static_cast<uint8_t>(got[at + 1]) << 8) |
                          static_cast<uint8_t>(got[at + 2]);
    types.push_back(static_cast<uint8_t>(got[at + 3]));
    at += 9 + length;
  }
  return types;
}

TEST_F(EtcdPortLimitsTest, Http2ConnectionsWithNoCallGetGoawayButOpenStreamsKeepThem) {
  EtcdServerOptions options;
  options.idle_timeout = milliseconds(300);
  start(options);
  auto channel = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
  auto watch_stub = etcdserverpb::Watch::NewStub(channel);
  grpc::ClientContext watch_ctx;
  auto watch = watch_stub->Watch(&watch_ctx);
  etcdserverpb::WatchRequest create;
  create.mutable_create_request()->set_key("quiet");
  ASSERT_TRUE(watch->Write(create));
  etcdserverpb::WatchResponse created;
  ASSERT_TRUE(watch->Read(&created));
  ASSERT_TRUE(created.created());

  // A client that opens HTTP/2 (preface, empty SETTINGS) and never calls.
  const auto opened = Clock::now();
  const int silent = open_client(seconds(5));
  ASSERT_GE(silent, 0);
  ASSERT_TRUE(send_all(silent, std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + std::string("\0\0\0\4\0\0\0\0\0", 9)));
  const std::vector<int> types = http2_frame_types(silent);
  EXPECT_GE(Clock::now() - opened, milliseconds(250));
  ASSERT_FALSE(types.empty());
  EXPECT_EQ(types.back(), 0x7) << "GOAWAY last, then the server closes";

  // A unary client idles out too, and its channel simply reconnects for the next call.
  // (A channel of its own: channels to one address otherwise share a connection.)
  grpc::ChannelArguments own_connection;
  own_connection.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto kv = etcdserverpb::KV::NewStub(
      grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(), own_connection));
  for (int round = 0; round < 2; ++round) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
    etcdserverpb::PutRequest put;
    put.set_key("quiet");
    put.set_value("v" + std::to_string(round));
    etcdserverpb::PutResponse response;
    EXPECT_TRUE(kv->Put(&ctx, put, &response).ok()) << "round " << round;
    std::this_thread::sleep_for(2 * options.idle_timeout);
  }

  // The watch, silent for several idle timeouts on its connection, still delivers.
  etcdserverpb::WatchResponse events;
  ASSERT_TRUE(watch->Read(&events));
  ASSERT_EQ(events.events_size(), 1);
  EXPECT_EQ(events.events(0).kv().value(), "v0");
  watch_ctx.TryCancel();
}

// The gateway's calls wait for their answers without a thread, and a Lock
// waiting its turn still learns that its client hung up.
TEST_F(EtcdPortLimitsTest, ALockWaiterThatHangsUpGivesUpItsTurn) {
  start();
  auto grant = [this] {
    const std::string answer = request_once(port_, post("/v3/lease/grant", R"({"TTL":60})"));
    const auto at = answer.find("\"ID\":\"");
    return at == std::string::npos ? std::string() : answer.substr(at + 6, answer.find('"', at + 6) - at - 6);
  };
  auto lock_request = [](const std::string& lease) {
    return post("/v3/lock/lock", R"({"name":"bG9jaw==","lease":")" + lease + R"("})");  // "lock"
  };
  const std::string holder_lease = grant(), waiter_lease = grant(), next_lease = grant();
  ASSERT_FALSE(holder_lease.empty());
  const std::string held = request_once(port_, lock_request(holder_lease));
  const auto key_at = held.find("\"key\":\"");
  ASSERT_NE(key_at, std::string::npos) << held;
  const std::string holder_key = held.substr(key_at + 7, held.find('"', key_at + 7) - key_at - 7);

  const int waiter = open_client(seconds(1));
  ASSERT_TRUE(send_all(waiter, lock_request(waiter_lease)));
  std::string waited;
  EXPECT_FALSE(read_until(waiter, "\"key\"", &waited)) << "the lock is held: " << waited;
  ::shutdown(waiter, SHUT_RDWR);  // hangs up while waiting

  // The waiter's claim goes once the server sees the call cancelled (it looks
  // every 200 ms); unlocking before that would hand it the turn.
  const std::string claims = post("/v3/kv/range", R"({"key":"bG9jay8=","range_end":"bG9jazA=","count_only":true})");
  std::string counted;
  for (const auto deadline = Clock::now() + seconds(10); Clock::now() < deadline;) {
    counted = request_once(port_, claims);
    if (counted.find("\"count\":\"1\"") != std::string::npos) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_NE(counted.find("\"count\":\"1\""), std::string::npos) << "the waiter's claim is still there: " << counted;
  ASSERT_NE(request_once(port_, post("/v3/lock/unlock", R"({"key":")" + holder_key + R"("})")).find("200 OK"),
            std::string::npos);
  // The next contender gets the lock at once (the waiter's lease lives 60 s).
  const int next = open_client(seconds(10));
  ASSERT_TRUE(send_all(next, lock_request(next_lease)));
  std::string answer;
  EXPECT_TRUE(read_until(next, "\"key\"", &answer)) << answer;
}

TEST_F(EtcdPortLimitsTest, ConnectionsBeyondTheCapAreClosed) {
  EtcdServerOptions options;
  options.max_connections = 50;
  start(options);
  std::vector<int> held;
  for (int i = 0; i < options.max_connections; ++i) {
    held.push_back(open_client(seconds(5)));
    ASSERT_GE(held.back(), 0);
  }
  const int excess = open_client(seconds(5));
  ASSERT_GE(excess, 0);  // the kernel completes the handshake; the port then closes it
  EXPECT_EQ(wait_for_close(excess), Ending::kClosed);
  // The connections within the cap are served.
  ASSERT_TRUE(send_all(held.front(), post("/v3/kv/range", R"({"key":"Zm9v"})")));
  EXPECT_TRUE(read_until(held.front(), "\"header\""));
  // Once they are gone, new ones are served again (the port learns of the close a moment later).
  for (int fd : held) ::shutdown(fd, SHUT_RDWR);
  std::string answer;
  for (const auto deadline = Clock::now() + seconds(10); Clock::now() < deadline;) {
    answer = request_once(port_, post("/v3/kv/range", R"({"key":"Zm9v"})"));
    if (answer.find("200 OK") != std::string::npos) break;
  }
  EXPECT_NE(answer.find("200 OK"), std::string::npos) << answer;
}

// ---- Over TLS (--etcd-tls).

TEST_F(EtcdPortLimitsTest, TlsGrpcAndGatewayAnswerVerifiedClientsOnly) {
  start_tls();
  grpc::SslCredentialsOptions ssl;
  auto ca = read_file(ca_);
  ASSERT_TRUE(ca.ok());
  ssl.pem_root_certs = *ca;
  EXPECT_TRUE(grpc_range(grpc::SslCredentials(ssl)).ok());
  EXPECT_FALSE(grpc_range(grpc::InsecureChannelCredentials()).ok());

  TlsClient gateway(connect_to(port_), ca_, "http/1.1");
  ASSERT_TRUE(gateway.connected());
  EXPECT_EQ(gateway.alpn(), "http/1.1");
  ASSERT_TRUE(gateway.send(post("/v3/kv/range", R"({"key":"Zm9v"})")));
  EXPECT_TRUE(gateway.read_until("\"header\""));

  const int plain = connect_to(port_, seconds(5));
  ASSERT_GE(plain, 0);
  const std::string request = post("/v3/kv/range", R"({"key":"Zm9v"})");
  ASSERT_EQ(::send(plain, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  EXPECT_TRUE(wait_for_close(plain) == Ending::kClosed) << "a plaintext request on a TLS port";
  ::close(plain);
}

TEST_F(EtcdPortLimitsTest, TlsClientThatNeverHandshakesIsClosedAfterTheIdleTimeout) {
  EtcdServerOptions options;
  options.idle_timeout = milliseconds(300);
  start_tls(options);
  const auto opened = Clock::now();
  const int silent = connect_to(port_, seconds(5));
  ASSERT_GE(silent, 0);
  EXPECT_TRUE(wait_for_close(silent) == Ending::kClosed);
  EXPECT_GE(Clock::now() - opened, milliseconds(250));
  ::close(silent);
}

TEST_F(EtcdPortLimitsTest, TlsConnectionsCountTowardsTheCap) {
  EtcdServerOptions options;
  options.max_connections = 4;
  start_tls(options);
  std::vector<std::unique_ptr<TlsClient>> held;
  for (const char* alpn : {"h2", "h2", "http/1.1", "http/1.1"}) {
    held.push_back(std::make_unique<TlsClient>(connect_to(port_, seconds(5)), ca_, alpn));
    ASSERT_TRUE(held.back()->connected());
    EXPECT_EQ(held.back()->alpn(), alpn);
  }
  const int excess = connect_to(port_, seconds(5));
  ASSERT_GE(excess, 0);
  EXPECT_TRUE(wait_for_close(excess) == Ending::kClosed) << "a connection beyond the cap";
  ::close(excess);
  ASSERT_TRUE(held.back()->send(post("/v3/kv/range", R"({"key":"Zm9v"})")));
  EXPECT_TRUE(held.back()->read_until("\"header\"")) << "a connection within the cap";
}

}  // namespace
}  // namespace zeppelin::etcd_api
