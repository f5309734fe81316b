#include "etcd_api/convert.h"
#include "etcd_api/services.h"

namespace zeppelin::etcd_api {

namespace pb = etcdserverpb;

namespace {

// What etcd checks for each operation of a transaction, nested ones included.
grpc::Status txn_access(const Caller& caller, const pb::TxnRequest& txn) {
  for (const auto& c : txn.compare()) {
    if (auto s = caller.may(c.key(), c.range_end(), Access::kRead); !s.ok()) return s;
  }
  for (const auto* ops : {&txn.success(), &txn.failure()}) {
    for (const auto& op : *ops) {
      grpc::Status s;
      switch (op.request_case()) {
        case pb::RequestOp::kRequestRange:
          s = caller.may(op.request_range().key(), op.request_range().range_end(), Access::kRead);
          break;
        case pb::RequestOp::kRequestPut:
          s = caller.may(op.request_put().key(), "", Access::kWrite);
          if (s.ok() && op.request_put().prev_kv()) s = caller.may(op.request_put().key(), "", Access::kRead);
          break;
        case pb::RequestOp::kRequestDeleteRange: {
          const auto& d = op.request_delete_range();
          s = caller.may(d.key(), d.range_end(), Access::kWrite);
          if (s.ok() && d.prev_kv()) s = caller.may(d.key(), d.range_end(), Access::kRead);
          break;
        }
        case pb::RequestOp::kRequestTxn:
          s = txn_access(caller, op.request_txn());
          break;
        case pb::RequestOp::REQUEST_NOT_SET:
          break;
      }
      if (!s.ok()) return s;
    }
  }
  return grpc::Status::OK;
}

}  // namespace

void Header::fill(pb::ResponseHeader* h) const {
  h->set_cluster_id(options_.cluster_id);
  h->set_member_id(options_.member_id);
  h->set_raft_term(1);  // one member, never an election
  if (h->revision() == 0) h->set_revision(store_.status().revision);
}

grpc::ServerUnaryReactor* KvService::Range(grpc::CallbackServerContext* context, const pb::RangeRequest* request,
                                           pb::RangeResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (request->ByteSizeLong() > kMaxRequestBytes) {
    reactor->Finish(request_too_large());
    return reactor;
  }
  if (auto s = auth_.authorize(*context, request->key(), request->range_end(), Access::kRead); !s.ok()) {
    reactor->Finish(s);
    return reactor;
  }
  // Served from memory: answered right here.
  auto r = store_.range(from_proto(*request));
  if (!r) {
    reactor->Finish(to_status(r.error()));
    return reactor;
  }
  to_proto(*r, *request, response);
  header_.fill(response->mutable_header());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Put(grpc::CallbackServerContext* context, const pb::PutRequest* request,
                                         pb::PutResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (request->ByteSizeLong() > kMaxRequestBytes) {
    reactor->Finish(request_too_large());
    return reactor;
  }
  Caller caller = Caller::unrestricted();
  grpc::Status allowed = auth_.caller(*context, &caller);
  if (allowed.ok()) allowed = caller.may(request->key(), "", Access::kWrite);
  if (allowed.ok() && request->prev_kv()) allowed = caller.may(request->key(), "", Access::kRead);
  if (!allowed.ok()) {
    reactor->Finish(allowed);
    return reactor;
  }
  store_.put_async(from_proto(*request), [this, reactor, response](Result<store::PutResponse> r) {
    if (!r) return reactor->Finish(to_status(r.error()));
    to_proto(*r, response);
    header_.fill(response->mutable_header());
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* KvService::DeleteRange(grpc::CallbackServerContext* context,
                                                 const pb::DeleteRangeRequest* request,
                                                 pb::DeleteRangeResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (request->ByteSizeLong() > kMaxRequestBytes) {
    reactor->Finish(request_too_large());
    return reactor;
  }
  Caller caller = Caller::unrestricted();
  grpc::Status allowed = auth_.caller(*context, &caller);
  if (allowed.ok()) allowed = caller.may(request->key(), request->range_end(), Access::kWrite);
  if (allowed.ok() && request->prev_kv()) allowed = caller.may(request->key(), request->range_end(), Access::kRead);
  if (!allowed.ok()) {
    reactor->Finish(allowed);
    return reactor;
  }
  store_.delete_range_async(from_proto(*request), [this, reactor, response](Result<store::DeleteRangeResponse> r) {
    if (!r) return reactor->Finish(to_status(r.error()));
    to_proto(*r, response);
    header_.fill(response->mutable_header());
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Txn(grpc::CallbackServerContext* context, const pb::TxnRequest* request,
                                         pb::TxnResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (request->ByteSizeLong() > kMaxRequestBytes) {
    reactor->Finish(request_too_large());
    return reactor;
  }
  if (auto s = check_txn(*request); !s.ok()) {
    reactor->Finish(s);
    return reactor;
  }
  Caller caller = Caller::unrestricted();
  grpc::Status allowed = auth_.caller(*context, &caller);
  if (allowed.ok()) allowed = txn_access(caller, *request);
  if (!allowed.ok()) {
    reactor->Finish(allowed);
    return reactor;
  }
  // `request` stays valid until Finish: the response is built from both.
  store_.txn_async(from_proto(*request), [this, reactor, request, response](Result<store::TxnResponse> r) {
    if (!r) return reactor->Finish(to_status(r.error()));
    to_proto(*r, *request, response);
    header_.fill(response->mutable_header());
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Compact(grpc::CallbackServerContext* context, const pb::CompactionRequest* request,
                                             pb::CompactionResponse* response) {
  auto* reactor = context->DefaultReactor();
  // Compaction discards every user's history: the root role only.
  Caller caller = Caller::unrestricted();
  grpc::Status allowed = auth_.caller(*context, &caller);
  if (allowed.ok()) allowed = caller.admin();
  if (!allowed.ok()) {
    reactor->Finish(allowed);
    return reactor;
  }
  // Rare, and its wait is one commit: done in place.
  auto r = store_.compact(request->revision());
  if (!r) {
    reactor->Finish(to_status(r.error()));
    return reactor;
  }
  response->mutable_header()->set_revision(r->revision);
  header_.fill(response->mutable_header());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace zeppelin::etcd_api
