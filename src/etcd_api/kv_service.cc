#include "etcd_api/convert.h"
#include "etcd_api/kv_calls.h"
#include "etcd_api/services.h"

namespace zeppelin::etcd_api {

namespace pb = etcdserverpb;

namespace {

// What etcd checks for each operation of a transaction, nested ones included.
Status txn_access(const Caller& caller, const pb::TxnRequest& txn) {
  for (const auto& c : txn.compare()) {
    if (auto s = caller.may(c.key(), c.range_end(), Access::kRead); !s) return s;
  }
  for (const auto* ops : {&txn.success(), &txn.failure()}) {
    for (const auto& op : *ops) {
      Status s;
      switch (op.request_case()) {
        case pb::RequestOp::kRequestRange:
          s = caller.may(op.request_range().key(), op.request_range().range_end(), Access::kRead);
          break;
        case pb::RequestOp::kRequestPut:
          s = caller.may(op.request_put().key(), "", Access::kWrite);
          if (s && op.request_put().prev_kv()) s = caller.may(op.request_put().key(), "", Access::kRead);
          break;
        case pb::RequestOp::kRequestDeleteRange: {
          const auto& d = op.request_delete_range();
          s = caller.may(d.key(), d.range_end(), Access::kWrite);
          if (s && d.prev_kv()) s = caller.may(d.key(), d.range_end(), Access::kRead);
          break;
        }
        case pb::RequestOp::kRequestTxn:
          s = txn_access(caller, op.request_txn());
          break;
        case pb::RequestOp::REQUEST_NOT_SET:
          break;
      }
      if (!s) return s;
    }
  }
  return ok_status();
}

}  // namespace

void Header::fill(pb::ResponseHeader* h) const {
  h->set_cluster_id(options_.cluster_id);
  h->set_member_id(options_.member_id);
  h->set_raft_term(1);  // one member, never an election
  if (h->revision() == 0) h->set_revision(store_.status().revision);
}

void KvCalls::range(const std::string& token, const pb::RangeRequest& request, pb::RangeResponse* response, Done done) {
  if (request.ByteSizeLong() > kMaxRequestBytes) return done(request_too_large());
  Caller caller = Caller::unrestricted();
  Status allowed = auth_.caller(token, &caller);
  if (allowed) allowed = caller.may(request.key(), request.range_end(), Access::kRead);
  if (!allowed) return done(to_status(allowed));
  // Served from memory: answered right here.
  store::RangeRequest read = from_proto(request);
  read.max_response_bytes = options_.max_response_bytes;
  auto r = store_.range(read);
  if (!r) return done(to_status(r.error()));
  to_proto(*r, request, response);
  header_.fill(response->mutable_header());
  done(grpc::Status::OK);
}

void KvCalls::put(const std::string& token, const pb::PutRequest& request, pb::PutResponse* response, Done done) {
  if (request.ByteSizeLong() > kMaxRequestBytes) return done(request_too_large());
  Caller caller = Caller::unrestricted();
  Status allowed = auth_.caller(token, &caller);
  if (allowed) allowed = caller.may(request.key(), "", Access::kWrite);
  if (allowed && request.prev_kv()) allowed = caller.may(request.key(), "", Access::kRead);
  if (!allowed) return done(to_status(allowed));
  store_.put_async(from_proto(request), [this, response, done = std::move(done)](Result<store::PutResponse> r) {
    if (!r) return done(to_status(r.error()));
    to_proto(*r, response);
    header_.fill(response->mutable_header());
    done(grpc::Status::OK);
  });
}

void KvCalls::delete_range(const std::string& token, const pb::DeleteRangeRequest& request,
                           pb::DeleteRangeResponse* response, Done done) {
  if (request.ByteSizeLong() > kMaxRequestBytes) return done(request_too_large());
  Caller caller = Caller::unrestricted();
  Status allowed = auth_.caller(token, &caller);
  if (allowed) allowed = caller.may(request.key(), request.range_end(), Access::kWrite);
  if (allowed && request.prev_kv()) allowed = caller.may(request.key(), request.range_end(), Access::kRead);
  if (!allowed) return done(to_status(allowed));
  store_.delete_range_async(from_proto(request),
                            [this, response, done = std::move(done)](Result<store::DeleteRangeResponse> r) {
                              if (!r) return done(to_status(r.error()));
                              to_proto(*r, response);
                              header_.fill(response->mutable_header());
                              done(grpc::Status::OK);
                            });
}

void KvCalls::txn(const std::string& token, const pb::TxnRequest& request, pb::TxnResponse* response, Done done) {
  if (request.ByteSizeLong() > kMaxRequestBytes) return done(request_too_large());
  if (auto s = check_txn(request, options_.max_txn_ops); !s.ok()) return done(s);
  Caller caller = Caller::unrestricted();
  Status allowed = auth_.caller(token, &caller);
  if (allowed) allowed = txn_access(caller, request);
  if (!allowed) return done(to_status(allowed));
  // `request` stays valid until `done`: the response is built from both.
  store::TxnRequest txn = from_proto(request);
  txn.max_response_bytes = options_.max_response_bytes;
  store_.txn_async(std::move(txn),
                   [this, &request, response, done = std::move(done)](Result<store::TxnResponse> r) {
                     if (!r) return done(to_status(r.error()));
                     to_proto(*r, request, response);
                     header_.fill(response->mutable_header());
                     done(grpc::Status::OK);
                   });
}

void KvCalls::compact(const std::string& token, const pb::CompactionRequest& request, pb::CompactionResponse* response,
                      Done done) {
  Caller caller = Caller::unrestricted();
  Status allowed = auth_.caller(token, &caller);
  if (allowed) allowed = caller.admin();
  if (!allowed) return done(to_status(allowed));
  // Rare, and its wait is one commit: done in place.
  auto r = store_.compact(request.revision());
  if (!r) return done(to_status(r.error()));
  response->mutable_header()->set_revision(r->revision);
  header_.fill(response->mutable_header());
  done(grpc::Status::OK);
}

// ---- gRPC: the callback API, so that a write holds no thread while it waits
// for its group commit; the store completes the call from its writer thread.

namespace {

// Makes one of KvCalls' calls for a gRPC call, which ends when the call's answer comes.
template <class Request, class Response>
grpc::ServerUnaryReactor* answer(grpc::CallbackServerContext* context, KvCalls& calls,
                                 void (KvCalls::*call)(const std::string&, const Request&, Response*, KvCalls::Done),
                                 const Request* request, Response* response) {
  auto* reactor = context->DefaultReactor();
  (calls.*call)(AuthStore::token_of(*context), *request, response,
                [reactor](const grpc::Status& s) { reactor->Finish(s); });
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* KvService::Range(grpc::CallbackServerContext* context, const pb::RangeRequest* request,
                                           pb::RangeResponse* response) {
  return answer(context, calls_, &KvCalls::range, request, response);
}

grpc::ServerUnaryReactor* KvService::Put(grpc::CallbackServerContext* context, const pb::PutRequest* request,
                                         pb::PutResponse* response) {
  return answer(context, calls_, &KvCalls::put, request, response);
}

grpc::ServerUnaryReactor* KvService::DeleteRange(grpc::CallbackServerContext* context,
                                                 const pb::DeleteRangeRequest* request,
                                                 pb::DeleteRangeResponse* response) {
  return answer(context, calls_, &KvCalls::delete_range, request, response);
}

grpc::ServerUnaryReactor* KvService::Txn(grpc::CallbackServerContext* context, const pb::TxnRequest* request,
                                         pb::TxnResponse* response) {
  return answer(context, calls_, &KvCalls::txn, request, response);
}

grpc::ServerUnaryReactor* KvService::Compact(grpc::CallbackServerContext* context, const pb::CompactionRequest* request,
                                             pb::CompactionResponse* response) {
  return answer(context, calls_, &KvCalls::compact, request, response);
}

}  // namespace zeppelin::etcd_api
