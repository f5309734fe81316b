// `zeppelin secret set|ls|rm`: the secret files of $ZEPPELIN_HOME/secrets that
// specs refer to as {secret: NAME, key: KEY}. The work is secrets::SecretFiles;
// this parses the arguments, reads the value from stdin (never from argv, which
// any user can see in ps) and prints. No server is involved: replicas read
// their secrets when they start.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace zeppelin::cli {

struct SecretArgs {
  std::string name;
  std::string key;
  bool raw = false;              // set: keep a trailing newline
  std::string format = "table";  // ls: table or json
};

// Adds `secret` and its subcommands to `app`; returns it (parsed when `*returned`).
CLI::App* add_secret_command(CLI::App& app, SecretArgs& args);
// Runs the parsed `secret` subcommand for the data directory `home`; returns the exit code.
int cmd_secret(const CLI::App& secret, const SecretArgs& args, const std::string& home);

}  // namespace zeppelin::cli
