// EtcdStore: the Store over an external etcd v3 cluster (etcd 3.4 or later,
// or another zeppelin's etcd API), through gRPC.
//
// Every key lives under `prefix` in etcd; the Store's user sees keys without
// it, and ranges, watches, compares and lease key lists are translated (the
// "every key" range covers the prefix only). Revisions, leases and
// compaction are the cluster's own, shared with whoever else uses it.
//
// Failover and retries are those of etcd_client::Connection (connection.h):
// reads are repeated on the next member, writes only when they were never
// sent. Async writes are applied one at a time, in the order they were
// submitted, on one thread of this store.
//
// Watches run one gRPC watch stream each, on a thread of their own. When the
// stream breaks (the member died, lost its leader, or the connection
// dropped), the watch is re-created on the next member from the revision
// after the last one delivered, so the callback sees every event exactly once
// across member failures (unless that revision got compacted meanwhile: the
// callback then gets the compact revision, as for any compacted watch).
//
// Differences from EmbeddedStore: status().compact_revision is the highest
// compaction this client made or saw (etcd 3.4 does not report it);
// snapshot() writes etcd's own snapshot format (for `etcdctl snapshot
// restore`, not zeppelin's restore).
#pragma once

#include <memory>
#include <string>

#include "etcd_client/connection.h"
#include "store/store.h"

namespace zeppelin::etcd_client {

struct EtcdStoreOptions {
  ConnectionOptions connection;
  std::string prefix;  // e.g. "/zeppelin/"; empty: the whole keyspace
};

class EtcdStore : public store::Store {
 public:
  // Connects (authenticating if a user is given) and checks that a member answers.
  static Result<std::unique_ptr<EtcdStore>> open(const EtcdStoreOptions& options);

  // The connection, for callers that need etcd's other services (Lock, Election).
  virtual std::shared_ptr<Connection> connection() = 0;
};

}  // namespace zeppelin::etcd_client
