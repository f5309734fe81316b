// Locks the embedded store's etcd API down before its port opens: etcd auth
// enabled, a `root` user whose random password only the owner can read, and
// the least-privileged user replicas get tokens for. See docs/security.md.
#pragma once

#include <optional>
#include <string>

#include "common/result.h"

namespace zeppelin::etcd_api {
class AuthStore;
}

namespace zeppelin::server {

struct StoreAuthOptions {
  std::string credentials_file;             // HomeLayout::store_root_credentials()
  std::optional<std::string> root_password;  // --store-password-env: the owner's own root password
  bool insecure = false;                     // --insecure-store: auth stays off
  std::string zeppelin_prefix = "/zeppelin/";
};

// Idempotent; runs at every start. On a store without auth it makes `root`
// (a 256-bit random password written to `credentials_file` first, so that a
// crash in between leaves a password the next start finds) and enables auth.
// A root user the owner made keeps its password; given once with
// `root_password` it is checked and written to `credentials_file`. Also
// keeps the replicas' role and user (supervisor::kReplicaStoreUser). With
// `insecure`, auth is disabled and users and roles are left alone.
Status prepare_store_auth(etcd_api::AuthStore& auth, const StoreAuthOptions& options);

}  // namespace zeppelin::server
