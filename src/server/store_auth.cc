#include "server/store_auth.h"

#include <openssl/rand.h>
#include <sys/stat.h>

#include "common/fs_util.h"
#include "common/log.h"
#include "etcd_api/auth.h"
#include "store/store.h"
#include "supervisor/replica_credentials.h"

namespace zeppelin::server {

namespace {

constexpr const char* kRoot = "root";
constexpr const char* kReplicaRole = "zeppelin-replica";

// Worded as etcd clients print AuthStore's errors.
Status from(const Status& s, const std::string& what) {
  if (s) return ok_status();
  return make_error(Errc::kInternal, what + ": etcdserver: " + s.error().message);
}

Result<std::string> random_password() {
  unsigned char bytes[32];  // 256 bits
  if (RAND_bytes(bytes, sizeof bytes) != 1) return make_error(Errc::kInternal, "no random bytes for a password");
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

Status write_credentials(const std::string& file, const std::string& password) {
  const std::string dir = file.substr(0, file.rfind('/'));
  if (auto s = make_dirs(dir, 0700); !s) return s;
  if (::chmod(dir.c_str(), 0700) != 0) return make_error(Errc::kInternal, "cannot make " + dir + " owner-only");
  return write_file_atomic(file, password + "\n", 0600);
}

Result<std::string> read_credentials(const std::string& file) {
  auto text = read_file(file);
  if (!text) return text.error();
  while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
  return *text;
}

// Replicas may use every key outside zeppelin's prefix, and read discovery
// and events under it: never desired state, tokens or anything else there.
Status ensure_replica_user(etcd_api::AuthStore& auth, const std::string& prefix) {
  std::vector<etcd_api::KeyPermission> perms;
  if (auto s = auth.role_get(kReplicaRole, &perms); !s.ok()) {
    if (auto added = auth.role_add(kReplicaRole); !added.ok()) return from(added, "role " + std::string(kReplicaRole));
  }
  const std::string all_from(1, '\0');
  const std::vector<etcd_api::KeyPermission> wanted = {
      {true, true, all_from, prefix},
      {true, true, store::prefix_end(prefix), all_from},
      {true, false, prefix + "services/", store::prefix_end(prefix + "services/")},
      {true, false, prefix + "events/", store::prefix_end(prefix + "events/")},
  };
  for (const auto& p : wanted) {
    if (auto s = auth.role_grant_permission(kReplicaRole, p); !s.ok()) return from(s, "role " + std::string(kReplicaRole));
  }
  std::vector<std::string> roles;
  if (!auth.user_get(supervisor::kReplicaStoreUser, &roles).ok()) {
    // No password: it cannot log in, only hold tokens the server issues.
    if (auto s = auth.user_add(supervisor::kReplicaStoreUser, "", true); !s.ok()) {
      return from(s, "user " + std::string(supervisor::kReplicaStoreUser));
    }
  }
  return from(auth.user_grant_role(supervisor::kReplicaStoreUser, kReplicaRole),
              "user " + std::string(supervisor::kReplicaStoreUser));
}

}  // namespace

Status prepare_store_auth(etcd_api::AuthStore& auth, const StoreAuthOptions& options) {
  if (options.insecure) {
    // Users and roles stay as the owner left them.
    if (auth.enabled()) {
      if (auto s = from(auth.disable(), "disabling auth"); !s) return s;
    }
    log::warn(
        "--insecure-store: the store's etcd API has auth off; anyone who can reach its port can read every "
        "secret in it and run commands as this user");
    return ok_status();
  }
  std::vector<std::string> root_roles;
  const bool root_exists = auth.user_get(kRoot, &root_roles).ok();
  if (options.root_password) {
    // The owner's own root user: its password is checked, never changed.
    if (root_exists && !auth.check_password(kRoot, *options.root_password)) {
      return make_error(Errc::kInvalidArgument,
                        "--store-password-env: that is not the password of the store's root user");
    }
    if (auto s = write_credentials(options.credentials_file, *options.root_password); !s) return s;
    if (!root_exists) {
      if (auto s = from(auth.user_add(kRoot, *options.root_password, false), "user root"); !s) return s;
    }
  } else if (auto saved = read_credentials(options.credentials_file); saved && !saved->empty()) {
    // Written before the user was made, so a start that died in between left it.
    if (!root_exists) {
      if (auto s = from(auth.user_add(kRoot, *saved, false), "user root"); !s) return s;
    }
  } else if (!root_exists) {
    auto password = random_password();
    if (!password) return password.error();
    if (auto s = write_credentials(options.credentials_file, *password); !s) return s;
    if (auto s = from(auth.user_add(kRoot, *password, false), "user root"); !s) return s;
    log::info("the store's etcd API requires auth; root's password is in {}", options.credentials_file);
  } else {
    log::warn(
        "the store's root user is not one zeppelin made and its password is not in {}: zeppelin's own commands "
        "(kv, lock, elect, ns, store) cannot log in until the server is started once with --store-password-env VAR",
        options.credentials_file);
  }
  if (auto s = from(auth.user_grant_role(kRoot, kRoot), "user root"); !s) return s;
  if (auto s = ensure_replica_user(auth, options.zeppelin_prefix); !s) return s;
  if (!auth.enabled()) {
    if (auto s = from(auth.enable(), "enabling auth"); !s) return s;
    log::info("auth enabled on the store's etcd API");
  }
  return ok_status();
}

}  // namespace zeppelin::server
