// etcd's KV calls on a Store, apart from any transport: the HTTP/2 front
// (grpc_front.h) answers gRPC clients with them, KvService the few calls the
// front relays to gRPC, and the JSON gateway calls them in process, so a
// gateway request costs no loopback gRPC call.
#pragma once

#include <grpcpp/support/status.h>

#include <functional>
#include <string>

#include "etcd_api/etcd_server.h"
#include "rpc.pb.h"
#include "store/store.h"

namespace zeppelin::etcd_api {

class AuthStore;
class Header;

class KvCalls {
 public:
  // Called once with the call's outcome; `response` is filled when it is OK.
  // May run on the calling thread or on a store thread, and must not block.
  using Done = std::function<void(const grpc::Status&)>;

  KvCalls(store::Store& store, const Header& header, AuthStore& auth, const EtcdServerOptions& options)
      : store_(store), header_(header), auth_(auth), options_(options) {}

  // Each checks etcd's request size limit and what `token` (empty: none) may
  // do, then answers. `request` and `response` must stay valid until `done`.
  void range(const std::string& token, const etcdserverpb::RangeRequest& request, etcdserverpb::RangeResponse* response,
             Done done);
  void put(const std::string& token, const etcdserverpb::PutRequest& request, etcdserverpb::PutResponse* response,
           Done done);
  void delete_range(const std::string& token, const etcdserverpb::DeleteRangeRequest& request,
                    etcdserverpb::DeleteRangeResponse* response, Done done);
  void txn(const std::string& token, const etcdserverpb::TxnRequest& request, etcdserverpb::TxnResponse* response,
           Done done);
  // Compaction discards every user's history: the root role only.
  void compact(const std::string& token, const etcdserverpb::CompactionRequest& request,
               etcdserverpb::CompactionResponse* response, Done done);

 private:
  store::Store& store_;
  const Header& header_;
  AuthStore& auth_;
  const EtcdServerOptions& options_;  // max_txn_ops, max_response_bytes
};

}  // namespace zeppelin::etcd_api
