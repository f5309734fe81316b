#include "etcd_api/convert.h"
#include "etcd_api/services.h"

namespace zeppelin::etcd_api {

namespace pb = etcdserverpb;

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
