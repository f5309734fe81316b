// The HTTP/JSON API (docs/api.md): each route validates its input and records
// desired state through the Supervisor; none starts or stops a process itself.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "api/http_server.h"
#include "api/tokens.h"
#include "supervisor/supervisor.h"

namespace zeppelin::api {

// The coordination store the server uses, as GET /v1/etcd and
// POST /v1/store/snapshot expose it.
struct StoreAccess {
  std::vector<std::string> endpoints;  // the etcd API's URLs
  std::string backend;                 // "embedded" or "etcd"
  // The CA file clients of https:// endpoints trust (empty: the system's).
  std::string ca_file;
  // Whether the etcd API at `endpoints` requires auth (false for an external etcd's own).
  std::function<bool()> auth_enabled;
  // Writes a snapshot of the whole store to an absolute path; returns its revision.
  std::function<Result<std::int64_t>(const std::string& path)> snapshot;
  // Where POST /v1/store/snapshot stages the file it streams back (private to
  // the server: $ZEPPELIN_HOME/store); the file is removed once it is open.
  std::string staging_dir;
};

// The least role a route needs over TCP (the unix socket is admin): the one
// table of docs/api.md#roles. Routes not in it need admin.
Role required_role(const std::string& method, const std::string& path);

// `on_shutdown` runs for POST /v1/shutdown. Requests over TCP must carry a
// bearer token of `tokens` whose role reaches required_role(); without
// `tokens` they are all refused.
Handler make_routes(supervisor::Supervisor& supervisor, std::function<void()> on_shutdown, StoreAccess store = {},
                    Tokens* tokens = nullptr);

}  // namespace zeppelin::api
