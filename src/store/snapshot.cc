#include "store/snapshot.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include "common/fs_util.h"
#include "store/embedded_store.h"
#include "store/sqlite.h"
#include "store/store_db.h"

namespace zeppelin::store {

namespace {

// The table of a snapshot file that holds the store directory's auth state
// (kAuthStateFile) as one blob. Only snapshots have it: a restore reads it and
// drops it before the copy becomes the store's database.
constexpr const char* kSnapshotAuthTable = "snapshot_auth_state";

// Adds the auth state file, when the store has one, to the snapshot copy at `snapshot_path`.
Status add_auth_state(const std::string& snapshot_path, const std::string& auth_file) {
  if (::access(auth_file.c_str(), F_OK) != 0) return ok_status();  // auth never configured
  auto content = read_file(auth_file);
  if (!content) return content.error();
  auto db = sqlite::Db::open(snapshot_path);
  if (!db) return db.error();
  if (auto s = (*db)->exec(std::string("CREATE TABLE ") + kSnapshotAuthTable + " (content BLOB NOT NULL)"); !s) return s;
  auto insert = (*db)->prepare(std::string("INSERT INTO ") + kSnapshotAuthTable + " (content) VALUES (?1)");
  if (!insert) return insert.error();
  insert->bind_blob(1, *content);
  return insert->run();
}

// Takes the auth state out of a restored copy: its content, or nullopt for a
// snapshot made before snapshots carried it. Its pages are zeroed on the way
// out (the state holds kept tokens), so the store's database keeps no copy.
Result<std::optional<std::string>> take_auth_state(const std::string& restored_path) {
  auto db = sqlite::Db::open(restored_path);
  if (!db) return db.error();
  auto found = (*db)->prepare(std::string("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '") +
                              kSnapshotAuthTable + "'");
  if (!found) return found.error();
  auto row = found->step();
  if (!row) return row.error();
  const bool present = *row && found->column_int(0) == 1;
  found->reset();
  if (!present) return std::optional<std::string>();
  auto select = (*db)->prepare(std::string("SELECT content FROM ") + kSnapshotAuthTable);
  if (!select) return select.error();
  auto content_row = select->step();
  if (!content_row) return content_row.error();
  if (!*content_row) return make_error(Errc::kInvalidArgument, restored_path + ": the snapshot's auth state is empty");
  std::string content = select->column_blob(0);
  select->reset();
  if (auto s = (*db)->exec("PRAGMA secure_delete = ON"); !s) return s.error();
  if (auto s = (*db)->exec(std::string("DROP TABLE ") + kSnapshotAuthTable); !s) return s.error();
  return std::optional<std::string>(std::move(content));
}

}  // namespace

namespace embedded {

Status write_snapshot(const std::string& dir, const std::string& path) {
  // A second connection reads a consistent state while the writer goes on.
  auto reader = sqlite::Db::open(database_path(dir), /*read_only=*/true);
  if (!reader) return reader.error();
  const std::string part = path + ".part";
  ::unlink(part.c_str());
  if (auto s = (*reader)->backup_to(part); !s) {
    ::unlink(part.c_str());
    return s;
  }
  if (auto s = add_auth_state(part, dir + "/" + kAuthStateFile); !s) {
    ::unlink(part.c_str());
    return s;
  }
  if (::rename(part.c_str(), path.c_str()) != 0) {
    Error e = make_error(Errc::kInternal, "rename " + part + " to " + path + ": " + std::strerror(errno));
    ::unlink(part.c_str());
    return e;
  }
  return ok_status();
}

}  // namespace embedded

Status restore_snapshot(const std::string& snapshot_path, const std::string& dir) {
  auto snapshot = sqlite::Db::open(snapshot_path, /*read_only=*/true);
  if (!snapshot) return snapshot.error();
  auto check = (*snapshot)->prepare("SELECT count(*) FROM sqlite_master WHERE name IN ('kv', 'lease', 'meta')");
  if (!check)
    return make_error(Errc::kInvalidArgument, snapshot_path + " is not a store snapshot: " + check.error().message);
  auto row = check->step();
  if (!row || !*row || check->column_int(0) != 3) {
    return make_error(Errc::kInvalidArgument,
                      snapshot_path + " is not a store snapshot (tables kv, lease, meta missing)");
  }
  check->reset();
  if (auto s = make_dirs(dir, 0700); !s) return s;
  auto lock = embedded::DirectoryLock::take(dir);
  if (!lock) return lock.error();
  const std::string target = database_path(dir);
  const std::string part = target + ".restore";
  ::unlink(part.c_str());
  if (auto s = (*snapshot)->backup_to(part); !s) return s;
  auto auth_state = take_auth_state(part);
  if (!auth_state) {
    ::unlink(part.c_str());
    return auth_state.error();
  }
  for (const char* suffix : {"-wal", "-shm"}) ::unlink((target + suffix).c_str());
  if (::rename(part.c_str(), target.c_str()) != 0) {
    return make_error(Errc::kInternal, "rename " + part + " to " + target + ": " + std::strerror(errno));
  }
  if (*auth_state) return write_file_atomic(dir + "/" + kAuthStateFile, **auth_state, 0600);
  return ok_status();
}

}  // namespace zeppelin::store
