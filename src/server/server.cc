#include "server/server.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <stop_token>
#include <thread>
#include <optional>

#include "api/http_server.h"
#include "api/routes.h"
#include "common/fs_util.h"
#include "common/home_layout.h"
#include "common/home_modes.h"
#include "common/http_guard.h"
#include "common/log.h"
#include "common/signals.h"
#include "common/tls.h"
#include "common/units.h"
#include "etcd_api/auth.h"
#include "etcd_api/etcd_server.h"
#include "etcd_client/etcd_store.h"
#include "runtime/container/container_driver.h"
#include "runtime/process/process_driver.h"
#include "runtime/routing_driver.h"
#include "server/store_auth.h"
#include "state/service_registry.h"
#include "state/store_state_store.h"
#include "store/embedded_store.h"
#include "supervisor/supervisor.h"

namespace zeppelin::server {

namespace asio = boost::asio;

namespace {

// One server per data directory: the lock is held for the process lifetime.
bool take_lock(const std::string& home) {
  const int fd = open_owner_only(HomeLayout(home).server_lock(), O_RDWR);
  return fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0;
}

// True for "127.x.y.z:PORT", "[::1]:PORT" and "localhost:PORT".
bool is_loopback_listen(const std::string& listen) {
  const std::string host = listen.substr(0, listen.rfind(':'));
  return host.starts_with("127.") || host == "[::1]" || host == "::1" || host == "localhost";
}

// A supervisor of a thousand replicas needs three descriptors each.
void raise_fd_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
}

// --auto-compaction-mode and --auto-compaction-retention as etcd reads them:
// a number of revisions, or a duration (a bare number is hours).
Status set_auto_compaction(const StoreOptions& o, store::EmbeddedStoreOptions& embedded) {
  const std::string& retention = o.auto_compaction_retention;
  const bool bare_number = !retention.empty() && retention.find_first_not_of("0123456789") == std::string::npos &&
                           retention.size() <= 12;
  if (o.auto_compaction_mode == "revision") {
    if (!bare_number) {
      return make_error(Errc::kInvalidArgument, "--auto-compaction-retention: with --auto-compaction-mode revision, "
                                                "a number of revisions, not \"" + retention + "\"");
    }
    embedded.auto_compaction_retention = std::stoll(retention);
    return ok_status();
  }
  if (o.auto_compaction_mode != "periodic") {
    return make_error(Errc::kInvalidArgument,
                      "--auto-compaction-mode: revision or periodic, not \"" + o.auto_compaction_mode + "\"");
  }
  if (bare_number) {
    embedded.auto_compaction_period = std::chrono::hours(std::stoll(retention));
    return ok_status();
  }
  auto period = parse_duration(retention);
  if (!period) {
    return make_error(Errc::kInvalidArgument, "--auto-compaction-retention: with --auto-compaction-mode periodic, "
                                              "a duration such as 1h or 30m (a bare number is hours): " +
                                                  period.error().message);
  }
  embedded.auto_compaction_period = *period;
  return ok_status();
}

// The coordination store: the embedded one in HOME/store, or (--store etcd)
// an external etcd cluster, every key under the prefix.
Result<std::unique_ptr<store::Store>> open_store(const ServerOptions& options) {
  const StoreOptions& o = options.store;
  if (o.backend == "etcd") {
    etcd_client::EtcdStoreOptions etcd;
    auto endpoints = etcd_client::parse_endpoints(o.etcd_endpoints);
    if (!endpoints) return make_error(Errc::kInvalidArgument, "--etcd-endpoints: " + endpoints.error().message);
    etcd.connection.endpoints = *endpoints;
    etcd.connection.user = o.etcd_user;
    etcd.connection.password = o.etcd_password;
    etcd.connection.ca_file = o.etcd_cacert;
    etcd.connection.cert_file = o.etcd_cert;
    etcd.connection.key_file = o.etcd_key;
    // Zeppelin's own keys carry the prefix themselves (StoreStateStore,
    // StoreServiceRegistry), so that applications see the same layout as on
    // the embedded store: /zeppelin/services/... by default.
    auto opened = etcd_client::EtcdStore::open(etcd);
    if (!opened) return opened.error();
    return std::unique_ptr<store::Store>(std::move(*opened));
  }
  if (o.backend != "embedded") {
    return make_error(Errc::kInvalidArgument, "--store: '" + o.backend + "' is not a store (embedded or etcd)");
  }
  store::EmbeddedStoreOptions embedded;
  if (auto s = set_auto_compaction(o, embedded); !s) return s.error();
  embedded.quota_bytes = o.quota_backend_bytes;
  auto opened = store::EmbeddedStore::open(HomeLayout(options.home).store_dir(), embedded);
  if (!opened) return opened.error();
  return std::unique_ptr<store::Store>(std::move(*opened));
}

// The etcd v3 API over `store`, on options.etcd_listen. When that asks for a
// free port, the previous server's port (HOME/etcd.address) is tried first, so
// that replicas outliving a restart (adopted containers) keep a working
// ZEPPELIN_ETCD_ENDPOINTS.
// The certificate of a TLS port listening on `host`: `given` (re-read when
// it changes), else one issued by the private CA under HOME/tls as NAME.pem.
Result<std::unique_ptr<TlsContextSource>> load_tls(const std::string& home, const std::string& host,
                                                   const std::vector<std::string>& sans, TlsFiles given,
                                                   const std::string& name, AlpnProtocols alpn) {
  if (given.cert.empty()) {
    auto generated = ensure_generated_certificate(HomeLayout(home).tls_dir(), default_sans(host, sans), name);
    if (!generated) return generated.error();
    given = *generated;
  }
  return TlsContextSource::load(std::move(given), std::move(alpn));
}

Result<std::unique_ptr<etcd_api::EtcdServer>> start_etcd_api(store::Store& store, const ServerOptions& options,
                                                             std::function<void(const std::string&)> on_failure,
                                                             TlsContextSource* tls) {
  etcd_api::EtcdServerOptions etcd_options;
  etcd_options.listen = options.etcd_listen;
  etcd_options.on_failure = std::move(on_failure);
  etcd_options.snapshot_dir = HomeLayout(options.home).store_dir();
  etcd_options.auth_file = HomeLayout(options.home).store_dir() + "/" + store::kAuthStateFile;  // carried by snapshots
  StoreAuthOptions auth_options;
  auth_options.credentials_file = HomeLayout(options.home).store_root_credentials();
  auth_options.root_password = options.store.root_password;
  auth_options.insecure = options.store.insecure;
  etcd_options.prepare_auth = [auth_options](etcd_api::AuthStore& auth) {
    return prepare_store_auth(auth, auth_options);
  };
  etcd_options.allowed_hosts = options.allowed_hosts;
  etcd_options.max_txn_ops = options.store.max_txn_ops;
  etcd_options.max_response_bytes = options.store.max_response_bytes;
  etcd_options.max_connections = options.store.etcd_max_connections;
  etcd_options.idle_timeout = options.store.etcd_idle_timeout;
  etcd_options.tls = tls;
  // Stable per data directory, never 0 (etcd clients treat 0 as unset).
  etcd_options.cluster_id = std::hash<std::string>{}(options.home) | 1;
  etcd_options.member_id = std::hash<std::string>{}(options.home + "/member") | 1;
  const std::string remembered = HomeLayout(options.home).etcd_address_file();
  std::unique_ptr<etcd_api::EtcdServer> server;
  if (options.etcd_listen.ends_with(":0")) {
    const std::string host = options.etcd_listen.substr(0, options.etcd_listen.size() - 1);  // "HOST:"
    if (auto last = read_file(remembered); last && last->starts_with(host) && last->size() > host.size()) {
      etcd_options.listen = *last;
      if (auto started = etcd_api::EtcdServer::start(store, etcd_options)) server = std::move(*started);
      etcd_options.listen = options.etcd_listen;
    }
  }
  if (!server) {
    auto started = etcd_api::EtcdServer::start(store, etcd_options);
    if (!started) return started.error();
    server = std::move(*started);
  }
  if (auto s = write_file_atomic(remembered, server->address()); !s) log::warn("{}", s.error().message);
  return server;
}

// Replica tokens minted by the embedded store's etcd API for its users
// (supervisor::ReplicaCredentials): none while auth is disabled.
class AuthStoreCredentials final : public supervisor::ReplicaCredentials {
 public:
  explicit AuthStoreCredentials(etcd_api::AuthStore& auth) : auth_(auth) {}

  Result<std::unique_ptr<supervisor::ReplicaCredential>> issue(const std::string& user,
                                                               const std::string& keep_as) override {
    std::string token;
    const Status s = auth_.issue_token(user, &token, keep_as);
    if (s) return std::unique_ptr<supervisor::ReplicaCredential>(std::make_unique<Issued>(auth_, user, token));
    if (!auth_.enabled()) return std::unique_ptr<supervisor::ReplicaCredential>();
    if (s.error().code == Errc::kNotFound) {
      return make_error(Errc::kNotFound, "etcd user \"" + user +
                                             "\" (store.user) does not exist in the server's store; create it "
                                             "(etcdctl user add, or zeppelin ns create)");
    }
    return make_error(Errc::kInternal, "etcd user \"" + user + "\": etcdserver: " + s.error().message);
  }

  void retain(const std::function<bool(const std::string& keep_as)>& wanted) override {
    auth_.retain_kept_tokens(wanted);
  }

 private:
  class Issued final : public supervisor::ReplicaCredential {
   public:
    Issued(etcd_api::AuthStore& auth, std::string user, std::string token)
        : auth_(auth), user_(std::move(user)), token_(std::move(token)) {}
    ~Issued() override { auth_.revoke_token(token_); }
    const std::string& user() const override { return user_; }
    const std::string& token() const override { return token_; }

   private:
    etcd_api::AuthStore& auth_;
    std::string user_;
    std::string token_;
  };

  etcd_api::AuthStore& auth_;
};

// Announcements of running replicas live this long without a keep-alive.
constexpr int64_t kRegistryTtlSeconds = 10;

}  // namespace

int run_server(const ServerOptions& options) {
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  if (auto s = make_dirs(options.home, 0700); !s) {
    log::error("{}", s.error().message);
    return 1;
  }
  if (!take_lock(options.home)) {
    log::error("a zeppelin server is already running for {}", options.home);
    return 1;
  }
  const bool etcd_on_loopback = is_loopback_listen(options.etcd_listen.empty() ? "127.0.0.1:0" : options.etcd_listen);
  if (options.store.insecure && !etcd_on_loopback) {
    log::error("--insecure-store turns auth off, which is allowed only on a loopback --etcd-listen, not {}",
               options.etcd_listen);
    return 2;
  }
  if (!etcd_on_loopback && !options.store.etcd_plaintext && !options.store.etcd_tls) {
    // Passwords and tokens would cross the network in clear.
    log::error(
        "--etcd-listen {} is beyond loopback and the etcd port has no TLS: add --etcd-tls, or --etcd-plaintext if "
        "the network is guarded otherwise, or listen on 127.0.0.1",
        options.etcd_listen);
    return 2;
  }
  for (const auto& fixed : tighten_home_modes(options.home)) log::warn("{}", fixed);
  raise_fd_limit();
  std::signal(SIGPIPE, SIG_IGN);
  // Threads started from here on (the store's, the etcd API's and gRPC's, the
  // keep-alive) inherit a mask that blocks the signals the loop handles, which
  // would otherwise interrupt their blocking calls; the loop's thread takes
  // them once it runs (below).
  block_loop_signals(true);

  asio::io_context io(1);
  runtime::ProcessDriver driver(io, options.home);
  if (driver.cgroup_version() == runtime::Cgroups::Version::kNone) {
    log::warn("no writable cgroup hierarchy: cpu and memory limits will not be enforced");
  }
  // Image services go to a container engine, found on first use.
  runtime::RoutingDriver drivers(driver, [&io, home = options.home]() -> Result<std::unique_ptr<runtime::Driver>> {
    auto engine = runtime::container::Engine::connect(io, process_environment());
    if (!engine) return engine.error();
    log::info("container engine: {} at unix://{} (API {})", (*engine)->description(), (*engine)->socket_path(),
              (*engine)->api_version());
    return std::unique_ptr<runtime::Driver>(std::make_unique<runtime::container::ContainerDriver>(io, *engine, home));
  });
  auto opened = open_store(options);
  if (!opened) {
    log::error("coordination store: {}", opened.error().message);
    return 1;
  }
  std::unique_ptr<store::Store> store = std::move(*opened);
  const bool external = options.store.backend == "etcd";
  // An etcd API that stops accepting connections stops the server, which then
  // exits non-zero, rather than leave replicas and clients a dead port.
  bool etcd_failed = false;
  std::function<void()> stop_server;  // the shutdown below, set before the loop runs
  auto on_etcd_failure = [&io, &etcd_failed, &stop_server](const std::string&) {
    asio::post(io, [&etcd_failed, &stop_server] {
      etcd_failed = true;
      stop_server();
    });
  };
  // The embedded store is always served over the etcd API; with --store etcd
  // the store is the user's cluster, served by zeppelin only if --etcd-listen asks.
  std::unique_ptr<TlsContextSource> etcd_tls;  // the etcd port's certificate; outlives the etcd API
  std::string etcd_scheme = "http://";
  std::string etcd_ca;                         // what the etcd port's clients trust (empty: the system's CAs)
  std::unique_ptr<etcd_api::EtcdServer> etcd;  // stops before the store closes
  if (!external || !options.etcd_listen.empty()) {
    ServerOptions listen_options = options;
    if (listen_options.etcd_listen.empty()) listen_options.etcd_listen = "127.0.0.1:0";
    if (options.store.etcd_tls) {
      const std::string& listen = listen_options.etcd_listen;
      auto loaded =
          load_tls(options.home, listen.substr(0, listen.rfind(':')), options.tls_sans,
                   {options.store.etcd_tls_cert, options.store.etcd_tls_key}, "etcd-server", {"h2", "http/1.1"});
      if (!loaded) {
        log::error("etcd API: TLS: {}", loaded.error().message);
        return 1;
      }
      etcd_tls = std::move(*loaded);
      etcd_scheme = "https://";
      etcd_ca = options.store.etcd_tls_cert.empty() ? HomeLayout(options.home).tls_ca_file() : options.store.etcd_tls_ca;
    }
    auto etcd_started = start_etcd_api(*store, listen_options, on_etcd_failure, etcd_tls.get());
    if (!etcd_started) {
      log::error("etcd API: {}", etcd_started.error().message);
      return 1;
    }
    etcd = std::move(*etcd_started);
    log::info("etcd API listening on {}{}", etcd_scheme, etcd->address());
  }
  api::StoreAccess store_access;
  store_access.backend = options.store.backend;
  if (external) {
    store_access.endpoints = *etcd_client::parse_endpoints(options.store.etcd_endpoints);  // checked by open_store
  } else {
    std::string address = etcd->address();
    if (etcd_tls) {
      // Clients verify the host they dial against the certificate, which
      // names loopback but never a wildcard address.
      if (address.starts_with("0.0.0.0:")) address = "127.0.0.1" + address.substr(7);
      if (address.starts_with("[::]:")) address = "[::1]" + address.substr(4);
    }
    store_access.endpoints = {etcd_scheme + address};
    store_access.ca_file = etcd_ca;
    store_access.auth_enabled = [&auth = etcd->auth()] { return auth.enabled(); };
  }
  store_access.snapshot = [&store](const std::string& path) -> Result<std::int64_t> {
    const std::int64_t revision = store->status().revision;
    if (auto s = store->snapshot(path); !s) return s.error();
    return revision;
  };
  store_access.staging_dir = HomeLayout(options.home).store_dir();
  log::info("coordination store: {} at {}", store_access.backend, store_access.endpoints.front());
  const std::string prefix = external ? options.store.etcd_prefix : state::kDefaultPrefix;

  state::StoreStateStore state_store(*store, prefix);
  auto migrated = state::migrate_state_file(HomeLayout(options.home).legacy_state_file(), state_store);
  if (!migrated) {
    log::error("cannot import {}/state.json into the store: {}", options.home, migrated.error().message);
    return 1;
  }
  if (*migrated > 0) log::info("imported {} system(s) from state.json into the store", *migrated);
  auto registry = state::StoreServiceRegistry::open(*store, prefix, kRegistryTtlSeconds);
  if (!registry) {
    log::error("service registry: {}", registry.error().message);
    return 1;
  }
  // With --store etcd a keep-alive is a network call, and a member failing
  // over can hold it for seconds: it runs on a thread of its own so that the
  // loop never waits for it. Only a lost lease comes back to the loop.
  std::jthread keep_alive([&](std::stop_token stop) {
    std::mutex mu;
    std::condition_variable_any wake;
    std::unique_lock lock(mu);
    while (!wake.wait_for(lock, stop, std::chrono::seconds(kRegistryTtlSeconds) / 3, [] { return false; }) &&
           !stop.stop_requested()) {
      auto s = (*registry)->refresh();
      if (s) continue;
      if (s.error().code != Errc::kLeaseNotFound) {
        log::warn("service registry: {}", s.error().message);
        continue;
      }
      asio::post(io, [&] {
        if (auto renewed = (*registry)->renew(); !renewed) log::warn("service registry: {}", renewed.error().message);
      });
    }
  });

  supervisor::SupervisorOptions sup_options;
  sup_options.home = options.home;
  sup_options.registry = registry->get();
  sup_options.etcd_endpoints = store_access.endpoints;
  if (!store_access.ca_file.empty()) {
    // Replicas of other accounts and containers cannot read tls/: they get a
    // copy that is not secret in public/ (home_modes.h).
    auto published = publish_public_copy(options.home, store_access.ca_file, "etcd-ca.pem");
    if (!published) {
      log::error("etcd API: cannot publish the CA for replicas: {}", published.error().message);
      return 1;
    }
    sup_options.etcd_ca_file = std::move(*published);
  }
  sup_options.limits = options.limits;
  sup_options.max_replicas = options.max_replicas;
  // Declared before the supervisor, whose replicas hold its tokens.
  std::optional<AuthStoreCredentials> credentials;
  if (!external) sup_options.credentials = &credentials.emplace(etcd->auth());
  supervisor::Supervisor supervisor(io, drivers, state_store, sup_options);
  if (auto s = supervisor.recover(); !s) {
    log::error("{}", s.error().message);
    return 1;
  }

  bool stopping = false;
  std::unique_ptr<TlsContextSource> tls;  // the TCP listener's certificate; outlives the listeners
  std::vector<std::unique_ptr<api::HttpServer>> listeners;
  auto shutdown = [&] {
    if (stopping) return;
    stopping = true;
    log::info("shutting down: stopping replicas");
    // The API stays up (refusing new work) until the replicas are gone, so
    // that `zeppelin shutdown` can wait for the socket to disappear.
    supervisor.shutdown([&] {
      for (auto& l : listeners) l->close();
      keep_alive.request_stop();
      ::unlink(HomeLayout(options.home).api_socket().c_str());
      io.stop();
    });
  };
  stop_server = shutdown;
  // Bearer tokens of the TCP API, kept in the store as root (docs/security.md).
  api::Tokens tokens(*store);
  if (options.bootstrap_token) {
    if (auto s = tokens.install("bootstrap", api::Role::kAdmin, *options.bootstrap_token); !s) {
      log::error("--bootstrap-token-env: {}", s.error().message);
      return 1;
    }
  }
  api::Handler routes = api::make_routes(supervisor, [&] { asio::post(io, shutdown); }, store_access, &tokens);

  auto unix_listener = api::HttpServer::listen_unix(io, HomeLayout(options.home).api_socket(), routes);
  if (!unix_listener) {
    log::error("{}", unix_listener.error().message);
    return 1;
  }
  log::info("API listening on unix:{}", (*unix_listener)->address());
  listeners.push_back(std::move(*unix_listener));
  if (!options.tcp_listen.empty()) {
    const std::string host = options.tcp_listen.substr(0, options.tcp_listen.rfind(':'));
    auto loaded = load_tls(options.home, host, options.tls_sans, {options.tls_cert, options.tls_key}, "server", {});
    if (!loaded) {
      log::error("TLS: {}", loaded.error().message);
      return 1;
    }
    tls = std::move(*loaded);
    // The names the certificate was made for (--tls-san) are names clients use.
    std::vector<std::string> api_hosts = options.allowed_hosts;
    for (const auto& san : options.tls_sans) {
      if (HostGuard::check_name(san)) api_hosts.push_back(san);
    }
    auto tcp = api::HttpServer::listen_tcp(io, options.tcp_listen, routes, *tls, api_hosts);
    if (!tcp) {
      log::error("{}", tcp.error().message);
      return 1;
    }
    log::info("API listening on https://{}", (*tcp)->address());
    listeners.push_back(std::move(*tcp));
  }

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) shutdown();
  });
  if (options.ready_fd >= 0) {
    const char byte = 1;
    (void)::write(options.ready_fd, &byte, 1);
    ::close(options.ready_fd);
  }
  block_loop_signals(false);
  io.run();
  if (etcd_failed) {
    log::error("server stopped: its etcd API failed");
    return 1;
  }
  log::info("server stopped");
  return 0;
}

}  // namespace zeppelin::server
