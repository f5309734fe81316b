// Files under $ZEPPELIN_HOME that more than one component reads: the server
// writes them, the CLI finds them.
#pragma once

#include <string>

namespace zeppelin {

// The embedded store's root password, made by the server on first start
// (0600, in a 0700 directory): zeppelin's own commands log in with it.
inline std::string store_root_credentials_path(const std::string& home) {
  return home + "/credentials/store-root";
}

}  // namespace zeppelin
