// The data directory is owner-only: everything Zeppelin keeps in $ZEPPELIN_HOME
// (the store, logs, secrets, locks, the volumes' parent directories) is 0700
// for a directory and 0600 for a file. Zeppelin creates them so; this finds
// what is looser (an older version, a chmod, a copy) and tightens it.
#pragma once

#include <string>
#include <vector>

namespace zeppelin {

// Removes the group and other permission bits from `home` and everything under
// it, without following symbolic links. A directory whose ACL lets a
// replica's account pass through (traverse_acl.h) keeps that entry and its
// mask; its other bits are tightened all the same. A replica's volume directory
// (volumes/SYSTEM/SERVICE/ORDINAL/VOLUME) and what it holds are left as they are:
// a container may use them as another user. Returns one line per path changed
// (or that could not be), for the server's log.
std::vector<std::string> tighten_home_modes(const std::string& home);

}  // namespace zeppelin
