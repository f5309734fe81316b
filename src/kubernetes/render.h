// Renders a system spec as Kubernetes objects: the manifest stream of
// `zeppelin render --target kubernetes`. The mapping is described in
// docs/kubernetes.md. Rendering is a pure function of the spec (and of the
// files of read-only `source` volumes, which become ConfigMaps): the same
// input gives byte-identical output. Secret values are never read.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"
#include "spec/model.h"

namespace zeppelin::kubernetes {

// Images the renderer adds besides the services' own, pinned by version.
inline constexpr const char* kEtcdImage = "quay.io/coreos/etcd:v3.5.16";
inline constexpr const char* kWaitImage = "busybox:1.36.1";
// Storage requested for a volume without `size`.
inline constexpr const char* kDefaultVolumeSize = "1Gi";

struct RenderOptions {
  std::string ns;  // metadata.namespace of every object; empty: none (kubectl's current namespace)
};

struct Manifest {
  std::vector<nlohmann::ordered_json> objects;  // in output order, keys in kubectl's order
  // What the cluster cannot honour exactly (e.g. `restart: never` on a
  // StatefulSet); for the user's eyes, not part of the output.
  std::vector<std::string> warnings;
};

// Maps `system` to Kubernetes objects. Fails with kInvalidArgument when a
// service cannot run in a cluster (no image, a ${VAR} the cluster does not
// define, a name Kubernetes rejects); the message holds every problem, one
// per line, as FILE:LINE:COL: message.
Result<Manifest> render(const spec::System& system, const RenderOptions& options);

enum class Format { kYaml, kJson };

// render() and to_yaml()/to_json() in one pass, emitting each object as soon
// as it is complete: what `zeppelin render` prints, without keeping the whole
// manifest in memory. Byte-identical to to_yaml(render(...)->objects) (or
// to_json). Warnings go to `warnings` when given.
Result<std::string> render_to(const spec::System& system, const RenderOptions& options, Format format,
                              std::vector<std::string>* warnings = nullptr);

// A YAML stream, one document per object, separated by "---".
std::string to_yaml(const std::vector<nlohmann::ordered_json>& objects);
// One JSON object of kind List holding every object, as kubectl prints.
std::string to_json(const std::vector<nlohmann::ordered_json>& objects);

// Kubernetes quantity notation for bytes ("1Gi", "500M", "1234") and
// millicores ("500m", "2").
std::string format_bytes(std::int64_t bytes);
std::string format_millicores(std::int64_t millis);

}  // namespace zeppelin::kubernetes
