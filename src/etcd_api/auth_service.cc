#include "etcd_api/convert.h"
#include "etcd_api/services.h"

namespace zeppelin::etcd_api {

namespace pb = etcdserverpb;

namespace {

KeyPermission from_proto(const authpb::Permission& p) {
  const bool read = p.permtype() == authpb::Permission::READ || p.permtype() == authpb::Permission::READWRITE;
  const bool write = p.permtype() == authpb::Permission::WRITE || p.permtype() == authpb::Permission::READWRITE;
  return KeyPermission{read, write, p.key(), p.range_end()};
}

void to_proto(const KeyPermission& p, authpb::Permission* out) {
  out->set_permtype(p.read && p.write ? authpb::Permission::READWRITE
                    : p.write         ? authpb::Permission::WRITE
                                      : authpb::Permission::READ);
  out->set_key(p.key);
  out->set_range_end(p.range_end);
}

}  // namespace

grpc::Status AuthService::admin(grpc::ServerContext* context) {
  Caller caller = Caller::unrestricted();
  Status s = auth_.caller(*context, &caller);
  if (s) s = caller.admin();
  return to_status(s);
}

template <typename Response>
grpc::Status AuthService::done(const Status& s, Response* response) {
  if (s) header_.fill(response->mutable_header());
  return to_status(s);
}

grpc::Status AuthService::AuthEnable(grpc::ServerContext* context, const pb::AuthEnableRequest*,
                                     pb::AuthEnableResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  return done(auth_.enable(), response);
}

grpc::Status AuthService::AuthDisable(grpc::ServerContext* context, const pb::AuthDisableRequest*,
                                      pb::AuthDisableResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  return done(auth_.disable(), response);
}

grpc::Status AuthService::Authenticate(grpc::ServerContext*, const pb::AuthenticateRequest* request,
                                       pb::AuthenticateResponse* response) {
  std::string token;
  auto s = auth_.authenticate(request->name(), request->password(), &token);
  if (s.ok()) response->set_token(token);
  return done(s, response);
}

grpc::Status AuthService::UserAdd(grpc::ServerContext* context, const pb::AuthUserAddRequest* request,
                                  pb::AuthUserAddResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  return done(auth_.user_add(request->name(), request->password(), request->options().no_password()), response);
}

grpc::Status AuthService::UserGet(grpc::ServerContext* context, const pb::AuthUserGetRequest* request,
                                  pb::AuthUserGetResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  std::vector<std::string> roles;
  auto s = auth_.user_get(request->name(), &roles);
  for (const auto& r : roles) response->add_roles(r);
  return done(s, response);
}

grpc::Status AuthService::UserList(grpc::ServerContext* context, const pb::AuthUserListRequest*,
                                   pb::AuthUserListResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  for (const auto& u : auth_.user_list()) response->add_users(u);
  return done(ok_status(), response);
}

grpc::Status AuthService::UserDelete(grpc::ServerContext* context, const pb::AuthUserDeleteRequest* request,
                                     pb::AuthUserDeleteResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  return done(auth_.user_delete(request->name()), response);
}

grpc::Status AuthService::UserChangePassword(grpc::ServerContext* context,
                                             const pb::AuthUserChangePasswordRequest* request,
                                             pb::AuthUserChangePasswordResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  return done(auth_.user_change_password(request->name(), request->password()), response);
}

grpc::Status AuthService::UserGrantRole(grpc::ServerContext* context, const pb::AuthUserGrantRoleRequest* request,
                                        pb::AuthUserGrantRoleResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  return done(auth_.user_grant_role(request->user(), request->role()), response);
}

grpc::Status AuthService::UserRevokeRole(grpc::ServerContext* context, const pb::AuthUserRevokeRoleRequest* request,
                                         pb::AuthUserRevokeRoleResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  return done(auth_.user_revoke_role(request->name(), request->role()), response);
}

grpc::Status AuthService::RoleAdd(grpc::ServerContext* context, const pb::AuthRoleAddRequest* request,
                                  pb::AuthRoleAddResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  return done(auth_.role_add(request->name()), response);
}

grpc::Status AuthService::RoleGet(grpc::ServerContext* context, const pb::AuthRoleGetRequest* request,
                                  pb::AuthRoleGetResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  std::vector<KeyPermission> perms;
  auto s = auth_.role_get(request->role(), &perms);
  for (const auto& p : perms) to_proto(p, response->add_perm());
  return done(s, response);
}

grpc::Status AuthService::RoleList(grpc::ServerContext* context, const pb::AuthRoleListRequest*,
                                   pb::AuthRoleListResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  for (const auto& r : auth_.role_list()) response->add_roles(r);
  return done(ok_status(), response);
}

grpc::Status AuthService::RoleDelete(grpc::ServerContext* context, const pb::AuthRoleDeleteRequest* request,
                                     pb::AuthRoleDeleteResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  return done(auth_.role_delete(request->role()), response);
}

grpc::Status AuthService::RoleGrantPermission(grpc::ServerContext* context,
                                              const pb::AuthRoleGrantPermissionRequest* request,
                                              pb::AuthRoleGrantPermissionResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  return done(auth_.role_grant_permission(request->name(), from_proto(request->perm())), response);
}

grpc::Status AuthService::RoleRevokePermission(grpc::ServerContext* context,
                                               const pb::AuthRoleRevokePermissionRequest* request,
                                               pb::AuthRoleRevokePermissionResponse* response) {
  if (auto s = admin(context); !s.ok()) return s;
  return done(auth_.role_revoke_permission(request->role(), request->key(), request->range_end()), response);
}

}  // namespace zeppelin::etcd_api
