// Search-only passage through owner-only directories, as POSIX ACL entries.
// The data directory is 0700 root, yet a replica running as another account
// (`user:`) must reach its volume below it: each directory on the way gets one
// entry "user:UID:--x" and nothing more, so the account can pass through but
// not list, read or write. The entry's mask shows as the group bits of the mode
// (0710); the owning group's own entry stays ---.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"

namespace zeppelin {

// Gives `uid` search permission (--x) on `dir`, leaving the mode's owner and
// other bits and every other entry as they are; the owning group's entry is
// set to ---. Idempotent: one entry per uid however often it is called. Fails
// with a message naming `dir` when its filesystem does not support ACLs.
Status grant_traverse(const std::string& dir, uid_t uid);

// Removes `uid`'s entry from `dir`, if any; other entries stay. When no named
// entry remains the ACL is plain mode bits again. A missing `dir` is fine.
Status revoke_traverse(const std::string& dir, uid_t uid);

// True when `path` has an extended ACL that grants nothing beyond what
// grant_traverse does: named users with at most --x, no named groups, and the
// owning group's entry ---. The start-up check of modes leaves such a mask alone.
bool is_traverse_only_acl(const std::string& path);

}  // namespace zeppelin
