// The composition root: picks the concrete driver and coordination store
// (desired state, service discovery and the etcd API all live on it), wires
// them into the supervisor and the API, and runs the event loop until stopped.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "spec/parser.h"
#include "supervisor/supervisor.h"

namespace zeppelin::server {

// Which coordination store the server keeps (`--store`), and how to reach an external one.
struct StoreOptions {
  std::string backend = "embedded";  // "embedded" (HOME/store) or "etcd"
  std::string etcd_endpoints;        // with "etcd": URL[,URL...]
  std::string etcd_prefix = "/zeppelin/";
  std::string etcd_user;
  std::string etcd_password;         // taken from the variable named by --etcd-password-env
  std::string etcd_cacert;
  std::string etcd_cert;
  std::string etcd_key;
  // The etcd API the server serves (always, for the embedded store) requires
  // auth unless `insecure` (--insecure-store, loopback only).
  bool insecure = false;
  // --etcd-plaintext: the etcd port may listen beyond loopback without TLS
  // (auth stays on), for a network guarded otherwise.
  bool etcd_plaintext = false;
  // --etcd-tls: the etcd port serves TLS only, with a certificate the CA under
  // HOME/tls issues (etcd-server.pem), or with --etcd-tls-cert/--etcd-tls-key
  // (which imply it; re-read when they change), whose clients trust
  // --etcd-tls-ca (empty: the system's CAs).
  bool etcd_tls = false;
  std::string etcd_tls_cert;
  std::string etcd_tls_key;
  std::string etcd_tls_ca;
  std::optional<std::string> root_password;  // --store-password-env: the owner's own root user's
  // Limits of the etcd API the server serves (see docs/store.md).
  int max_txn_ops = 128;                                // --max-txn-ops
  int64_t max_response_bytes = int64_t{256} << 20;      // --max-response-bytes
  int etcd_max_connections = 10000;                     // --etcd-max-connections
  std::chrono::milliseconds etcd_idle_timeout = std::chrono::minutes(2);  // --etcd-idle-timeout
  // The embedded store's history and size (see docs/store.md).
  std::string auto_compaction_mode = "revision";        // --auto-compaction-mode: revision or periodic
  // --auto-compaction-retention, as etcd reads it: revisions kept (revision
  // mode), or a duration of history kept, a bare number being hours
  // (periodic mode); 0: off.
  std::string auto_compaction_retention = "10000";
  int64_t quota_backend_bytes = int64_t{2} << 30;       // --quota-backend-bytes; 0: none
};

struct ServerOptions {
  std::string home;          // data directory ($ZEPPELIN_HOME)
  std::string tcp_listen;    // optional "HOST:PORT" for the API besides the unix socket
  int ready_fd = -1;         // written to (one byte) once the API accepts requests
  std::string etcd_listen = "127.0.0.1:0";  // "HOST:PORT" of the etcd v3 API over the coordination store (0: a free port)
  StoreOptions store;
  // Host names (NAME or NAME:PORT) the API's TCP port and the etcd port answer
  // to besides their listen address and loopback names (--allowed-host).
  std::vector<std::string> allowed_hosts;
  // TLS of the TCP API: a certificate and key (--tls-cert/--tls-key, re-read
  // when they change), else a private CA's under HOME/tls naming the listen
  // host, loopback and `tls_sans` (--tls-san).
  std::string tls_cert;
  std::string tls_key;
  std::vector<std::string> tls_sans;
  // --bootstrap-token-env: the secret of the admin token "bootstrap", which
  // the server installs at start (a cluster gives it from a Secret).
  std::optional<std::string> bootstrap_token;
  // How large a system may be, and how many replicas the server runs
  // (--max-spec-bytes, --max-services-per-system, --max-replicas-per-system,
  // --max-replicas; docs/spec.md#limits).
  spec::Limits limits;
  int max_replicas = supervisor::kReplicaAddressPoolSize;
};

// Runs in the foreground until SIGINT/SIGTERM or POST /v1/shutdown; stops the
// replicas gracefully (desired state is kept) and returns the exit code.
int run_server(const ServerOptions& options);

}  // namespace zeppelin::server
