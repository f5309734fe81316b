// The labels on every Kubernetes object zeppelin renders (Kubernetes'
// recommended app.kubernetes.io set), and the selector that finds a system's
// objects again: `deploy` prunes, and `ps`, `logs` and `stop --target
// kubernetes` list, by what `render` wrote, so both sides read these.
#pragma once

#include <string>

namespace zeppelin::kubernetes {

inline constexpr char kNameLabel[] = "app.kubernetes.io/name";            // the service, "etcd" or "zeppelin"
inline constexpr char kInstanceLabel[] = "app.kubernetes.io/instance";    // the system
inline constexpr char kComponentLabel[] = "app.kubernetes.io/component";  // the service, "store" or "server"
inline constexpr char kPartOfLabel[] = "app.kubernetes.io/part-of";       // the system
inline constexpr char kManagedByLabel[] = "app.kubernetes.io/managed-by";
inline constexpr char kManager[] = "zeppelin";  // the value of kManagedByLabel

// The label selector of everything deployed for `system`.
inline std::string system_selector(const std::string& system) {
  return std::string(kInstanceLabel) + "=" + system + "," + kManagedByLabel + "=" + kManager;
}

}  // namespace zeppelin::kubernetes
