// The HTTP/JSON API (docs/api.md): each route validates its input and records
// desired state through the Supervisor; none starts or stops a process itself.
#pragma once

#include <functional>

#include "api/http_server.h"
#include "supervisor/supervisor.h"

namespace zeppelin::api {

// `on_shutdown` runs for POST /v1/shutdown.
Handler make_routes(supervisor::Supervisor& supervisor, std::function<void()> on_shutdown);

}  // namespace zeppelin::api
