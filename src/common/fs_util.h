// Small filesystem and environment helpers shared by the server and the CLI.
#pragma once

#include <map>
#include <string>

#include "common/result.h"

namespace zeppelin {

// Writes `data` to `path` atomically: a temp file (.NAME.tmp beside it), fsync,
// rename, fsync of the directory. The file gets exactly `mode`, whatever the umask.
Status write_file_atomic(const std::string& path, const std::string& data, int mode = 0600);
Result<std::string> read_file(const std::string& path);
// Creates `path` and its missing parents, each with exactly `mode` (the umask
// does not apply). Directories that exist already keep their mode.
Status make_dirs(const std::string& path, int mode = 0755);
// open(2) with O_CREAT | O_CLOEXEC added, then fchmod to 0600: a file of ours
// is owner-only whatever the umask, and one found looser is tightened. Returns
// the descriptor, or -1 with errno set.
int open_owner_only(const std::string& path, int flags);

// This process's environment as NAME -> value.
std::map<std::string, std::string> process_environment();

// The variable that names the data directory, for the server, the CLI and
// the replicas alike.
inline constexpr char kHomeVariable[] = "ZEPPELIN_HOME";

// $ZEPPELIN_HOME, else ~/.zeppelin.
std::string zeppelin_home();

}  // namespace zeppelin
