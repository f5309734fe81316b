// `zeppelin ns create|ls|rm`: namespaces ("databases") in the coordination
// store. Namespace NAME owns the key prefix /ns/NAME/, the roles NAME-readwrite
// and NAME-read (prefix permissions on it) and optionally a user NAME granted
// NAME-readwrite; the registry of namespaces is the keys /zeppelin/namespaces/NAME.
//
// The commands are etcd clients (the Auth and KV gRPC services), so they work
// against the embedded store and against a real etcd alike.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace zeppelin::cli {

struct NsArgs {
  std::string name;
  std::string endpoints;          // --endpoints URL[,URL...]
  std::string user;               // --user: authenticate as this user (auth enabled)
  std::string user_password_env;  // the variable holding --user's password
  std::string password_env;       // create: the variable holding the namespace user's password
  bool force = false;             // rm: also delete the namespace's keys
  std::string format = "table";   // ls: table or json
};

// Adds `ns` and its subcommands to `app`; returns it (parsed when `*returned`).
CLI::App* add_ns_command(CLI::App& app, NsArgs& args);
// Runs the parsed `ns` subcommand; returns the exit code.
int cmd_ns(const CLI::App& ns, const NsArgs& args);

}  // namespace zeppelin::cli
