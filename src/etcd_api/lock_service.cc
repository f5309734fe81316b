#include "etcd_api/convert.h"
#include "etcd_api/recipes.h"
#include "etcd_api/services.h"

namespace zeppelin::etcd_api {

grpc::Status LockService::Lock(grpc::ServerContext* context, const v3lockpb::LockRequest* request,
                               v3lockpb::LockResponse* response) {
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

grpc::Status LockService::Unlock(grpc::ServerContext*, const v3lockpb::UnlockRequest* request,
                                 v3lockpb::UnlockResponse* response) {
  auto deleted = store_.delete_range({request->key(), "", false});
  if (!deleted) return to_status(deleted.error());
  response->mutable_header()->set_revision(deleted->revision);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

}  // namespace zeppelin::etcd_api
