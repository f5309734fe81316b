// The replica contract: the environment every replica is started with, and
// ${VAR} expansion of env values and argv. Pure functions, no I/O.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "spec/model.h"
#include "spec/replica_contract.h"

namespace zeppelin::supervisor {

struct ReplicaIdentity {
  const spec::System* system = nullptr;
  const spec::Service* service = nullptr;
  int ordinal = 0;
  int replicas = 0;                                    // the service's desired count
  std::string host;                                    // address the replica listens on
  // Comma-separated host[:port] of each replica of the service (peers) and of
  // each dependency (service -> list), as address_list() makes them; a list
  // longer than kMaxAddressListBytes is left out of the environment.
  std::string peers;
  std::map<std::string, std::string> dependencies;
  std::map<std::string, std::string> volumes;          // volume name -> directory as the replica sees it
  std::string home;                                    // the server's data directory
  std::vector<std::string> etcd_endpoints;             // the server's coordination store (URLs)
  std::string etcd_ca_file;                            // the CA its https:// endpoints are trusted by
  // With etcd_endpoints and auth enabled there: who the replica acts as, and its token.
  std::string etcd_user;
  std::string etcd_token;
  // Reads a secret's value (the server: $ZEPPELIN_HOME/secrets/NAME/KEY). When
  // unset, secret variables are empty: enough to check a spec before it runs.
  std::function<Result<std::string>(const spec::SecretRef&)> read_secret;
};

// "${NAME}" and "${NAME:-default}" expand from `lookup`; "$$" is a literal '$'.
// An unknown name without a default is an error naming it.
Result<std::string> expand_vars(const std::string& text,
                                const std::function<std::optional<std::string>(const std::string&)>& lookup);

// The contract's names and formats, defined in spec/ for every builder of it.
using spec::replica_env::endpoint;
using spec::replica_env::env_name;

// The kernel refuses an exec whose one environment string passes 128 KiB
// (MAX_ARG_STRLEN): ZEPPELIN_PEERS and ZEPPELIN_SERVICE_<NAME> are left out
// when longer than this (about 3,800 replicas with a port), and such replicas
// find each other through the store's discovery instead.
inline constexpr std::size_t kMaxAddressListBytes = 64 * 1024;

// The comma-separated endpoints of `count` replicas, the i-th at host(i).
template <class HostOf>
std::string address_list(const spec::Service& service, int count, HostOf&& host) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    if (i) out += ',';
    out += endpoint(service, host(i));
  }
  return out;
}

// Variables of the caller's environment a system never keeps: the contract's
// own (ZEPPELIN_*, the API token ZEPPELIN_TOKEN among them) and etcdctl's
// (ETCDCTL_*, which may hold "user:password"). Replicas get their own.
bool is_withheld_caller_variable(std::string_view name);

struct LaunchEnv {
  std::vector<std::string> env;   // "KEY=value", complete
  std::vector<std::string> argv;  // expanded
};

// Builds the replica's environment: the caller's (processes only), then
// ZEPPELIN_* and PORT*, then the service's env (expanded; it may refer to the
// caller's variables either way). argv is expanded against the result, except
// for shell-string commands, which the shell expands itself.
Result<LaunchEnv> build_launch_env(const ReplicaIdentity& id, const std::map<std::string, std::string>& caller_env);

}  // namespace zeppelin::supervisor
