// The objects that run the zeppelin server itself in a cluster
// (`zeppelin render --target kubernetes --self -n NAMESPACE`): a
// ServiceAccount whose Role grants only what `deploy` needs, in that one
// namespace, a NetworkPolicy that keeps the etcd port to the namespace, and a
// single-member StatefulSet whose volume keeps the server's data directory and
// whose credentials come from a Secret. Described in docs/kubernetes.md.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"

namespace zeppelin::kubernetes {

// The ports the in-cluster server listens on (API over HTTP, etcd v3 API over gRPC).
inline constexpr int kSelfApiPort = 7380;
inline constexpr int kSelfEtcdPort = 2379;
// The Secret the owner makes once, before applying (docs/kubernetes.md):
// `store-root-password` (the embedded store's root user) and `api-token` (the
// API's admin token "bootstrap"), each at least 32 random characters.
inline constexpr char kSelfCredentialsSecret[] = "zeppelin-credentials";

struct SelfOptions {
  std::string ns;     // required: the RoleBinding must name the ServiceAccount's namespace
  std::string image;  // the zeppelin image (built from the repository's Dockerfile)
  std::string storage = "1Gi";
};

// Fails with kInvalidArgument when the namespace is missing or not a DNS label,
// or the image reference or storage size is malformed.
Result<std::vector<nlohmann::ordered_json>> render_self(const SelfOptions& options);

}  // namespace zeppelin::kubernetes
