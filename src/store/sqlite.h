// A thin RAII layer over the SQLite C API: a connection and prepared
// statements whose failures come back as Result/Status naming the database
// file and the statement. Not thread-safe: one owner per Db.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.h"

namespace zeppelin::store::sqlite {

class Statement {
 public:
  Statement() = default;
  Statement(sqlite3_stmt* stmt, std::string context) : stmt_(stmt), context_(std::move(context)) {}
  Statement(Statement&& o) noexcept : stmt_(std::exchange(o.stmt_, nullptr)), context_(std::move(o.context_)) {}
  Statement& operator=(Statement&& o) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQLite. Blobs are copied by SQLite (SQLITE_TRANSIENT)
  // unless `copy` is false, in which case `value` must outlive the next step().
  void bind(int index, int64_t value);
  void bind_blob(int index, std::string_view value, bool copy = true);

  // Runs to completion a statement that returns no rows; resets it afterwards.
  Status run();
  // Advances to the next row: true on a row, false when done (the statement is reset then).
  Result<bool> step();
  void reset();

  int64_t column_int(int index) const;
  std::string column_blob(int index) const;

 private:
  sqlite3_stmt* stmt_ = nullptr;
  std::string context_;  // "FILE: SQL" for error messages
};

class Db {
 public:
  // Opens (creating if asked) the database file; errors name the file.
  static Result<std::unique_ptr<Db>> open(const std::string& path, bool read_only = false);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  Status exec(const std::string& sql);
  Result<Statement> prepare(const std::string& sql);
  // Copies the whole database into a new file at `path` (created 0600; it
  // must not exist) with the online backup API.
  Status backup_to(const std::string& path);

  sqlite3* handle() { return db_; }
  const std::string& path() const { return path_; }

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

}  // namespace zeppelin::store::sqlite
