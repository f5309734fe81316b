// Finds the server for $ZEPPELIN_HOME, starting one in the background when
// none answers (as PM2 does), so users never have to start it themselves.
#pragma once

#include <string>

#include "client/client.h"
#include "common/result.h"

namespace zeppelin::cli {

std::string socket_path(const std::string& home);

// Returns a client for a server that answers, starting `zeppelin server`
// detached (logging to HOME/server.log) if needed.
Result<client::Client> connect_or_start(const std::string& home);

}  // namespace zeppelin::cli
