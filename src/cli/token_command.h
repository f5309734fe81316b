// `zeppelin token create|ls|revoke`: the bearer tokens of the API over TCP
// (docs/api.md#authentication). The work is the server's (routes under
// /v1/tokens, admin only); this parses, calls and prints. A new token is
// printed alone on stdout, once: the server keeps only its hash.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace zeppelin::cli {

struct TokenArgs {
  std::string name;
  std::string role;
  std::string ttl;               // create: empty for a token that does not expire
  std::string format = "table";  // ls: table or json
};

// Adds `token` and its subcommands to `app`; returns it (parsed when `*returned`).
CLI::App* add_token_command(CLI::App& app, TokenArgs& args);
// Runs the parsed `token` subcommand against the server of `home` (or the remote one); returns the exit code.
int cmd_token(const CLI::App& token, const TokenArgs& args, const std::string& home);

}  // namespace zeppelin::cli
