// The store credential a replica starts with when the server's own
// coordination store has auth enabled: an etcd user name and a token for it,
// given to the replica as ZEPPELIN_ETCD_USER and ZEPPELIN_ETCD_TOKEN.
//
// The supervisor asks for one each time it starts a replica and drops it when
// that run ends. The server implements the interface over the etcd API's
// users (src/server), so the supervisor depends on no etcd code.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/result.h"

namespace zeppelin::supervisor {

// The store user a replica's token is for unless the spec names another
// (`store.user`): the server keeps it with a role that may use every key
// outside /zeppelin/ and only read discovery and events there, so that no
// replica can rewrite desired state (docs/security.md).
inline constexpr const char* kReplicaStoreUser = "zeppelin-replica";

// A token held by one run of one replica. Destroying it revokes the token.
class ReplicaCredential {
 public:
  virtual ~ReplicaCredential() = default;
  virtual const std::string& user() const = 0;
  virtual const std::string& token() const = 0;
};

class ReplicaCredentials {
 public:
  virtual ~ReplicaCredentials() = default;
  // A credential for etcd user `user`, or null when the store asks for none
  // (auth is disabled). An error naming the user when none can be issued
  // (no such user). Called on the supervisor's thread; must not block long.
  // With `keep_as` (the replica's launch id, for replicas that can outlive
  // the server: containers) the token survives a server restart, and the
  // same `keep_as` gets it again.
  virtual Result<std::unique_ptr<ReplicaCredential>> issue(const std::string& user, const std::string& keep_as) = 0;
  // After recovery: ends the kept tokens of replicas that are not wanted.
  virtual void retain(const std::function<bool(const std::string& keep_as)>& wanted) = 0;
};

}  // namespace zeppelin::supervisor
