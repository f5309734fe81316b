// Resource limits for process replicas through cgroups (v1 or v2, whichever
// the machine mounts). Where neither is writable, limits are not applied and
// the caller warns once; nothing fails silently.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/result.h"
#include "spec/model.h"

namespace zeppelin::runtime {

class Cgroups {
 public:
  enum class Version { kNone, kV1, kV2 };
  // Looks at /sys/fs/cgroup once; `root_name` is the subtree this server owns.
  static Cgroups detect(const std::string& root_name);

  Version version() const { return version_; }
  // Creates the group for `id` with the limits; returns an opaque handle (the id).
  Result<std::string> create(const std::string& id, const spec::Resources& resources);
  void add(const std::string& handle, pid_t pid);
  // True when the kernel OOM-killed something in the group.
  bool oom_killed(const std::string& handle) const;
  // Kills whatever is left in the group and removes it.
  void destroy(const std::string& handle);

 private:
  std::string dir(const std::string& controller, const std::string& handle) const;

  Version version_ = Version::kNone;
  std::string root_name_;
};

}  // namespace zeppelin::runtime
