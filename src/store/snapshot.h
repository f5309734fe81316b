// Snapshots of the embedded store: a consistent copy of its database, taken
// while it serves, that carries the directory's auth state (kAuthStateFile)
// too. restore_snapshot (embedded_store.h) puts one back.
#pragma once

#include <string>

#include "common/result.h"

namespace zeppelin::store::embedded {

// Writes a copy of the store in `dir` to `path` (via `path`.part, renamed
// into place). A second, read-only connection reads one consistent state
// while the writer goes on, so it may be called from any thread.
Status write_snapshot(const std::string& dir, const std::string& path);

}  // namespace zeppelin::store::embedded
