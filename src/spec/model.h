// The system spec, v1: the validated, in-memory form of a zeppelin.yaml file.
// Everything here has passed validation; see docs/spec.md for the file format.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/units.h"

namespace zeppelin::spec {

// 1-based line and column in the spec file; 0 when unknown.
struct Location {
  int line = 0;
  int column = 0;
};

struct Port {
  std::string name;
  int port = 0;
};

struct Volume {
  std::string name;
  std::string path;                   // where the replica expects it (used by containers)
  std::optional<std::string> source;  // absolute host directory; empty: per-replica volume
  bool read_only = false;
  // Storage to request in a cluster (bytes); not enforced locally. Empty: the
  // renderer's default.
  std::optional<std::int64_t> size_bytes;
};

// A value kept out of the spec: key KEY of secret NAME. Locally the file
// $ZEPPELIN_HOME/secrets/NAME/KEY; in Kubernetes the Secret NAME.
struct SecretRef {
  std::string name;                   // a DNS-1123 label
  std::string key;                    // letters, digits, '-', '_', '.'; not "." or ".."
};

struct SecretEnv {
  std::string variable;
  SecretRef secret;
};

struct HealthCheck {
  enum class Kind { kHttp, kTcp, kExec };
  Kind kind = Kind::kTcp;
  int port = 0;                       // resolved port number (http, tcp)
  std::string path = "/";             // http
  std::vector<std::string> exec;      // argv (exec)
  Duration interval = std::chrono::seconds(10);
  Duration timeout = std::chrono::seconds(1);
  int retries = 3;
  Duration start_period = Duration(0);
};

struct Resources {
  std::optional<std::int64_t> cpu_millis;
  std::optional<std::int64_t> memory_bytes;
};

// How to build a service's image first (`build:`), as `docker compose up --build` does.
struct Build {
  std::string context;                // absolute host directory sent to the engine
  std::string dockerfile = "Dockerfile";  // relative to context
  std::vector<std::pair<std::string, std::string>> args;  // build args, in file order
};

// Who a process service's replicas run as (`user:`, `group:`), resolved
// against the host's accounts when the spec is read.
struct RunAs {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;     // `group:`, else the user's primary group
  std::string user_name;     // for its supplementary groups (initgroups)
  std::string home;          // HOME, unless the service's env sets it
  bool operator==(const RunAs&) const = default;
};

enum class Mode { kReplicated, kStateful };
enum class StartOrder { kOrdered, kParallel };
enum class RestartPolicy { kAlways, kOnFailure, kNever };

struct Service {
  std::string name;
  // Process services: the argv (a string becomes {"/bin/sh", "-c", text}).
  // Image services: the arguments given to the entrypoint, Compose-style (a
  // string is split into words like a shell would); empty: the image's CMD.
  std::vector<std::string> command;
  bool shell = false;
  std::string image;                  // "NAME[:TAG]"; empty for a process service
  std::optional<std::vector<std::string>> entrypoint;  // image services only
  std::optional<Build> build;         // image services: build the image first
  // Process services: absolute host directory. Image services: absolute path
  // inside the container, empty for the image's own.
  std::string workdir;
  std::vector<std::pair<std::string, std::string>> env;  // in file order, unexpanded
  std::vector<SecretEnv> secret_env;  // set after `env`, never expanded
  std::vector<Port> ports;
  int replicas = 1;
  Mode mode = Mode::kReplicated;
  StartOrder start = StartOrder::kOrdered;
  Resources resources;
  std::vector<Volume> volumes;
  std::optional<HealthCheck> health;
  RestartPolicy restart = RestartPolicy::kAlways;
  Duration stop_grace = std::chrono::seconds(10);
  std::vector<std::string> depends_on;
  std::optional<RunAs> run_as;        // process services only; unset: the server's own user
  Location location;

  bool is_container() const { return !image.empty(); }
  // Stateful services with ordered start bring replicas up one at a time.
  bool ordered() const { return mode == Mode::kStateful && start == StartOrder::kOrdered; }
};

// An external etcd cluster the system's replicas use (`store: {etcd: ...}`).
struct EtcdStore {
  std::vector<std::string> endpoints;  // http(s)://HOST:PORT, at least one
  std::string user;                    // empty: no authentication
  std::optional<SecretRef> password;   // given exactly when user is
  std::string prefix;                  // key prefix, starts with '/'; default /zeppelin/SYSTEM/
};

struct System {
  std::string name;
  std::vector<Service> services;      // in file order
  std::optional<EtcdStore> etcd;      // store.etcd
  // store.user: with the server's own store and auth enabled there, the etcd
  // user the replicas act as; empty: root. Never set together with etcd.
  std::string store_user;
  std::string file;                   // absolute path of the spec file ("" if from text)
  std::string base_dir;               // directory relative paths resolve against

  const Service* find(const std::string& service) const;
  // Services sorted so that every service comes after those it depends on.
  std::vector<const Service*> dependency_order() const;
};

const char* to_string(Mode m);
const char* to_string(StartOrder s);
const char* to_string(RestartPolicy r);

}  // namespace zeppelin::spec
