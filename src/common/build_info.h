// What this binary is: its version, the commit and build type it was built
// from, and the version of the HTTP API it speaks (`zeppelin version`, and
// GET /v1/version of the server).
#pragma once

#include <string>

namespace zeppelin {

// The path prefix of every route, /v1/...; a CLI and a server that differ in
// it cannot talk.
inline constexpr const char* kApiVersion = "v1";

struct BuildInfo {
  std::string version;     // the project's version
  std::string commit;      // `git describe --always --dirty` when the build was configured; "unknown" outside git
  std::string build_type;  // CMake's: RelWithDebInfo, Debug, ...
};

const BuildInfo& build_info();

}  // namespace zeppelin
