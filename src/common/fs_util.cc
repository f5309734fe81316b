#include "common/fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace zeppelin {
namespace {
Error os_error(const std::string& what, const std::string& path) {
  return make_error(Errc::kInternal, what + " " + path + ": " + std::strerror(errno));
}
}  // namespace

Status write_file_atomic(const std::string& path, const std::string& data, int mode) {
  // Hidden, so that a listing of the directory never mistakes it for a finished file.
  const std::filesystem::path target(path);
  const std::string tmp = (target.parent_path() / ("." + target.filename().string() + ".tmp")).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return os_error("cannot create", tmp);
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {  // the umask, or a leftover temp file of another mode
    Error e = os_error("cannot set the mode of", tmp);
    ::close(fd);
    return e;
  }
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      Error e = os_error("cannot write", tmp);
      ::close(fd);
      return e;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return os_error("cannot sync", tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return os_error("cannot rename to", path);
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return ok_status();
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Errc::kNotFound, "cannot open " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

Status make_dirs(const std::string& path, int mode) {
  // Component by component, so that parents get `mode` too rather than 0777 less the umask.
  const std::filesystem::path full = std::filesystem::path(path).lexically_normal();
  std::filesystem::path at;
  for (const auto& part : full) {
    at /= part;
    if (part.empty() || part == "/" || part == ".") continue;
    struct stat st {};
    if (::stat(at.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    if (::mkdir(at.c_str(), static_cast<mode_t>(mode)) == 0) {
      if (::chmod(at.c_str(), static_cast<mode_t>(mode)) != 0) return os_error("cannot set the mode of", at.string());
      continue;
    }
    // Another process may have made it meanwhile.
    if (errno != EEXIST || ::stat(at.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return os_error("cannot create directory", at.string());
    }
  }
  return ok_status();
}

int open_owner_only(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  if (::fchmod(fd, 0600) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

std::string zeppelin_home() {
  if (const char* home = std::getenv(kHomeVariable); home && *home) {
    return std::filesystem::absolute(home).lexically_normal().string();
  }
  const char* user_home = std::getenv("HOME");
  return std::string(user_home && *user_home ? user_home : "/tmp") + "/.zeppelin";
}

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string_view kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string_view::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return env;
}

}  // namespace zeppelin
