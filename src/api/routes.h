// The HTTP/JSON API (docs/api.md): each route validates its input and records
// desired state through the Supervisor; none starts or stops a process itself.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "api/http_server.h"
#include "supervisor/supervisor.h"

namespace zeppelin::api {

// Where clients reach the coordination store, for GET /v1/etcd.
struct EtcdAnnouncement {
  std::vector<std::string> endpoints;  // empty: the server serves no etcd API
  std::string backend = "embedded";    // "embedded" or "etcd"
};

// `on_shutdown` runs for POST /v1/shutdown.
Handler make_routes(supervisor::Supervisor& supervisor, std::function<void()> on_shutdown,
                    EtcdAnnouncement etcd = {});

}  // namespace zeppelin::api
