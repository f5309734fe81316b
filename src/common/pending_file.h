// New files holding secrets (store snapshots), written beside their final
// path and renamed into place once complete.
#pragma once

#include <string>
#include <utility>

#include "common/result.h"

namespace zeppelin {

// A file that takes the place of `path` only once complete: created beside it
// (same directory, so that the final rename is atomic) with O_EXCL and mode
// 0600 whatever the umask, and removed if never committed. For copies of
// secrets (store snapshots).
class PendingFile {
 public:
  // Fails (naming `path`) when the caller cannot create files in its directory.
  static Result<PendingFile> create(const std::string& path);
  PendingFile(PendingFile&& other) noexcept;
  PendingFile& operator=(PendingFile&&) = delete;
  ~PendingFile();

  int fd() const { return fd_; }
  const std::string& temp_path() const { return temp_; }
  // Syncs and closes the file, renames it to `path` and syncs the directory.
  Status commit();

 private:
  PendingFile(std::string path, std::string temp, int fd) : path_(std::move(path)), temp_(std::move(temp)), fd_(fd) {}
  std::string path_;
  std::string temp_;  // empty once committed or moved from
  int fd_ = -1;
};

}  // namespace zeppelin
