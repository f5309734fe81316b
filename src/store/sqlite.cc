#include "store/sqlite.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace zeppelin::store::sqlite {

namespace {

Error sqlite_error(sqlite3* db, const std::string& context) {
  return make_error(Errc::kInternal, context + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

}  // namespace

Statement& Statement::operator=(Statement&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(stmt_);
    stmt_ = std::exchange(o.stmt_, nullptr);
    context_ = std::move(o.context_);
  }
  return *this;
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

void Statement::bind(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }

void Statement::bind_blob(int index, std::string_view value, bool copy) {
  // A zero-length blob still binds as a blob (not NULL) with a non-null pointer.
  static constexpr char kEmpty = 0;
  sqlite3_bind_blob64(stmt_, index, value.empty() ? &kEmpty : value.data(), value.size(),
                      copy ? SQLITE_TRANSIENT : SQLITE_STATIC);
}

Status Statement::run() {
  const int rc = sqlite3_step(stmt_);
  sqlite3_reset(stmt_);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return sqlite_error(sqlite3_db_handle(stmt_), context_);
  return ok_status();
}

Result<bool> Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  sqlite3_reset(stmt_);
  if (rc == SQLITE_DONE) return false;
  return sqlite_error(sqlite3_db_handle(stmt_), context_);
}

void Statement::reset() { sqlite3_reset(stmt_); }

int64_t Statement::column_int(int index) const { return sqlite3_column_int64(stmt_, index); }

std::string Statement::column_blob(int index) const {
  const void* data = sqlite3_column_blob(stmt_, index);
  const int size = sqlite3_column_bytes(stmt_, index);
  return data ? std::string(static_cast<const char*>(data), static_cast<std::size_t>(size)) : std::string();
}

Result<std::unique_ptr<Db>> Db::open(const std::string& path, bool read_only) {
  if (!read_only) {
    // SQLite would create the database 0644 less the umask, and its -wal, -shm
    // and -journal files with the database's mode: an empty file of ours first.
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::fchmod(fd, 0600);
      ::close(fd);
    }
  }
  sqlite3* db = nullptr;
  const int flags =
      (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    Error e = sqlite_error(db, "open " + path);
    sqlite3_close(db);
    return e;
  }
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<Db>(new Db(db, path));
}

Db::~Db() { sqlite3_close(db_); }

Status Db::exec(const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    Error e = make_error(Errc::kInternal, path_ + ": " + sql + ": " + (message ? message : "unknown error"));
    sqlite3_free(message);
    return e;
  }
  return ok_status();
}

Result<Statement> Db::prepare(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
    return sqlite_error(db_, path_ + ": " + sql);
  }
  return Statement(stmt, path_ + ": " + sql);
}

Status Db::backup_to(const std::string& path) {
  // A copy holds every key: it is created 0600 whatever the umask (SQLite
  // would create it 0644), and its journal takes the same mode. It must be new.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return make_error(Errc::kInternal, "cannot create " + path + ": " + std::strerror(errno));
  const bool private_mode = ::fchmod(fd, 0600) == 0;
  const int saved = errno;
  ::close(fd);
  if (!private_mode) {
    ::unlink(path.c_str());
    return make_error(Errc::kInternal, "cannot make " + path + " private: " + std::strerror(saved));
  }
  auto dest = Db::open(path);
  if (!dest) return dest.error();
  sqlite3_backup* backup = sqlite3_backup_init((*dest)->handle(), "main", db_, "main");
  if (!backup) return sqlite_error((*dest)->handle(), "backup of " + path_ + " to " + path);
  // One step copies every page inside a single read transaction: a consistent copy.
  const int rc = sqlite3_backup_step(backup, -1);
  sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) {
    return make_error(Errc::kInternal, "backup of " + path_ + " to " + path + ": " + sqlite3_errstr(rc));
  }
  return (*dest)->exec("PRAGMA journal_mode=DELETE");
}

}  // namespace zeppelin::store::sqlite
