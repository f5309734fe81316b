#include "server/server.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>

#include "api/http_server.h"
#include "api/routes.h"
#include "common/fs_util.h"
#include "common/log.h"
#include "etcd_api/etcd_server.h"
#include "etcd_client/etcd_store.h"
#include "runtime/container/container_driver.h"
#include "runtime/process/process_driver.h"
#include "runtime/routing_driver.h"
#include "state/state_store.h"
#include "store/embedded_store.h"
#include "supervisor/supervisor.h"

namespace zeppelin::server {

namespace asio = boost::asio;

namespace {

// One server per data directory: the lock is held for the process lifetime.
bool take_lock(const std::string& home) {
  const int fd = ::open((home + "/server.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  return fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0;
}

// A supervisor of a thousand replicas needs three descriptors each.
void raise_fd_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
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
    etcd.prefix = o.etcd_prefix;
    auto opened = etcd_client::EtcdStore::open(etcd);
    if (!opened) return opened.error();
    return std::unique_ptr<store::Store>(std::move(*opened));
  }
  if (o.backend != "embedded") {
    return make_error(Errc::kInvalidArgument, "--store: '" + o.backend + "' is not a store (embedded or etcd)");
  }
  auto opened = store::EmbeddedStore::open(options.home + "/store");
  if (!opened) return opened.error();
  return std::unique_ptr<store::Store>(std::move(*opened));
}

// The coordination store and the etcd API over it.
struct EtcdEndpoint {
  std::unique_ptr<store::Store> store;
  std::unique_ptr<etcd_api::EtcdServer> server;  // declared last: stops before the store closes
};

Result<std::unique_ptr<etcd_api::EtcdServer>> start_etcd_api(const ServerOptions& options, store::Store& store) {
  etcd_api::EtcdServerOptions etcd_options;
  etcd_options.listen = options.etcd_listen;
  etcd_options.snapshot_dir = options.home + "/store";
  // Stable per data directory, never 0 (etcd clients treat 0 as unset).
  etcd_options.cluster_id = std::hash<std::string>{}(options.home) | 1;
  etcd_options.member_id = std::hash<std::string>{}(options.home + "/member") | 1;
  return etcd_api::EtcdServer::start(store, etcd_options);
}

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
  raise_fd_limit();
  std::signal(SIGPIPE, SIG_IGN);

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
  state::FileStateStore store(options.home + "/state.json");
  supervisor::SupervisorOptions sup_options;
  sup_options.home = options.home;
  supervisor::Supervisor supervisor(io, drivers, store, sup_options);
  if (auto s = supervisor.recover(); !s) {
    log::error("{}", s.error().message);
    return 1;
  }

  bool stopping = false;
  std::vector<std::unique_ptr<api::HttpServer>> listeners;
  auto shutdown = [&] {
    if (stopping) return;
    stopping = true;
    log::info("shutting down: stopping replicas");
    // The API stays up (refusing new work) until the replicas are gone, so
    // that `zeppelin shutdown` can wait for the socket to disappear.
    supervisor.shutdown([&] {
      for (auto& l : listeners) l->close();
      ::unlink((options.home + "/zeppelin.sock").c_str());
      io.stop();
    });
  };
  // With --store etcd the store is the user's cluster, and the server serves
  // no etcd API of its own unless --etcd-listen asks for one.
  EtcdEndpoint etcd;
  api::EtcdAnnouncement announcement;
  announcement.backend = options.store.backend;
  if (options.store.backend != "embedded" || !options.etcd_listen.empty()) {
    auto opened = open_store(options);
    if (!opened) {
      log::error("coordination store: {}", opened.error().message);
      return 1;
    }
    etcd.store = std::move(*opened);
    if (options.store.backend == "etcd") {
      log::info("coordination store: etcd at {} (prefix {})", options.store.etcd_endpoints, options.store.etcd_prefix);
      auto endpoints = etcd_client::parse_endpoints(options.store.etcd_endpoints);
      if (endpoints) announcement.endpoints = *endpoints;
    }
  }
  if (!options.etcd_listen.empty()) {
    auto started = start_etcd_api(options, *etcd.store);
    if (!started) {
      log::error("etcd API: {}", started.error().message);
      return 1;
    }
    etcd.server = std::move(*started);
    log::info("etcd API listening on {}", etcd.server->address());
    if (options.store.backend == "embedded") announcement.endpoints = {"http://" + etcd.server->address()};
  }
  api::Handler routes = api::make_routes(supervisor, [&] { asio::post(io, shutdown); }, announcement);

  auto unix_listener = api::HttpServer::listen_unix(io, options.home + "/zeppelin.sock", routes);
  if (!unix_listener) {
    log::error("{}", unix_listener.error().message);
    return 1;
  }
  log::info("API listening on unix:{}", (*unix_listener)->address());
  listeners.push_back(std::move(*unix_listener));
  if (!options.tcp_listen.empty()) {
    auto tcp = api::HttpServer::listen_tcp(io, options.tcp_listen, routes);
    if (!tcp) {
      log::error("{}", tcp.error().message);
      return 1;
    }
    log::info("API listening on http://{}", (*tcp)->address());
    const std::string host = options.tcp_listen.substr(0, options.tcp_listen.rfind(':'));
    if (!host.starts_with("127.") && host != "::1" && host != "[::1]" && host != "localhost") {
      log::warn("the API has no authentication: anyone who can reach {} can run commands as this user",
                options.tcp_listen);
    }
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
  io.run();
  log::info("server stopped");
  return 0;
}

}  // namespace zeppelin::server
