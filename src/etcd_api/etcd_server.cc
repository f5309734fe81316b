#include "etcd_api/etcd_server.h"

#include <absl/synchronization/mutex.h>
#include <grpcpp/create_channel_posix.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/server_posix.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "etcd_api/convert.h"
#include "etcd_api/grpc_front.h"
#include "etcd_api/json_gateway.h"
#include "etcd_api/services.h"
#include "etcd_api/shared_port.h"

namespace zeppelin::etcd_api {

namespace {

constexpr int kMaxHandlerThreads = 4096;
// The port's event loops: they accept, sniff and serve the JSON gateway, whose
// work is parsing and printing JSON; KV's calls wait for the store without them.
constexpr int kGatewayEventLoops = 2;

class EtcdServerImpl final : public EtcdServer {
 public:
  EtcdServerImpl(store::Store& store, EtcdServerOptions options, std::unique_ptr<AuthStore> auth)
      : options_(std::move(options)),
        auth_(std::move(auth)),
        header_(store, options_),
        kv_calls_(store, header_, *auth_, options_),
        kv_(kv_calls_),
        watch_(store, header_, *auth_),
        lease_(store, header_, *auth_),
        maintenance_(store, header_, options_, *auth_),
        lock_(store, header_, *auth_),
        election_(store, header_, *auth_),
        auth_service_(*auth_, header_) {}

  ~EtcdServerImpl() override { shutdown(); }

  Status start() {
    // gRPC and the JSON gateway share one port, as on etcd: the port is ours,
    // and connections that speak HTTP/2 are handed to gRPC.
    SharedPortOptions port_options;
    port_options.event_loops = kGatewayEventLoops;
    port_options.max_connections = options_.max_connections;
    port_options.idle_timeout = options_.idle_timeout;
    port_options.tls = options_.tls;
    auto port = SharedPort::bind(options_.listen, port_options);
    if (!port) return port.error();
    port_ = std::move(*port);
    // gRPC's locks are abseil's, and Debian's abseil records every lock
    // order to detect deadlock cycles: a debug aid that measured a few
    // percent of the server's CPU per put. Not a lock of ours is an absl::Mutex.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    grpc::ServerBuilder builder;
    builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxGrpcMessageBytes));
    builder.SetMaxSendMessageSize(INT32_MAX);
    // etcd clients ping every few seconds on idle watch streams; let them.
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    // gRPC sets SO_REUSEPORT by default: a second server on the same port
    // would silently take half of the connections. Fail to start instead.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    // channelz keeps per-socket and per-call statistics for a debug service
    // that is not registered here: bookkeeping on every message for nothing.
    builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
    // Handlers block on fsync (group commit) and on locks and elections: let
    // many run at once, so that concurrent writers share commits.
    grpc::ResourceQuota quota("zeppelin-etcd-api");
    quota.SetMaxThreads(kMaxHandlerThreads);
    builder.SetResourceQuota(quota);
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 4);
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 16);
    builder.RegisterService(&kv_);
    builder.RegisterService(&watch_);
    builder.RegisterService(&lease_);
    builder.RegisterService(&maintenance_);
    builder.RegisterService(&lock_);
    builder.RegisterService(&election_);
    builder.RegisterService(&auth_service_);
    server_ = builder.BuildAndStart();
    if (!server_) return make_error(Errc::kUnavailable, "cannot start the etcd API's gRPC server");
    const std::string host = options_.listen.substr(0, options_.listen.rfind(':'));
    address_ = host + ":" + std::to_string(port_->port());
    // The gateway calls KV in process; for the rest it is a gRPC client of
    // this very server over loopback HTTP/2 (not an in-process channel, which
    // has no flow control: a watcher that stops reading must push back on its
    // stream, as gRPC clients do).
    std::string loopback = address_;
    if (host.empty() || host == "0.0.0.0") loopback = "127.0.0.1:" + std::to_string(port_->port());
    if (host == "[::]" || host == "::") loopback = "[::1]:" + std::to_string(port_->port());
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(INT32_MAX);
    std::shared_ptr<grpc::Channel> channel;
    if (options_.tls) {
      // A TLS port takes no plaintext client, this one included: the
      // channel's one connection is a socket pair straight to the server.
      int fds[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0) {
        return make_error(Errc::kUnavailable, std::string("socketpair for the etcd JSON gateway: ") + strerror(errno));
      }
      grpc::AddInsecureChannelFromFd(server_.get(), fds[0]);
      channel = grpc::CreateCustomInsecureChannelFromFd(loopback, fds[1], args);
    } else {
      channel = grpc::CreateCustomChannel(loopback, grpc::InsecureChannelCredentials(), args);
    }
    gateway_ = std::make_unique<JsonGateway>(std::move(channel), kv_calls_, HostGuard(address_, options_.allowed_hosts),
                                             options_.idle_timeout);
    // HTTP/2 connections go to the front, which answers KV's unary calls
    // itself and relays the rest to the gRPC server.
    front_ = GrpcFront::start(
        kv_calls_, [this](int fd) { grpc::AddInsecureChannelFromFd(server_.get(), fd); },
        static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u)), options_.idle_timeout);
    SharedPort::Handlers handlers;
    handlers.http2 = [this](int fd, SharedPort::ConnectionSlot slot) { front_->serve(fd, std::move(slot)); };
    handlers.http1 = [this](boost::asio::ip::tcp::socket socket, SharedPort::ConnectionSlot slot) {
      return gateway_->serve(std::move(socket), std::move(slot));
    };
    handlers.http2_tls = [this](int fd, SslPtr ssl, SharedPort::ConnectionSlot slot) {
      front_->serve_tls(fd, std::move(ssl), std::move(slot));
    };
    handlers.http1_tls = [this](TlsStream stream, SharedPort::ConnectionSlot slot) {
      return gateway_->serve(std::move(stream), std::move(slot));
    };
    handlers.failed = [this](const std::string& reason) {
      if (options_.on_failure) options_.on_failure(reason);
    };
    port_->start(std::move(handlers));
    return ok_status();
  }

  std::string address() const override { return address_; }
  AuthStore& auth() override { return *auth_; }

  void shutdown() override {
    if (!server_) return;
    // No new relays to a server that is going; then a deadline of now cancels
    // open streams (watches, keep-alives), the gateway's included, so that the
    // gateway's connections can end.
    front_->stop_relaying();
    server_->Shutdown(std::chrono::system_clock::now());
    port_->stop();
    server_->Wait();
    front_->stop();
    server_.reset();
  }

 private:
  EtcdServerOptions options_;
  std::unique_ptr<AuthStore> auth_;
  Header header_;
  KvCalls kv_calls_;
  KvService kv_;
  WatchService watch_;
  LeaseService lease_;
  MaintenanceService maintenance_;
  LockService lock_;
  ElectionService election_;
  std::unique_ptr<SharedPort> port_;
  AuthService auth_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<GrpcFront> front_;
  std::unique_ptr<JsonGateway> gateway_;
  std::string address_;
};

}  // namespace

Result<std::unique_ptr<EtcdServer>> EtcdServer::start(store::Store& store, const EtcdServerOptions& options) {
  AuthOptions auth_options;
  auth_options.path = options.auth_file;
  auto auth = AuthStore::open(std::move(auth_options));
  if (!auth) return auth.error();
  if (options.prepare_auth) {
    if (auto s = options.prepare_auth(**auth); !s) return s.error();
  }
  auto server = std::make_unique<EtcdServerImpl>(store, options, std::move(*auth));
  if (auto s = server->start(); !s) return s.error();
  return std::unique_ptr<EtcdServer>(std::move(server));
}

}  // namespace zeppelin::etcd_api
