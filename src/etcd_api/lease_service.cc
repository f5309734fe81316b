#include "etcd_api/convert.h"
#include "etcd_api/services.h"

namespace zeppelin::etcd_api {

namespace pb = etcdserverpb;

namespace {

// With auth enabled, leases are for authenticated users (any role).
grpc::Status authenticated(AuthStore& auth, const grpc::ServerContext& context, Caller* caller) {
  Status s = auth.caller(context, caller);
  if (s && auth.enabled() && caller->user().empty()) s = make_error(Errc::kInvalidArgument, "user name is empty");
  return to_status(s);
}

}  // namespace

grpc::Status LeaseService::LeaseGrant(grpc::ServerContext* context, const pb::LeaseGrantRequest* request,
                                      pb::LeaseGrantResponse* response) {
  Caller caller = Caller::unrestricted();
  if (auto s = authenticated(auth_, *context, &caller); !s.ok()) return s;
  auto r = store_.lease_grant(request->id(), request->ttl());
  if (!r) return to_status(r.error());
  response->set_id(r->id);
  response->set_ttl(r->ttl);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

grpc::Status LeaseService::LeaseRevoke(grpc::ServerContext* context, const pb::LeaseRevokeRequest* request,
                                       pb::LeaseRevokeResponse* response) {
  Caller caller = Caller::unrestricted();
  if (auto s = authenticated(auth_, *context, &caller); !s.ok()) return s;
  // As etcd: revoking deletes the lease's keys, so the caller must be allowed to write each.
  if (auth_.enabled()) {
    auto ttl = store_.lease_time_to_live(request->id(), true);
    if (ttl) {
      for (const auto& key : ttl->keys) {
        if (auto s = caller.may(key, "", Access::kWrite); !s) return to_status(s);
      }
    }
  }
  if (auto s = store_.lease_revoke(request->id()); !s) return to_status(s.error());
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

grpc::Status LeaseService::LeaseKeepAlive(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<pb::LeaseKeepAliveResponse, pb::LeaseKeepAliveRequest>* stream) {
  Caller caller = Caller::unrestricted();
  if (auto s = authenticated(auth_, *context, &caller); !s.ok()) return s;
  pb::LeaseKeepAliveRequest request;
  while (stream->Read(&request)) {
    pb::LeaseKeepAliveResponse response;
    response.set_id(request.id());
    // As etcd: an unknown or expired lease is answered with TTL 0, not an error.
    auto ttl = store_.lease_keep_alive(request.id());
    response.set_ttl(ttl ? *ttl : 0);
    header_.fill(response.mutable_header());
    if (!stream->Write(response)) break;
  }
  return grpc::Status::OK;
}

grpc::Status LeaseService::LeaseTimeToLive(grpc::ServerContext* context, const pb::LeaseTimeToLiveRequest* request,
                                           pb::LeaseTimeToLiveResponse* response) {
  Caller caller = Caller::unrestricted();
  if (auto s = authenticated(auth_, *context, &caller); !s.ok()) return s;
  response->set_id(request->id());
  auto r = store_.lease_time_to_live(request->id(), request->keys());
  if (!r) {
    if (r.error().code != Errc::kLeaseNotFound) return to_status(r.error());
    response->set_ttl(-1);  // etcd answers a missing lease this way
  } else {
    response->set_ttl(r->ttl);
    response->set_grantedttl(r->granted_ttl);
    for (const auto& key : r->keys) response->add_keys(key);
  }
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

grpc::Status LeaseService::LeaseLeases(grpc::ServerContext* context, const pb::LeaseLeasesRequest*,
                                       pb::LeaseLeasesResponse* response) {
  Caller caller = Caller::unrestricted();
  if (auto s = authenticated(auth_, *context, &caller); !s.ok()) return s;
  for (int64_t id : store_.lease_list()) response->add_leases()->set_id(id);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

}  // namespace zeppelin::etcd_api
