// The composition root: picks the concrete driver and state store, wires them
// into the supervisor and the API, and runs the event loop until stopped.
#pragma once

#include <string>

namespace zeppelin::server {

struct ServerOptions {
  std::string home;          // data directory ($ZEPPELIN_HOME)
  std::string tcp_listen;    // optional "HOST:PORT" for the API besides the unix socket
  int ready_fd = -1;         // written to (one byte) once the API accepts requests
  std::string etcd_listen;   // optional "HOST:PORT" for the etcd v3 API over the coordination store
};

// Runs in the foreground until SIGINT/SIGTERM or POST /v1/shutdown; stops the
// replicas gracefully (desired state is kept) and returns the exit code.
int run_server(const ServerOptions& options);

}  // namespace zeppelin::server
