#include "cli/server_command.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "cli/autostart.h"
#include "cli/coord_commands.h"
#include "cli/exit.h"
#include "client/client.h"
#include "common/fs_util.h"
#include "common/http_guard.h"
#include "server/server.h"
#include "spec/parser.h"
#include "supervisor/supervisor.h"

namespace zeppelin::cli {

void add_server_commands(CLI::App& app, Commands& commands) {
  struct Args {
    std::string listen;
    std::string etcd_listen = "127.0.0.1:0";
    std::string home_flag;
    int ready_fd = -1;
    bool server_detach = false;
    std::string tls_cert;
    std::string tls_key;
    std::vector<std::string> tls_sans;
    std::vector<std::string> allowed_hosts;
    std::optional<std::string> bootstrap_token;
    spec::Limits limits;
    int max_replicas = supervisor::kReplicaAddressPoolSize;
    server::StoreOptions server_store;
  };
  auto args = std::make_shared<Args>();
  Args& a = *args;

  auto* server = app.add_subcommand("server", "Run the control plane in the foreground (-d: in the background)");
  server->add_flag("-d,--detach", a.server_detach,
                   "start the server in the background with the default flags, as any command would, and return "
                   "once it answers; nothing happens if one runs already");
  server->add_option("--listen", a.listen, "also serve the API over TCP on HOST:PORT");
  server->add_option("--etcd-listen", a.etcd_listen, "serve the etcd v3 API (gRPC) on HOST:PORT (port 0: a free one)")
      ->capture_default_str();
  server->add_option("--home", a.home_flag, "data directory (default $ZEPPELIN_HOME or ~/.zeppelin)");
  server->add_option("--ready-fd", a.ready_fd, "write a byte to this descriptor when ready")->group("");
  server->add_option("--tls-cert", a.tls_cert, "with --listen: the server's certificate (PEM; re-read when it changes)");
  server->add_option("--tls-key", a.tls_key, "with --listen: the certificate's private key (PEM)");
  server->add_option("--tls-san", a.tls_sans,
                     "with --listen and no --tls-cert: another name or address for the generated certificate "
                     "(repeatable)");
  server->add_option("--allowed-host", a.allowed_hosts,
                     "a Host name (NAME or NAME:PORT) the TCP API and the etcd port's JSON gateway answer to, "
                     "besides the listen address and localhost (repeatable)");
  server->add_option_function<std::string>(
      "--bootstrap-token-env",
      [args](const std::string& var) {
        const char* value = std::getenv(var.c_str());
        if (!value || !*value) throw CLI::ValidationError("--bootstrap-token-env", "the variable " + var + " is not set");
        args->bootstrap_token = value;
        ::unsetenv(var.c_str());  // nothing the server starts inherits it
      },
      "with --listen: the environment variable holding the secret of an admin token named \"bootstrap\" "
      "(at least 32 characters; in a cluster, from a Secret)");
  server->add_option("--max-spec-bytes", a.limits.max_spec_bytes, "a spec larger than this is refused (API answer 413)")
      ->check(CLI::Range(std::size_t{1024}, spec::Limits::kMaxSpecBytesCeiling))
      ->capture_default_str();
  server->add_option("--max-services-per-system", a.limits.max_services, "a system with more services is refused")
      ->check(CLI::Range(1, spec::Limits::kMaxServicesCeiling))
      ->capture_default_str();
  server->add_option("--max-replicas-per-system", a.limits.max_replicas_per_system,
                     "a system wanting more replicas in total is refused (a service has at most 10000)")
      ->check(CLI::Range(1, spec::Limits::kMaxReplicasPerSystemCeiling))
      ->capture_default_str();
  server->add_option("--max-replicas", a.max_replicas,
                     "replicas all systems together may want (each needs a loopback address of its own)")
      ->check(CLI::Range(1, supervisor::kReplicaAddressPoolSize))
      ->capture_default_str();
  add_server_store_flags(*server, a.server_store);
  add_examples(server, {"zeppelin server -d                   # in the background, default flags",
                        "zeppelin server --listen 0.0.0.0:7443 --allowed-host zeppelin.example",
                        "zeppelin server --store etcd --etcd-endpoints https://10.0.0.5:2379 --etcd-cacert ca.pem"});
  commands.on(server, [args, server] {
    Args& a = *args;
    if (!a.home_flag.empty()) ::setenv(kHomeVariable, a.home_flag.c_str(), 1);
    if (a.server_detach) {
      const auto given = server->get_options([](const CLI::Option* o) {
        return o->count() > 0 && !o->check_name("--detach") && !o->check_name("--home");
      });
      if (!given.empty()) {
        return fail("server -d starts a server with the default flags: give other flags to `zeppelin server` in the "
                    "foreground",
                    kUsage);
      }
      auto started = connect_or_start_local(zeppelin_home());
      if (!started) return fail(started.error());
      std::cout << "server running for " << zeppelin_home() << "\n";
      return kOk;
    }
    // With --store etcd, replicas use the user's cluster: no etcd API of our own unless asked.
    if (a.server_store.backend == "etcd" && server->get_option("--etcd-listen")->count() == 0) a.etcd_listen.clear();
    for (const auto& name : a.allowed_hosts) {
      if (auto s = HostGuard::check_name(name); !s) return fail("--allowed-host: " + s.error().message, kUsage);
    }
    if (a.tls_cert.empty() != a.tls_key.empty()) return fail("--tls-cert and --tls-key go together", kUsage);
    if ((!a.tls_cert.empty() || !a.tls_sans.empty()) && a.listen.empty()) {
      return fail("--tls-cert, --tls-key and --tls-san are for the API's TCP port: give --listen HOST:PORT", kUsage);
    }
    if (a.bootstrap_token && a.listen.empty()) {
      return fail("--bootstrap-token-env is for the API's TCP port: give --listen HOST:PORT", kUsage);
    }
    return server::run_server({zeppelin_home(), a.listen, a.ready_fd, a.etcd_listen, a.server_store, a.allowed_hosts, a.tls_cert,
                               a.tls_key, a.tls_sans, a.bootstrap_token, a.limits, a.max_replicas});
  });

  auto* shutdown = app.add_subcommand("shutdown", "Stop the server and its replicas (desired state is kept)");
  add_examples(shutdown, {"zeppelin shutdown                    # stops every replica; the next server starts them",
                          "zeppelin shutdown && zeppelin store snapshot restore backup.db"});
  commands.on(shutdown, [] {
    client::Client c = server_client(zeppelin_home());
    if (!c.reachable()) {
      std::cout << "no server running\n";
      return kOk;
    }
    auto r = c.call("POST", "/v1/shutdown");
    if (!r) return fail(r.error());
    // The server exits after its replicas stop; wait for the socket to go.
    while (c.reachable()) ::usleep(20000);
    std::cout << "server stopped\n";
    return kOk;
  });
}

}  // namespace zeppelin::cli
