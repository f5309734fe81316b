// Small filesystem and environment helpers shared by the server and the CLI.
#pragma once

#include <map>
#include <string>

#include "common/result.h"

namespace zeppelin {

// Writes `data` to `path` atomically: a temp file, fsync, rename, fsync of the directory.
Status write_file_atomic(const std::string& path, const std::string& data, int mode = 0600);
Result<std::string> read_file(const std::string& path);
Status make_dirs(const std::string& path, int mode = 0755);

// This process's environment as NAME -> value.
std::map<std::string, std::string> process_environment();

// $ZEPPELIN_HOME, else ~/.zeppelin.
std::string zeppelin_home();

}  // namespace zeppelin
