#include "spec/accounts.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <vector>

namespace zeppelin::spec {

namespace {

std::optional<std::uint32_t> numeric_id(const std::string& text) {
  if (text.empty() || text.size() > 10 || !std::all_of(text.begin(), text.end(), ::isdigit)) return std::nullopt;
  const unsigned long long id = std::stoull(text);
  if (id >= 0xFFFFFFFFull) return std::nullopt;  // (uid_t)-1 means "unchanged" to setuid
  return static_cast<std::uint32_t>(id);
}

class HostAccounts final : public Accounts {
 public:
  std::optional<UserAccount> find_user(const std::string& name_or_id) const override {
    std::vector<char> buffer(16384);
    passwd entry{};
    passwd* found = nullptr;
    if (auto id = numeric_id(name_or_id)) {
      ::getpwuid_r(*id, &entry, buffer.data(), buffer.size(), &found);
    } else {
      ::getpwnam_r(name_or_id.c_str(), &entry, buffer.data(), buffer.size(), &found);
    }
    if (!found) return std::nullopt;
    return UserAccount{found->pw_uid, found->pw_gid, found->pw_name, found->pw_dir ? found->pw_dir : "/"};
  }

  std::optional<std::uint32_t> find_group(const std::string& name_or_id) const override {
    std::vector<char> buffer(65536);  // a group entry lists its members
    group entry{};
    group* found = nullptr;
    if (auto id = numeric_id(name_or_id)) {
      ::getgrgid_r(*id, &entry, buffer.data(), buffer.size(), &found);
    } else {
      ::getgrnam_r(name_or_id.c_str(), &entry, buffer.data(), buffer.size(), &found);
    }
    if (!found) return std::nullopt;
    return found->gr_gid;
  }

  std::uint32_t effective_uid() const override { return ::geteuid(); }
  std::uint32_t effective_gid() const override { return ::getegid(); }
};

}  // namespace

const Accounts& host_accounts() {
  static const HostAccounts accounts;
  return accounts;
}

}  // namespace zeppelin::spec
