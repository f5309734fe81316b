// The etcd v3 gRPC API (KV, Watch, Lease, Maintenance, Lock, Election, Auth) served from a Store,
// so that etcd clients (etcdctl, clientv3, jetcd, python-etcd3...) work
// against zeppelin unchanged.
//
// KV's unary calls are answered on the HTTP/2 front's event loops
// (grpc_front.h), the other calls by gRPC on its own threads, the JSON
// gateway on the port's event loops (shared_port.h); the Store is
// thread-safe, and the server's event loop is not involved.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "store/store.h"

namespace zeppelin {
class TlsContextSource;
}

namespace zeppelin::etcd_api {

class AuthStore;

// etcd itself serves as many connections as it has descriptors; this bounds
// what idle clients can make the server hold (a descriptor and a few KiB each).
inline constexpr int kDefaultEtcdMaxConnections = 10000;
// As the control API's (docs/api.md): long enough for a keep-alive client
// between two calls, short enough that forgotten connections do not pile up.
inline constexpr std::chrono::milliseconds kDefaultEtcdIdleTimeout = std::chrono::minutes(2);

struct EtcdServerOptions {
  std::string listen;        // "HOST:PORT"; port 0 picks a free one
  std::string snapshot_dir;  // where Maintenance.Snapshot stages its file
  // Users, roles and the auth switch (JSON, outside the key space); empty: in memory only.
  std::string auth_file;
  // Runs on the users and roles once they are loaded and before the port
  // opens, so that no request sees them unprepared (the server locks the
  // store down here); an error fails start().
  std::function<Status(AuthStore&)> prepare_auth;
  uint64_t cluster_id = 0;   // reported in every ResponseHeader
  uint64_t member_id = 0;
  // Called once, on one of the API's threads, if its port stops accepting
  // connections for good (the listening socket failed; logged as an error):
  // the owner should stop rather than serve on without its etcd API.
  std::function<void(const std::string& reason)> on_failure;
  // Names the JSON gateway answers to in Host besides the listen address and
  // loopback names (common/http_guard.h); gRPC is not affected.
  std::vector<std::string> allowed_hosts;
  // etcd's --max-txn-ops, counted over every nesting level of a transaction together.
  int max_txn_ops = 128;
  // A Range or Txn whose response passes this many bytes (keys and values)
  // while it is built fails with RESOURCE_EXHAUSTED (etcd has no such cap).
  int64_t max_response_bytes = int64_t{256} << 20;
  // Connections open at once on the port, gRPC and gateway together; more
  // are closed as soon as they are accepted (see shared_port.h).
  int max_connections = kDefaultEtcdMaxConnections;
  // A connection that sends nothing for this long before its first request,
  // or has no request in flight for this long (gateway: between two requests;
  // gRPC: no stream open, ended with GOAWAY), is closed. Calls and streams in
  // flight (a silent watch) are never timed out.
  std::chrono::milliseconds idle_timeout = kDefaultEtcdIdleTimeout;
  // TLS on the port (common/tls.h; must outlive the server): every connection,
  // gRPC and gateway, is TLS 1.2 or later, and plaintext ones are closed. Null: plaintext.
  // REQUIRES with TLS: SIGPIPE ignored in the process (OpenSSL writes with write(2)).
  TlsContextSource* tls = nullptr;
};

class EtcdServer {
 public:
  // Listens and serves until destroyed. `store` must outlive the server.
  static Result<std::unique_ptr<EtcdServer>> start(store::Store& store, const EtcdServerOptions& options);
  virtual ~EtcdServer() = default;
  // "HOST:PORT" with the port actually bound.
  virtual std::string address() const = 0;
  // The users, roles and tokens the API checks calls against.
  virtual AuthStore& auth() = 0;
  // Ends every call (open watch and keep-alive streams included) and stops listening.
  virtual void shutdown() = 0;
};

}  // namespace zeppelin::etcd_api
