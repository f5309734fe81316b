// The etcd port over TLS: gRPC (ALPN h2) and the JSON gateway (http/1.1)
// answer verified clients; plaintext clients get no answer; a client that
// connects and never completes a handshake is closed after the idle timeout;
// TLS connections count towards the connection cap. Real sockets on loopback,
// a certificate of the private CA (common/tls.h).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
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
using zeppelin::testing::connect_to;

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

// Whether the server closes `fd` (rather than answer or leave it open) within its read timeout.
bool closed_by_server(int fd) {
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

std::string range_request() {
  const std::string body = R"({"key":"Zm9v"})";
  return "POST /v3/kv/range HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

class EtcdPortTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);  // as the server does: OpenSSL writes with write(2)
    dir_ = fs::temp_directory_path() / ("zeppelin-etcd-port-tls-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    auto store = store::EmbeddedStore::open((dir_ / "store").string());
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
    auto files = ensure_generated_certificate((dir_ / "tls").string(), default_sans("127.0.0.1", {}), "etcd-server");
    ASSERT_TRUE(files.ok()) << files.error().message;
    auto tls = TlsContextSource::load(*files, {"h2", "http/1.1"});
    ASSERT_TRUE(tls.ok()) << tls.error().message;
    tls_ = std::move(*tls);
    ca_ = (dir_ / "tls" / "ca.pem").string();
  }
  void TearDown() override {
    if (server_) server_->shutdown();
    server_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  void start(EtcdServerOptions options = {}) {
    options.listen = "127.0.0.1:0";
    options.snapshot_dir = (dir_ / "store").string();
    options.cluster_id = 1;
    options.member_id = 2;
    options.tls = tls_.get();
    auto server = EtcdServer::start(*store_, options);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(*server);
    port_ = std::stoi(server_->address().substr(server_->address().rfind(':') + 1));
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

  fs::path dir_;
  std::unique_ptr<store::EmbeddedStore> store_;
  std::unique_ptr<TlsContextSource> tls_;
  std::string ca_;
  std::unique_ptr<EtcdServer> server_;
  int port_ = 0;
};

TEST_F(EtcdPortTlsTest, GrpcAndGatewayAnswerOverTlsOnly) {
  start();
  grpc::SslCredentialsOptions ssl;
  auto ca = read_file(ca_);
  ASSERT_TRUE(ca.ok());
  ssl.pem_root_certs = *ca;
  EXPECT_TRUE(grpc_range(grpc::SslCredentials(ssl)).ok());
  EXPECT_FALSE(grpc_range(grpc::InsecureChannelCredentials()).ok());

  TlsClient gateway(connect_to(port_), ca_, "http/1.1");
  ASSERT_TRUE(gateway.connected());
  EXPECT_EQ(gateway.alpn(), "http/1.1");
  ASSERT_TRUE(gateway.send(range_request()));
  EXPECT_TRUE(gateway.read_until("\"header\""));

  const int plain = connect_to(port_, seconds(5));
  ASSERT_GE(plain, 0);
  const std::string request = range_request();
  ASSERT_EQ(::send(plain, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  EXPECT_TRUE(closed_by_server(plain)) << "a plaintext request on a TLS port";
  ::close(plain);
}

TEST_F(EtcdPortTlsTest, AClientThatNeverHandshakesIsClosedAfterTheIdleTimeout) {
  EtcdServerOptions options;
  options.idle_timeout = milliseconds(300);
  start(options);
  const auto opened = Clock::now();
  const int silent = connect_to(port_, seconds(5));
  ASSERT_GE(silent, 0);
  EXPECT_TRUE(closed_by_server(silent));
  EXPECT_GE(Clock::now() - opened, milliseconds(250));
  ::close(silent);
}

TEST_F(EtcdPortTlsTest, TlsConnectionsCountTowardsTheCap) {
  EtcdServerOptions options;
  options.max_connections = 4;
  start(options);
  std::vector<std::unique_ptr<TlsClient>> held;
  for (const char* alpn : {"h2", "h2", "http/1.1", "http/1.1"}) {
    held.push_back(std::make_unique<TlsClient>(connect_to(port_, seconds(5)), ca_, alpn));
    ASSERT_TRUE(held.back()->connected());
    EXPECT_EQ(held.back()->alpn(), alpn);
  }
  const int excess = connect_to(port_, seconds(5));
  ASSERT_GE(excess, 0);
  EXPECT_TRUE(closed_by_server(excess)) << "a connection beyond the cap";
  ::close(excess);
  ASSERT_TRUE(held.back()->send(range_request()));
  EXPECT_TRUE(held.back()->read_until("\"header\"")) << "a connection within the cap";
}

}  // namespace
}  // namespace zeppelin::etcd_api
