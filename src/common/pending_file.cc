#include "common/pending_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <utility>

namespace zeppelin {

namespace {
Error os_error(const std::string& what, const std::string& path) {
  return make_error(Errc::kInternal, what + " " + path + ": " + std::strerror(errno));
}
}  // namespace

Result<PendingFile> PendingFile::create(const std::string& path) {
  const std::filesystem::path target(path);
  if (target.filename().empty()) return make_error(Errc::kInvalidArgument, path + " is a directory, not a file name");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return make_error(Errc::kInvalidArgument, path + " is a directory, not a file name");
  }
  const std::string dir = target.parent_path().empty() ? "." : target.parent_path().string();
  std::random_device random;
  for (int attempt = 0;; ++attempt) {
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, ".%d-%08x.part", ::getpid(), random());
    const std::string temp = dir + "/." + target.filename().string() + suffix;
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST && attempt < 8) continue;
      return make_error(Errc::kInvalidArgument, "cannot write " + path + ": " + std::strerror(errno));
    }
    if (::fchmod(fd, 0600) != 0) {  // the umask may have removed the owner's bits
      Error e = os_error("cannot make private", temp);
      ::close(fd);
      ::unlink(temp.c_str());
      return e;
    }
    return PendingFile(path, temp, fd);
  }
}

PendingFile::PendingFile(PendingFile&& other) noexcept
    : path_(std::move(other.path_)), temp_(std::exchange(other.temp_, {})), fd_(std::exchange(other.fd_, -1)) {}

PendingFile::~PendingFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_.empty()) ::unlink(temp_.c_str());
}

Status PendingFile::commit() {
  if (const int fd = std::exchange(fd_, -1); fd >= 0) {
    const bool synced = ::fsync(fd) == 0;
    if (::close(fd) != 0 || !synced) return os_error("cannot sync", temp_);
  }
  if (::rename(temp_.c_str(), path_.c_str()) != 0) return os_error("cannot rename to", path_);
  temp_.clear();
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return ok_status();
}

}  // namespace zeppelin
