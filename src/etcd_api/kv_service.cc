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

grpc::Status KvService::Range(grpc::ServerContext*, const pb::RangeRequest* request, pb::RangeResponse* response) {
  if (request->ByteSizeLong() > kMaxRequestBytes) return request_too_large();
  auto r = store_.range(from_proto(*request));
  if (!r) return to_status(r.error());
  to_proto(*r, *request, response);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

grpc::Status KvService::Put(grpc::ServerContext*, const pb::PutRequest* request, pb::PutResponse* response) {
  if (request->ByteSizeLong() > kMaxRequestBytes) return request_too_large();
  auto r = store_.put(from_proto(*request));
  if (!r) return to_status(r.error());
  to_proto(*r, response);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

grpc::Status KvService::DeleteRange(grpc::ServerContext*, const pb::DeleteRangeRequest* request,
                                    pb::DeleteRangeResponse* response) {
  if (request->ByteSizeLong() > kMaxRequestBytes) return request_too_large();
  auto r = store_.delete_range(from_proto(*request));
  if (!r) return to_status(r.error());
  to_proto(*r, response);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

grpc::Status KvService::Txn(grpc::ServerContext*, const pb::TxnRequest* request, pb::TxnResponse* response) {
  if (request->ByteSizeLong() > kMaxRequestBytes) return request_too_large();
  if (auto s = check_txn(*request); !s.ok()) return s;
  auto r = store_.txn(from_proto(*request));
  if (!r) return to_status(r.error());
  to_proto(*r, *request, response);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

grpc::Status KvService::Compact(grpc::ServerContext*, const pb::CompactionRequest* request,
                                pb::CompactionResponse* response) {
  auto r = store_.compact(request->revision());
  if (!r) return to_status(r.error());
  response->mutable_header()->set_revision(r->revision);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

}  // namespace zeppelin::etcd_api
