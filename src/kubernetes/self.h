// The objects that run the zeppelin server itself in a cluster
// (`zeppelin render --target kubernetes --self -n NAMESPACE`): a
// ServiceAccount whose Role grants only what `deploy` needs, in that one
// namespace, and a single-member StatefulSet whose volume keeps the server's
// data directory. Described in docs/kubernetes.md.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"

namespace zeppelin::kubernetes {

// The ports the in-cluster server listens on (API over HTTP, etcd v3 API over gRPC).
inline constexpr int kSelfApiPort = 7380;
inline constexpr int kSelfEtcdPort = 2379;

struct SelfOptions {
  std::string ns;     // required: the RoleBinding must name the ServiceAccount's namespace
  std::string image;  // the zeppelin image (built from the repository's Dockerfile)
  std::string storage = "1Gi";
};

// Fails with kInvalidArgument when the namespace is missing or not a DNS label,
// or the image reference or storage size is malformed.
Result<std::vector<nlohmann::ordered_json>> render_self(const SelfOptions& options);

}  // namespace zeppelin::kubernetes
