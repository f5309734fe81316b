#include "etcd_api/convert.h"
#include "etcd_api/recipes.h"
#include "etcd_api/services.h"

namespace zeppelin::etcd_api {

namespace {

// A lock NAME is its contenders' keys under NAME/: they are read and written.
grpc::Status lock_access(AuthStore& auth, const grpc::ServerContext& context, const std::string& prefix) {
  Caller caller = Caller::unrestricted();
  Status s = auth.caller(context, &caller);
  const std::string end = store::prefix_end(prefix);
  if (s) s = caller.may(prefix, end, Access::kRead);
  if (s) s = caller.may(prefix, end, Access::kWrite);
  return to_status(s);
}

}  // namespace

grpc::Status LockService::Lock(grpc::ServerContext* context, const v3lockpb::LockRequest* request,
                               v3lockpb::LockResponse* response) {
  if (auto s = lock_access(auth_, *context, request->name() + "/"); !s.ok()) return s;
  auto claimed = claim(store_, request->name() + "/", request->lease(), "");
  if (!claimed) return to_status(claimed.error());
  auto turn = wait_for_turn(store_, request->name() + "/", claimed->kv.create_revision,
                            [context] { return context->IsCancelled(); });
  if (!turn) {
    if (context->IsCancelled()) {
      // Leave no key behind that would hold up the contenders after us.
      (void)store_.delete_range({claimed->kv.key, "", false});
      return grpc::Status::CANCELLED;
    }
    return to_status(turn.error());
  }
  response->set_key(claimed->kv.key);
  response->mutable_header()->set_revision(claimed->revision);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

grpc::Status LockService::Unlock(grpc::ServerContext* context, const v3lockpb::UnlockRequest* request,
                                 v3lockpb::UnlockResponse* response) {
  if (auto s = auth_.authorize(*context, request->key(), "", Access::kWrite); !s) return to_status(s);
  auto deleted = store_.delete_range({request->key(), "", false});
  if (!deleted) return to_status(deleted.error());
  response->mutable_header()->set_revision(deleted->revision);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

}  // namespace zeppelin::etcd_api
