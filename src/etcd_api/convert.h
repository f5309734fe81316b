// Translation between etcd's wire messages (etcdserverpb, mvccpb) and the
// Store's types, and from errors to etcd's gRPC statuses.
#pragma once

#include <grpcpp/support/status.h>

#include "rpc.pb.h"
#include "store/store.h"

namespace zeppelin::etcd_api {

// etcd's limits: a request over 1.5 MiB is refused, a transaction holds at most
// 128 operations (--max-txn-ops; here counted over all its nesting levels together).
inline constexpr std::size_t kMaxRequestBytes = 1536 * 1024;
inline constexpr int kMaxTxnOps = 128;
// Larger gRPC messages are refused before they are decoded (RESOURCE_EXHAUSTED),
// as etcd's gRPC server does; between the two limits etcd answers "request is too large".
inline constexpr std::size_t kMaxGrpcMessageBytes = 2 * 1024 * 1024;

store::RangeRequest from_proto(const etcdserverpb::RangeRequest& r);
store::PutRequest from_proto(const etcdserverpb::PutRequest& r);
store::DeleteRangeRequest from_proto(const etcdserverpb::DeleteRangeRequest& r);
store::TxnRequest from_proto(const etcdserverpb::TxnRequest& r);
store::WatchRequest from_proto(const etcdserverpb::WatchCreateRequest& r);

void to_proto(const store::KeyValue& kv, mvccpb::KeyValue* out);
void to_proto(const store::Event& e, mvccpb::Event* out);
// `request` supplies what the store does not apply itself: sorting and revision filters.
void to_proto(const store::RangeResponse& r, const etcdserverpb::RangeRequest& request,
              etcdserverpb::RangeResponse* out);
void to_proto(const store::PutResponse& r, etcdserverpb::PutResponse* out);
void to_proto(const store::DeleteRangeResponse& r, etcdserverpb::DeleteRangeResponse* out);
void to_proto(const store::TxnResponse& r, const etcdserverpb::TxnRequest& request, etcdserverpb::TxnResponse* out);

// A range the store serves as asked, without the sorting and filters handled here.
store::RangeRequest store_range(const etcdserverpb::RangeRequest& r);

// The etcd API's edge: the gRPC status etcd answers for an error of the store
// or of AuthStore (code and message, which clients match on). Every service
// makes its statuses here.
grpc::Status to_status(const Error& e);
grpc::Status to_status(const Status& s);  // OK for OK
grpc::Status request_too_large();
// Checks what etcd checks before applying a transaction: at most `max_ops`
// comparisons and at most `max_ops` operations, each counted over all nesting
// levels together (the branch with more of them at each level, as only one
// branch runs; a nested txn counts as one operation plus its own).
grpc::Status check_txn(const etcdserverpb::TxnRequest& r, int max_ops = kMaxTxnOps);

}  // namespace zeppelin::etcd_api
