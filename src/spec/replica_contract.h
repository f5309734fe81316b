// The replica environment contract (docs/spec.md, "The replica environment"):
// the names of the variables every replica starts with and how their values
// are spelled. Two builders fill it in, the supervisor for local replicas
// (loopback addresses; supervisor/replica_env.h) and the Kubernetes renderer
// (cluster DNS names; kubernetes/render.h), and `zeppelin kv|lock|elect|ns`
// read it back inside a replica. Their values differ; the names and formats
// are defined here alone, so that they cannot drift apart.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/fs_util.h"
#include "spec/model.h"

namespace zeppelin::spec::replica_env {

inline constexpr char kSystem[] = "ZEPPELIN_SYSTEM";
inline constexpr char kService[] = "ZEPPELIN_SERVICE";
inline constexpr char kReplica[] = "ZEPPELIN_REPLICA";    // the ordinal, from 0
inline constexpr char kReplicas[] = "ZEPPELIN_REPLICAS";  // the desired count when the replica started
inline constexpr char kHost[] = "ZEPPELIN_HOST";          // the address the replica listens on
inline constexpr const char* kHome = kHomeVariable;       // the server's data directory, as the CLI reads it
inline constexpr char kPeers[] = "ZEPPELIN_PEERS";        // a list of endpoint()s, ordinals 0 to N-1
inline constexpr char kPort[] = "PORT";                   // the first port

// The coordination store: the server's own, or the spec's store.etcd.
inline constexpr char kEtcdEndpoints[] = "ZEPPELIN_ETCD_ENDPOINTS";
inline constexpr char kEtcdPrefix[] = "ZEPPELIN_ETCD_PREFIX";
inline constexpr char kEtcdCaCert[] = "ZEPPELIN_ETCD_CACERT";
inline constexpr char kEtcdUser[] = "ZEPPELIN_ETCD_USER";
inline constexpr char kEtcdPassword[] = "ZEPPELIN_ETCD_PASSWORD";
inline constexpr char kEtcdToken[] = "ZEPPELIN_ETCD_TOKEN";
// etcdctl's names for the same, so that etcdctl run by a replica needs no flags.
inline constexpr char kEtcdctlCaCert[] = "ETCDCTL_CACERT";
inline constexpr char kEtcdctlUser[] = "ETCDCTL_USER";  // "USER:PASSWORD"

// The data directory of the server that started a local process; every
// process of that server carries it, which is how the next server finds them.
inline constexpr char kSupervisor[] = "ZEPPELIN_SUPERVISOR";

// In a Kubernetes cluster only: the pod's namespace and name.
inline constexpr char kNamespace[] = "ZEPPELIN_NAMESPACE";
inline constexpr char kPod[] = "ZEPPELIN_POD";

// A service, volume or port name as a variable name's suffix: "db-main" -> "DB_MAIN".
std::string env_name(std::string_view name);

// PORT_<NAME>, ZEPPELIN_SERVICE_<NAME> (a dependency's replicas, as a list of
// endpoint()s) and ZEPPELIN_VOLUME_<NAME> (the volume's directory).
std::string port_variable(std::string_view port);
std::string dependency_variable(std::string_view service);
std::string volume_variable(std::string_view volume);

// PORT (when the service has ports), then PORT_<NAME> for every port, with
// their values: the same wherever the replica runs.
std::vector<std::pair<std::string, std::string>> port_variables(const Service& service);

// How a replica at `host` is reached: HOST:PORT with the service's first
// port, or HOST alone when it has none.
std::string endpoint(const Service& service, const std::string& host);

// The form of every list value (ZEPPELIN_PEERS, ZEPPELIN_SERVICE_<NAME>,
// ZEPPELIN_ETCD_ENDPOINTS): comma-separated, no spaces.
std::string join_list(const std::vector<std::string>& items);

// ZEPPELIN_ETCD_PREFIX when the spec gives none: /zeppelin/SYSTEM/.
std::string default_etcd_prefix(const std::string& system);

}  // namespace zeppelin::spec::replica_env
