#include "etcd_api/convert.h"

#include <algorithm>

namespace zeppelin::etcd_api {

namespace pb = etcdserverpb;

namespace {

store::RequestOp op_from_proto(const pb::RequestOp& op) {
  switch (op.request_case()) {
    case pb::RequestOp::kRequestRange:
      return store_range(op.request_range());
    case pb::RequestOp::kRequestPut:
      return from_proto(op.request_put());
    case pb::RequestOp::kRequestDeleteRange:
      return from_proto(op.request_delete_range());
    case pb::RequestOp::kRequestTxn:
      return std::make_shared<store::TxnRequest>(from_proto(op.request_txn()));
    case pb::RequestOp::REQUEST_NOT_SET:
      break;
  }
  // etcd treats an empty operation as an empty range, which fails on its empty key.
  return store::RangeRequest{};
}

store::Compare compare_from_proto(const pb::Compare& c) {
  store::Compare out;
  out.key = c.key();
  out.range_end = c.range_end();
  switch (c.result()) {
    case pb::Compare::GREATER:
      out.op = store::Compare::Op::kGreater;
      break;
    case pb::Compare::LESS:
      out.op = store::Compare::Op::kLess;
      break;
    case pb::Compare::NOT_EQUAL:
      out.op = store::Compare::Op::kNotEqual;
      break;
    default:
      out.op = store::Compare::Op::kEqual;
      break;
  }
  switch (c.target()) {
    case pb::Compare::VERSION:
      out.target = store::Compare::Target::kVersion;
      out.number = c.version();
      break;
    case pb::Compare::CREATE:
      out.target = store::Compare::Target::kCreateRevision;
      out.number = c.create_revision();
      break;
    case pb::Compare::MOD:
      out.target = store::Compare::Target::kModRevision;
      out.number = c.mod_revision();
      break;
    case pb::Compare::LEASE:
      out.target = store::Compare::Target::kLease;
      out.number = c.lease();
      break;
    default:
      out.target = store::Compare::Target::kValue;
      out.value = c.value();
      break;
  }
  return out;
}

// Sorting and revision filters, which the store leaves to the API as etcd's
// server applies them on top of its index too.
bool needs_post_processing(const pb::RangeRequest& r) {
  const bool sorted = r.sort_order() != pb::RangeRequest::NONE &&
                      !(r.sort_target() == pb::RangeRequest::KEY && r.sort_order() == pb::RangeRequest::ASCEND);
  const bool filtered =
      r.min_mod_revision() || r.max_mod_revision() || r.min_create_revision() || r.max_create_revision();
  return sorted || filtered;
}

void fill_range(const store::RangeResponse& r, const pb::RangeRequest& request, pb::RangeResponse* out) {
  out->mutable_header()->set_revision(r.revision);
  out->set_count(r.count);
  if (!needs_post_processing(request)) {
    out->set_more(r.more);
    for (const auto& kv : r.kvs) to_proto(kv, out->add_kvs());
    return;
  }
  std::vector<store::KeyValue> kvs;
  for (const auto& kv : r.kvs) {
    if (request.min_mod_revision() && kv.mod_revision < request.min_mod_revision()) continue;
    if (request.max_mod_revision() && kv.mod_revision > request.max_mod_revision()) continue;
    if (request.min_create_revision() && kv.create_revision < request.min_create_revision()) continue;
    if (request.max_create_revision() && kv.create_revision > request.max_create_revision()) continue;
    kvs.push_back(kv);
  }
  if (request.sort_order() != pb::RangeRequest::NONE) {
    auto less = [&](const store::KeyValue& a, const store::KeyValue& b) {
      switch (request.sort_target()) {
        case pb::RangeRequest::VERSION:
          return a.version < b.version;
        case pb::RangeRequest::CREATE:
          return a.create_revision < b.create_revision;
        case pb::RangeRequest::MOD:
          return a.mod_revision < b.mod_revision;
        case pb::RangeRequest::VALUE:
          return a.value < b.value;
        default:
          return a.key < b.key;
      }
    };
    std::stable_sort(kvs.begin(), kvs.end(), less);
    if (request.sort_order() == pb::RangeRequest::DESCEND) std::reverse(kvs.begin(), kvs.end());
  }
  if (request.limit() > 0 && static_cast<int64_t>(kvs.size()) > request.limit()) {
    kvs.resize(static_cast<std::size_t>(request.limit()));
    out->set_more(true);
  }
  for (const auto& kv : kvs) to_proto(kv, out->add_kvs());
}

}  // namespace

store::RangeRequest store_range(const pb::RangeRequest& r) {
  store::RangeRequest out{r.key(), r.range_end(), r.limit(), r.revision(), r.keys_only(), r.count_only()};
  // Sorting or filtering needs every key before the limit applies.
  if (needs_post_processing(r)) out.limit = 0;
  return out;
}

store::RangeRequest from_proto(const pb::RangeRequest& r) { return store_range(r); }

store::PutRequest from_proto(const pb::PutRequest& r) {
  return store::PutRequest{r.key(), r.value(), r.lease(), r.prev_kv(), r.ignore_value(), r.ignore_lease()};
}

store::DeleteRangeRequest from_proto(const pb::DeleteRangeRequest& r) {
  return store::DeleteRangeRequest{r.key(), r.range_end(), r.prev_kv()};
}

store::TxnRequest from_proto(const pb::TxnRequest& r) {
  store::TxnRequest out;
  for (const auto& c : r.compare()) out.compare.push_back(compare_from_proto(c));
  for (const auto& op : r.success()) out.success.push_back(op_from_proto(op));
  for (const auto& op : r.failure()) out.failure.push_back(op_from_proto(op));
  return out;
}

store::WatchRequest from_proto(const pb::WatchCreateRequest& r) {
  store::WatchRequest out;
  out.key = r.key();
  out.range_end = r.range_end();
  out.start_revision = r.start_revision();
  out.prev_kv = r.prev_kv();
  for (int f : r.filters()) {
    if (f == pb::WatchCreateRequest::NOPUT) out.no_put = true;
    if (f == pb::WatchCreateRequest::NODELETE) out.no_delete = true;
  }
  return out;
}

void to_proto(const store::KeyValue& kv, mvccpb::KeyValue* out) {
  out->set_key(kv.key);
  out->set_create_revision(kv.create_revision);
  out->set_mod_revision(kv.mod_revision);
  out->set_version(kv.version);
  out->set_value(kv.value);
  out->set_lease(kv.lease);
}

void to_proto(const store::Event& e, mvccpb::Event* out) {
  out->set_type(e.type == store::Event::Type::kPut ? mvccpb::Event::PUT : mvccpb::Event::DELETE);
  to_proto(e.kv, out->mutable_kv());
  if (e.prev_kv) to_proto(*e.prev_kv, out->mutable_prev_kv());
}

void to_proto(const store::RangeResponse& r, const pb::RangeRequest& request, pb::RangeResponse* out) {
  fill_range(r, request, out);
}

void to_proto(const store::PutResponse& r, pb::PutResponse* out) {
  out->mutable_header()->set_revision(r.revision);
  if (r.prev_kv) to_proto(*r.prev_kv, out->mutable_prev_kv());
}

void to_proto(const store::DeleteRangeResponse& r, pb::DeleteRangeResponse* out) {
  out->mutable_header()->set_revision(r.revision);
  out->set_deleted(r.deleted);
  for (const auto& kv : r.prev_kvs) to_proto(kv, out->add_prev_kvs());
}

void to_proto(const store::TxnResponse& r, const pb::TxnRequest& request, pb::TxnResponse* out) {
  out->mutable_header()->set_revision(r.revision);
  out->set_succeeded(r.succeeded);
  const auto& ops = r.succeeded ? request.success() : request.failure();
  for (std::size_t i = 0; i < r.responses.size(); ++i) {
    auto* resp = out->add_responses();
    const auto& op = r.responses[i];
    if (const auto* range = std::get_if<store::RangeResponse>(&op)) {
      fill_range(*range, ops[static_cast<int>(i)].request_range(), resp->mutable_response_range());
    } else if (const auto* put = std::get_if<store::PutResponse>(&op)) {
      to_proto(*put, resp->mutable_response_put());
    } else if (const auto* del = std::get_if<store::DeleteRangeResponse>(&op)) {
      to_proto(*del, resp->mutable_response_delete_range());
    } else {
      const auto& nested = std::get<std::shared_ptr<store::TxnResponse>>(op);
      to_proto(*nested, ops[static_cast<int>(i)].request_txn(), resp->mutable_response_txn());
    }
  }
}

grpc::Status to_status(const Error& e) {
  using Code = grpc::StatusCode;
  switch (e.code) {
    // The store's conditions, in etcd's words (api/v3rpc/rpctypes): the store's
    // details after them are not etcd's, so they stay off the wire.
    case Errc::kCompacted:
      return {Code::OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"};
    case Errc::kFutureRevision:
      return {Code::OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"};
    case Errc::kLeaseNotFound:
      return {Code::NOT_FOUND, "etcdserver: requested lease not found"};
    case Errc::kLeaseExists:
      return {Code::FAILED_PRECONDITION, "etcdserver: lease already exists"};
    case Errc::kLeaseTtlTooLarge:
      return {Code::OUT_OF_RANGE, "etcdserver: too large lease TTL"};
    case Errc::kNoSpace:
      return {Code::RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded"};
    case Errc::kDuplicateKey:
      return {Code::INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request"};
    case Errc::kKeyNotFound:
      return {Code::INVALID_ARGUMENT, "etcdserver: key not found"};
    // Not etcd's: its message says how to page, so it goes out whole.
    case Errc::kResponseTooLarge:
      return {Code::RESOURCE_EXHAUSTED, "etcdserver: " + e.message};
    case Errc::kInvalidArgument:
    case Errc::kTooLarge:
      return {Code::INVALID_ARGUMENT, "etcdserver: " + e.message};
    case Errc::kUnavailable:
      return {Code::UNAVAILABLE, "etcdserver: " + e.message};
    // etcd answers a missing or existing user or role, and auth's other
    // preconditions, with FAILED_PRECONDITION.
    case Errc::kNotFound:
    case Errc::kAlreadyExists:
    case Errc::kFailedPrecondition:
      return {Code::FAILED_PRECONDITION, "etcdserver: " + e.message};
    case Errc::kUnauthenticated:
      return {Code::UNAUTHENTICATED, "etcdserver: " + e.message};
    case Errc::kPermissionDenied:
      return {Code::PERMISSION_DENIED, "etcdserver: " + e.message};
    case Errc::kTimeout:
    case Errc::kInternal:
      break;
  }
  return {Code::INTERNAL, "etcdserver: " + e.message};
}

grpc::Status to_status(const Status& s) { return s ? grpc::Status::OK : to_status(s.error()); }

grpc::Status request_too_large() {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: request is too large");
}

namespace {

struct TxnCost {
  int64_t ops = 0;
  int64_t compares = 0;
};

// What the heavier branch at each level costs, nested transactions included.
// Protobuf's recursion limit (100) bounds the depth; `cap` stops the count
// early once it is over.
TxnCost txn_cost(const pb::TxnRequest& r, int64_t cap) {
  TxnCost cost;
  for (const auto* branch : {&r.success(), &r.failure()}) {
    TxnCost b;
    for (const auto& op : *branch) {
      ++b.ops;
      if (op.request_case() == pb::RequestOp::kRequestTxn) {
        const TxnCost nested = txn_cost(op.request_txn(), cap);
        b.ops += nested.ops;
        b.compares += nested.compares;
      }
      if (b.ops > cap || b.compares > cap) break;
    }
    cost.ops = std::max(cost.ops, b.ops);
    cost.compares = std::max(cost.compares, b.compares);
  }
  cost.compares += r.compare_size();
  return cost;
}

}  // namespace

grpc::Status check_txn(const pb::TxnRequest& r, int max_ops) {
  const TxnCost cost = txn_cost(r, max_ops);
  if (cost.compares > max_ops || cost.ops > max_ops) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: too many operations in txn request");
  }
  return grpc::Status::OK;
}

}  // namespace zeppelin::etcd_api
