// The data directory is owner-only: everything Zeppelin keeps in $ZEPPELIN_HOME
// (the store, logs, secrets, locks, the volumes' parent directories) is 0700
// for a directory and 0600 for a file. Zeppelin creates them so; this finds
// what is looser (an older version, a chmod, a copy) and tightens it.
//
// One exception: public/ holds copies of what is not secret but must be
// readable by replicas of other accounts and by containers (the etcd port's CA
// certificate). The directory is 0700 like the rest (a `user:` account gets a
// search-only ACL entry to pass); its files are 0644, so that a bind mount
// shows them readable inside a container whatever user it runs as.
#pragma once

#include <string>
#include <vector>

#include "common/home_layout.h"
#include "common/result.h"

namespace zeppelin {

// Copies the file `source` to public/NAME (mode 0644, written atomically) and
// returns the copy's path. `name` is a plain file name chosen by the caller.
Result<std::string> publish_public_copy(const std::string& home, const std::string& source, const std::string& name);

// Removes the group and other permission bits from `home` and everything under
// it, without following symbolic links. A directory whose ACL lets a
// replica's account pass through (traverse_acl.h) keeps that entry and its
// mask; its other bits are tightened all the same. A replica's volume directory
// (volumes/SYSTEM/SERVICE/ORDINAL/VOLUME) and what it holds are left as they are:
// a container may use them as another user. Files in public/ may stay 0644
// (group and other keep their read bits only). Returns one line per path changed
// (or that could not be), for the server's log.
std::vector<std::string> tighten_home_modes(const std::string& home);

}  // namespace zeppelin
