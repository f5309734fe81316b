// Coordination for applications, over any etcd v3 endpoint (zeppelin's own
// etcd API or a real etcd cluster):
//   zeppelin kv get|put|del|ls|watch   keys and values
//   zeppelin lock NAME -- CMD ARGS...   run CMD while holding a lock
//   zeppelin elect NAME VALUE           campaign and hold leadership; --listen observes
// Endpoints come from --endpoints, else $ZEPPELIN_ETCD_ENDPOINTS, else the
// local server's GET /v1/etcd (started if needed); see find_store() for
// whom they act as.
//
// Also the server's store flags (--store, --etcd-*), kept here so that the
// command table in cli.cc only registers them.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "server/server.h"

namespace zeppelin::cli {

struct CoordArgs;

// Adds the kv, lock and elect subcommands to `app`; the returned arguments
// are filled by parsing.
std::shared_ptr<CoordArgs> add_coord_commands(CLI::App& app);

// Where a client command reaches the coordination store, and as whom.
struct StoreTarget {
  std::vector<std::string> endpoints;
  std::string user;      // with password: log in
  std::string password;
  std::string token;     // else: a token as given (a replica's)
  std::string ca_file;   // for https:// endpoints: the CA to trust (empty: the system's)
};

// The endpoints are `flag` (--endpoints), else $ZEPPELIN_ETCD_ENDPOINTS, else
// the local server's GET /v1/etcd (the server in `home` is started if none
// runs). The identity is $ZEPPELIN_ETCD_USER/$ZEPPELIN_ETCD_PASSWORD, else
// $ZEPPELIN_ETCD_TOKEN, else, for the local server's embedded store only,
// root with the password the server keeps in `home`. Malformed URLs are
// kInvalidArgument.
Result<StoreTarget> find_store(const std::string& flag, const std::string& home);

// The exit code of the coordination command the user chose, if any.
std::optional<int> run_coord_command(CoordArgs& args, const std::string& home);

// `zeppelin store env`: `export` lines for etcdctl and zeppelin's clients
// (endpoints, and root's credentials when the local store requires auth),
// for `eval "$(zeppelin store env)"`.
int cmd_store_env(const std::string& home);

// Adds --store, --etcd-endpoints, --etcd-prefix, --etcd-user,
// --etcd-password-env, --etcd-cacert, --etcd-cert and --etcd-key.
void add_server_store_flags(CLI::App& server, server::StoreOptions& options);

}  // namespace zeppelin::cli
