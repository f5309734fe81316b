// Coordination for applications, over any etcd v3 endpoint (zeppelin's own
// etcd API or a real etcd cluster):
//   zeppelin kv get|put|del|ls|watch   keys and values
//   zeppelin lock NAME -- CMD ARGS...   run CMD while holding a lock
//   zeppelin elect NAME VALUE           campaign and hold leadership; --listen observes
// Endpoints come from --endpoints, else $ZEPPELIN_ETCD_ENDPOINTS, else the
// local server's GET /v1/etcd (started if needed). $ZEPPELIN_ETCD_USER and
// $ZEPPELIN_ETCD_PASSWORD authenticate when set.
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

// The etcd endpoints a client command uses: `flag` (--endpoints), else
// $ZEPPELIN_ETCD_ENDPOINTS, else the local server's GET /v1/etcd (the server in
// `home` is started if none runs). Malformed URLs are kInvalidArgument.
Result<std::vector<std::string>> find_etcd_endpoints(const std::string& flag, const std::string& home);

// The exit code of the coordination command the user chose, if any.
std::optional<int> run_coord_command(CoordArgs& args, const std::string& home);

// Adds --store, --etcd-endpoints, --etcd-prefix, --etcd-user,
// --etcd-password-env, --etcd-cacert, --etcd-cert and --etcd-key.
void add_server_store_flags(CLI::App& server, server::StoreOptions& options);

}  // namespace zeppelin::cli
