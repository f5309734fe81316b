#include "secrets/secrets.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/fs_util.h"
#include "common/home_layout.h"
#include "spec/parser.h"

namespace zeppelin::secrets {

namespace fs = std::filesystem;

namespace {

Status check_name(const std::string& name) {
  if (spec::is_dns_label(name)) return ok_status();
  return make_error(Errc::kInvalidArgument,
                    "invalid secret name \"" + name + "\": " + spec::kDnsLabelGrammar + " (a DNS-1123 label)");
}

Status check_key(const std::string& key) {
  if (spec::is_secret_key(key)) return ok_status();
  return make_error(Errc::kInvalidArgument, "invalid secret key \"" + key + "\": " + spec::kSecretKeyGrammar);
}

}  // namespace

SecretFiles::SecretFiles(std::string home) : dir_(HomeLayout(std::move(home)).secrets_dir()) {}

Result<std::string> SecretFiles::path(const std::string& name, const std::string& key) const {
  if (auto s = check_name(name); !s) return s.error();
  if (auto s = check_key(key); !s) return s.error();
  return dir_ + "/" + name + "/" + key;
}

Status SecretFiles::set(const std::string& name, const std::string& key, const std::string& value) {
  auto file = path(name, key);
  if (!file) return file.error();
  if (auto s = make_dirs(dir_ + "/" + name, 0700); !s) return s;
  return write_file_atomic(*file, value, 0600);
}

Result<std::string> SecretFiles::get(const std::string& name, const std::string& key) const {
  auto file = path(name, key);
  if (!file) return file.error();
  std::error_code ec;
  if (!fs::is_regular_file(*file, ec)) {
    return make_error(Errc::kNotFound, "no file " + *file + " (set it with `zeppelin secret set " + name + " " + key +
                                           "`, the value on stdin)");
  }
  return read_file(*file);
}

Result<std::vector<SecretInfo>> SecretFiles::list() const {
  std::vector<SecretInfo> out;
  std::error_code ec;
  if (!fs::exists(dir_, ec)) return out;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (!spec::is_dns_label(name) || it->is_symlink(type_ec) || !it->is_directory(type_ec)) continue;
    SecretInfo info{name, {}};
    std::error_code key_ec;
    for (fs::directory_iterator k(it->path(), key_ec), kend; !key_ec && k != kend; k.increment(key_ec)) {
      const std::string key = k->path().filename().string();
      if (spec::is_secret_key(key) && k->is_regular_file(type_ec)) info.keys.push_back(key);
    }
    if (key_ec) return make_error(Errc::kInternal, "cannot list " + it->path().string() + ": " + key_ec.message());
    std::sort(info.keys.begin(), info.keys.end());
    out.push_back(std::move(info));
  }
  if (ec) return make_error(Errc::kInternal, "cannot list " + dir_ + ": " + ec.message());
  std::sort(out.begin(), out.end(), [](const SecretInfo& a, const SecretInfo& b) { return a.name < b.name; });
  return out;
}

Status SecretFiles::remove(const std::string& name, const std::optional<std::string>& key) {
  if (auto s = check_name(name); !s) return s;
  const std::string secret_dir = dir_ + "/" + name;
  std::error_code ec;
  if (!fs::is_directory(secret_dir, ec)) {
    return make_error(Errc::kNotFound, "no secret \"" + name + "\" in " + dir_ + " (see `zeppelin secret ls`)");
  }
  if (!key) {
    fs::remove_all(secret_dir, ec);
    if (ec) return make_error(Errc::kInternal, "cannot remove " + secret_dir + ": " + ec.message());
    return ok_status();
  }
  auto file = path(name, *key);
  if (!file) return file.error();
  if (::unlink(file->c_str()) != 0) {
    if (errno == ENOENT) {
      return make_error(Errc::kNotFound,
                        "secret \"" + name + "\" has no key \"" + *key + "\" (see `zeppelin secret ls`)");
    }
    return make_error(Errc::kInternal, "cannot remove " + *file + ": " + std::strerror(errno));
  }
  // The last key gone, the secret goes too; a directory still holding anything stays.
  ::rmdir(secret_dir.c_str());
  return ok_status();
}

}  // namespace zeppelin::secrets
