#include "common/home_modes.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/fs_util.h"
#include "common/traverse_acl.h"

namespace zeppelin {

namespace fs = std::filesystem;

namespace {

// Depth below volumes/ of a replica's volume directory: SYSTEM/SERVICE/ORDINAL/VOLUME.
constexpr int kVolumeDepth = 4;

std::string octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// `follow`: the home itself may be a symbolic link to the real directory.
// `public_file`: a regular file in public/ may be read by anyone.
void tighten(const fs::path& path, std::vector<std::string>& out, bool follow = false, bool public_file = false) {
  struct stat st {};
  if ((follow ? ::stat(path.c_str(), &st) : ::lstat(path.c_str(), &st)) != 0 || S_ISLNK(st.st_mode)) return;
  if ((st.st_mode & 077) == 0) return;
  // The group's x bit of a directory that lets a replica's account pass
  // (traverse_acl.h) is that ACL's mask, not a looser mode.
  mode_t keep = S_ISDIR(st.st_mode) && is_traverse_only_acl(path) ? 07710 : 07700;
  if (public_file && S_ISREG(st.st_mode)) keep = 0744;
  if ((st.st_mode & 07777 & ~keep) == 0) return;
  const mode_t to = st.st_mode & keep;
  if (::chmod(path.c_str(), to) != 0) {
    out.push_back("cannot tighten the mode of " + path.string() + " (" + octal(st.st_mode) + "): " + std::strerror(errno));
    return;
  }
  out.push_back("tightened the mode of " + path.string() + " from " + octal(st.st_mode) + " to " + octal(to) +
                ": the data directory is for its owner only");
}

// `volumes_depth`: how deep below volumes/ `dir` is, or -1 outside it.
// `in_public`: `dir` is public/.
void walk(const fs::path& dir, int volumes_depth, std::vector<std::string>& out, bool in_public = false) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& path = it->path();
    const int depth = volumes_depth < 0 ? -1 : volumes_depth + 1;
    if (depth >= kVolumeDepth) continue;  // a replica's volume: not ours to change
    tighten(path, out, false, in_public);
    std::error_code type_ec;
    if (it->is_directory(type_ec) && !it->is_symlink(type_ec)) walk(path, depth, out);
  }
}

}  // namespace

std::vector<std::string> tighten_home_modes(const std::string& home) {
  std::vector<std::string> out;
  const fs::path root(home);
  tighten(root, out, /*follow=*/true);
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& path = it->path();
    tighten(path, out);
    std::error_code type_ec;
    if (it->is_directory(type_ec) && !it->is_symlink(type_ec)) {
      walk(path, path.filename() == kVolumesDir ? 0 : -1, out, path.filename() == kPublicDir);
    }
  }
  return out;
}

Result<std::string> publish_public_copy(const std::string& home, const std::string& source, const std::string& name) {
  auto content = read_file(source);
  if (!content) return content.error();
  const std::string dir = HomeLayout(home).public_dir();
  if (auto s = make_dirs(dir, 0700); !s) return s.error();
  const std::string path = dir + "/" + name;
  // Unchanged, the file keeps its inode: a container's bind mount of it
  // (adopted by a restarted server) still shows the current copy.
  if (auto current = read_file(path); current && *current == *content && ::chmod(path.c_str(), 0644) == 0) return path;
  if (auto s = write_file_atomic(path, *content, 0644); !s) return s.error();
  return path;
}

}  // namespace zeppelin
