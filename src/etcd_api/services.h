// The etcd services, one class each; EtcdServer owns and registers them.
#pragma once

#include <atomic>
#include <memory>

#include "etcd_api/auth.h"
#include "etcd_api/etcd_server.h"
#include "etcd_api/kv_calls.h"
#include "rpc.grpc.pb.h"
#include "store/store.h"
#include "v3election.grpc.pb.h"
#include "v3lock.grpc.pb.h"

namespace zeppelin::etcd_api {

// Fills the ResponseHeader fields every etcd response carries.
class Header {
 public:
  Header(store::Store& store, const EtcdServerOptions& options) : store_(store), options_(options) {}
  // Keeps a revision already set (the one a write was applied at); else the current one.
  void fill(etcdserverpb::ResponseHeader* h) const;

 private:
  store::Store& store_;
  const EtcdServerOptions& options_;
};

// KV on gRPC's callback API, for the KV calls the front relays (compressed or
// unreadable ones): a write holds no thread while it waits for its group
// commit; the store completes the call from its writer thread.
class KvService final : public etcdserverpb::KV::CallbackService {
 public:
  explicit KvService(KvCalls& calls) : calls_(calls) {}
  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext*, const etcdserverpb::RangeRequest*,
                                  etcdserverpb::RangeResponse*) override;
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext*, const etcdserverpb::PutRequest*,
                                etcdserverpb::PutResponse*) override;
  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext*, const etcdserverpb::DeleteRangeRequest*,
                                        etcdserverpb::DeleteRangeResponse*) override;
  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext*, const etcdserverpb::TxnRequest*,
                                etcdserverpb::TxnResponse*) override;
  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext*, const etcdserverpb::CompactionRequest*,
                                    etcdserverpb::CompactionResponse*) override;

 private:
  KvCalls& calls_;
};

// Watch on gRPC's callback API with encoded messages: a stream holds no
// thread of its own, and its watchers share encodings; see watch_service.cc.
class ProgressTicker;

class WatchService final : public etcdserverpb::Watch::WithRawCallbackMethod_Watch<etcdserverpb::Watch::Service> {
 public:
  WatchService(store::Store& store, const Header& header, AuthStore& auth);
  ~WatchService() override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Watch(grpc::CallbackServerContext*) override;

 private:
  store::Store& store_;
  const Header& header_;
  AuthStore& auth_;
  std::unique_ptr<ProgressTicker> ticker_;  // progress notifications of every open stream
};

class LeaseService final : public etcdserverpb::Lease::Service {
 public:
  LeaseService(store::Store& store, const Header& header, AuthStore& auth)
      : store_(store), header_(header), auth_(auth) {}
  grpc::Status LeaseGrant(grpc::ServerContext*, const etcdserverpb::LeaseGrantRequest*,
                          etcdserverpb::LeaseGrantResponse*) override;
  grpc::Status LeaseRevoke(grpc::ServerContext*, const etcdserverpb::LeaseRevokeRequest*,
                           etcdserverpb::LeaseRevokeResponse*) override;
  grpc::Status LeaseKeepAlive(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<etcdserverpb::LeaseKeepAliveResponse, etcdserverpb::LeaseKeepAliveRequest>*) override;
  grpc::Status LeaseTimeToLive(grpc::ServerContext*, const etcdserverpb::LeaseTimeToLiveRequest*,
                               etcdserverpb::LeaseTimeToLiveResponse*) override;
  grpc::Status LeaseLeases(grpc::ServerContext*, const etcdserverpb::LeaseLeasesRequest*,
                           etcdserverpb::LeaseLeasesResponse*) override;

 private:
  store::Store& store_;
  const Header& header_;
  AuthStore& auth_;
};

class MaintenanceService final : public etcdserverpb::Maintenance::Service {
 public:
  MaintenanceService(store::Store& store, const Header& header, const EtcdServerOptions& options, AuthStore& auth)
      : store_(store), header_(header), options_(options), auth_(auth) {}
  grpc::Status Status(grpc::ServerContext*, const etcdserverpb::StatusRequest*, etcdserverpb::StatusResponse*) override;
  // The NOSPACE alarm of the store: listed, and disarmed by root (etcdctl alarm list|disarm).
  grpc::Status Alarm(grpc::ServerContext*, const etcdserverpb::AlarmRequest*, etcdserverpb::AlarmResponse*) override;
  grpc::Status Snapshot(grpc::ServerContext*, const etcdserverpb::SnapshotRequest*,
                        grpc::ServerWriter<etcdserverpb::SnapshotResponse>*) override;

 private:
  store::Store& store_;
  const Header& header_;
  const EtcdServerOptions& options_;
  AuthStore& auth_;
};

// etcd's server-side Lock: a contender's key under NAME/, served in creation order.
class LockService final : public v3lockpb::Lock::Service {
 public:
  LockService(store::Store& store, const Header& header, AuthStore& auth)
      : store_(store), header_(header), auth_(auth) {}
  grpc::Status Lock(grpc::ServerContext*, const v3lockpb::LockRequest*, v3lockpb::LockResponse*) override;
  grpc::Status Unlock(grpc::ServerContext*, const v3lockpb::UnlockRequest*, v3lockpb::UnlockResponse*) override;

 private:
  store::Store& store_;
  const Header& header_;
  AuthStore& auth_;
};

// etcd's server-side Election: the leader is the contender whose key under NAME/ was created first.
class ElectionService final : public v3electionpb::Election::Service {
 public:
  ElectionService(store::Store& store, const Header& header, AuthStore& auth)
      : store_(store), header_(header), auth_(auth) {}
  grpc::Status Campaign(grpc::ServerContext*, const v3electionpb::CampaignRequest*,
                        v3electionpb::CampaignResponse*) override;
  grpc::Status Proclaim(grpc::ServerContext*, const v3electionpb::ProclaimRequest*,
                        v3electionpb::ProclaimResponse*) override;
  grpc::Status Leader(grpc::ServerContext*, const v3electionpb::LeaderRequest*, v3electionpb::LeaderResponse*) override;
  grpc::Status Observe(grpc::ServerContext*, const v3electionpb::LeaderRequest*,
                       grpc::ServerWriter<v3electionpb::LeaderResponse>*) override;
  grpc::Status Resign(grpc::ServerContext*, const v3electionpb::ResignRequest*, v3electionpb::ResignResponse*) override;

 private:
  store::Store& store_;
  const Header& header_;
  AuthStore& auth_;
};

// etcd's Auth service: users, roles and permissions over an AuthStore. With
// auth enabled, everything but Authenticate needs the root role.
class AuthService final : public etcdserverpb::Auth::Service {
 public:
  AuthService(AuthStore& auth, const Header& header) : auth_(auth), header_(header) {}
  grpc::Status AuthEnable(grpc::ServerContext*, const etcdserverpb::AuthEnableRequest*,
                          etcdserverpb::AuthEnableResponse*) override;
  grpc::Status AuthDisable(grpc::ServerContext*, const etcdserverpb::AuthDisableRequest*,
                           etcdserverpb::AuthDisableResponse*) override;
  grpc::Status Authenticate(grpc::ServerContext*, const etcdserverpb::AuthenticateRequest*,
                            etcdserverpb::AuthenticateResponse*) override;
  grpc::Status UserAdd(grpc::ServerContext*, const etcdserverpb::AuthUserAddRequest*,
                       etcdserverpb::AuthUserAddResponse*) override;
  grpc::Status UserGet(grpc::ServerContext*, const etcdserverpb::AuthUserGetRequest*,
                       etcdserverpb::AuthUserGetResponse*) override;
  grpc::Status UserList(grpc::ServerContext*, const etcdserverpb::AuthUserListRequest*,
                        etcdserverpb::AuthUserListResponse*) override;
  grpc::Status UserDelete(grpc::ServerContext*, const etcdserverpb::AuthUserDeleteRequest*,
                          etcdserverpb::AuthUserDeleteResponse*) override;
  grpc::Status UserChangePassword(grpc::ServerContext*, const etcdserverpb::AuthUserChangePasswordRequest*,
                                  etcdserverpb::AuthUserChangePasswordResponse*) override;
  grpc::Status UserGrantRole(grpc::ServerContext*, const etcdserverpb::AuthUserGrantRoleRequest*,
                             etcdserverpb::AuthUserGrantRoleResponse*) override;
  grpc::Status UserRevokeRole(grpc::ServerContext*, const etcdserverpb::AuthUserRevokeRoleRequest*,
                              etcdserverpb::AuthUserRevokeRoleResponse*) override;
  grpc::Status RoleAdd(grpc::ServerContext*, const etcdserverpb::AuthRoleAddRequest*,
                       etcdserverpb::AuthRoleAddResponse*) override;
  grpc::Status RoleGet(grpc::ServerContext*, const etcdserverpb::AuthRoleGetRequest*,
                       etcdserverpb::AuthRoleGetResponse*) override;
  grpc::Status RoleList(grpc::ServerContext*, const etcdserverpb::AuthRoleListRequest*,
                        etcdserverpb::AuthRoleListResponse*) override;
  grpc::Status RoleDelete(grpc::ServerContext*, const etcdserverpb::AuthRoleDeleteRequest*,
                          etcdserverpb::AuthRoleDeleteResponse*) override;
  grpc::Status RoleGrantPermission(grpc::ServerContext*, const etcdserverpb::AuthRoleGrantPermissionRequest*,
                                   etcdserverpb::AuthRoleGrantPermissionResponse*) override;
  grpc::Status RoleRevokePermission(grpc::ServerContext*, const etcdserverpb::AuthRoleRevokePermissionRequest*,
                                    etcdserverpb::AuthRoleRevokePermissionResponse*) override;

 private:
  grpc::Status admin(grpc::ServerContext* context);
  template <typename Response>
  grpc::Status done(const Status& s, Response* response);

  AuthStore& auth_;
  const Header& header_;
};

}  // namespace zeppelin::etcd_api
