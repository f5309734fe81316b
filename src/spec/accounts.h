// The host's users and groups, as the spec parser consults them for a process
// service's `user:` and `group:`. A seam: tests name accounts that do not
// exist on the host, and a server that is or is not root.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace zeppelin::spec {

struct UserAccount {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;  // the account's primary group
  std::string name;
  std::string home;
};

class Accounts {
 public:
  virtual ~Accounts() = default;
  // A user by name or, for all digits, by numeric id; nullopt when the host has none.
  virtual std::optional<UserAccount> find_user(const std::string& name_or_id) const = 0;
  // A group's id by name or numeric id; nullopt when the host has none.
  virtual std::optional<std::uint32_t> find_group(const std::string& name_or_id) const = 0;
  // Who the server (or the validating CLI) runs as: only root may run a
  // replica as someone else.
  virtual std::uint32_t effective_uid() const = 0;
  virtual std::uint32_t effective_gid() const = 0;
};

// The host's own database (getpwnam_r and friends) and this process's ids.
const Accounts& host_accounts();

}  // namespace zeppelin::spec
