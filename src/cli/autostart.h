// Finds the server for $ZEPPELIN_HOME, starting one in the background when
// none answers (as PM2 does), so users never have to start it themselves.
// With a remote server (--server or ZEPPELIN_SERVER) the CLI talks to that
// one over HTTPS and never starts a local one.
#pragma once

#include <optional>
#include <string>

#include "client/client.h"
#include "common/result.h"

namespace zeppelin::cli {

std::string socket_path(const std::string& home);

// Makes every later client of this process talk to `remote`.
void use_remote_server(client::Remote remote);

// The client for the server the CLI talks to, started or not: the remote
// one if set, else the local socket of `home`.
client::Client server_client(const std::string& home);

// Returns a client for a server that answers, starting `zeppelin server`
// detached (logging to HOME/server.log) if needed. A remote server is
// returned as it is: whether it answers shows at the first call.
Result<client::Client> connect_or_start(const std::string& home);
// For commands that only look (ps, ls, logs, version): the server if one
// answers, never started; a remote one as it is. nullopt when no local one runs.
std::optional<client::Client> running_server(const std::string& home);
// The same for the local server of `home` only, whatever the remote one: for
// what must not leave this machine (the store's root password goes to the
// endpoints it announces).
Result<client::Client> connect_or_start_local(const std::string& home);

}  // namespace zeppelin::cli
