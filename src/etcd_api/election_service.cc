#include "etcd_api/convert.h"
#include "etcd_api/recipes.h"
#include "etcd_api/services.h"

namespace zeppelin::etcd_api {

namespace pb = v3electionpb;

namespace {

// etcd's answers; they reach clients as plain errors (gRPC code Unknown).
grpc::Status not_leader() { return grpc::Status(grpc::StatusCode::UNKNOWN, "election: not leader"); }
grpc::Status no_leader() { return grpc::Status(grpc::StatusCode::UNKNOWN, "election: no leader"); }
grpc::Status missing_leader() { return grpc::Status(grpc::StatusCode::UNKNOWN, "\"leader\" field must be provided"); }

// Runs `op` only while `leader` still holds its election key.
Result<store::TxnResponse> if_leader(store::Store& store, const pb::LeaderKey& leader, store::RequestOp op) {
  store::TxnRequest t;
  t.compare = {store::Compare{leader.key(), "", store::Compare::Target::kCreateRevision, store::Compare::Op::kEqual,
                              leader.rev(), ""}};
  t.success = {std::move(op)};
  return store.txn(t);
}

// An election NAME is its candidates' keys under NAME/: read by all, written by candidates.
grpc::Status election_access(AuthStore& auth, const grpc::ServerContext& context, const std::string& prefix,
                             bool write) {
  Caller caller = Caller::unrestricted();
  Status s = auth.caller(context, &caller);
  const std::string end = store::prefix_end(prefix);
  if (s) s = caller.may(prefix, end, Access::kRead);
  if (s && write) s = caller.may(prefix, end, Access::kWrite);
  return to_status(s);
}

}  // namespace

grpc::Status ElectionService::Campaign(grpc::ServerContext* context, const pb::CampaignRequest* request,
                                       pb::CampaignResponse* response) {
  if (auto s = election_access(auth_, *context, request->name() + "/", true); !s.ok()) return s;
  const std::string prefix = request->name() + "/";
  auto claimed = claim(store_, prefix, request->lease(), request->value());
  if (!claimed) return to_status(claimed.error());
  if (!claimed->created && claimed->kv.value != request->value()) {
    // Campaigning again with the same lease proclaims the new value.
    auto put = store_.put({claimed->kv.key, request->value(), 0, false, false, /*ignore_lease=*/true});
    if (!put) return to_status(put.error());
  }
  auto turn = wait_for_turn(store_, prefix, claimed->kv.create_revision, [context] { return context->IsCancelled(); });
  if (!turn) {
    if (context->IsCancelled()) {
      (void)store_.delete_range({claimed->kv.key, "", false});
      return grpc::Status::CANCELLED;
    }
    return to_status(turn.error());
  }
  auto* leader = response->mutable_leader();
  leader->set_name(request->name());
  leader->set_key(claimed->kv.key);
  leader->set_rev(claimed->kv.create_revision);
  leader->set_lease(request->lease());
  response->mutable_header()->set_revision(claimed->revision);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

grpc::Status ElectionService::Proclaim(grpc::ServerContext* context, const pb::ProclaimRequest* request,
                                       pb::ProclaimResponse* response) {
  if (auto s = auth_.authorize(*context, request->leader().key(), "", Access::kWrite); !s) return to_status(s);
  if (!request->has_leader()) return missing_leader();
  const auto& leader = request->leader();
  auto r = if_leader(store_, leader,
                     store::PutRequest{leader.key(), request->value(), 0, false, false, /*ignore_lease=*/true});
  if (!r) return to_status(r.error());
  if (!r->succeeded) return not_leader();
  response->mutable_header()->set_revision(r->revision);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

grpc::Status ElectionService::Leader(grpc::ServerContext* context, const pb::LeaderRequest* request,
                                     pb::LeaderResponse* response) {
  if (auto s = election_access(auth_, *context, request->name() + "/", false); !s.ok()) return s;
  auto first = first_created(store_, request->name() + "/");
  if (!first) return to_status(first.error());
  if (!first->first) return no_leader();
  to_proto(*first->first, response->mutable_kv());
  response->mutable_header()->set_revision(first->second);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

// Streams the leader's key each time the leader or its value changes.
grpc::Status ElectionService::Observe(grpc::ServerContext* context, const pb::LeaderRequest* request,
                                      grpc::ServerWriter<pb::LeaderResponse>* writer) {
  if (auto s = election_access(auth_, *context, request->name() + "/", false); !s.ok()) return s;
  const std::string prefix = request->name() + "/";
  auto cancelled = [context] { return context->IsCancelled(); };
  int64_t sent_mod_revision = 0;
  std::string sent_key;
  while (!cancelled()) {
    auto first = first_created(store_, prefix);
    if (!first) return to_status(first.error());
    const auto& [leader, revision] = *first;
    if (leader && (leader->key != sent_key || leader->mod_revision != sent_mod_revision)) {
      pb::LeaderResponse response;
      to_proto(*leader, response.mutable_kv());
      response.mutable_header()->set_revision(revision);
      header_.fill(response.mutable_header());
      if (!writer->Write(response)) return grpc::Status::CANCELLED;
      sent_key = leader->key;
      sent_mod_revision = leader->mod_revision;
    }
    if (auto s = wait_for_change(store_, prefix, revision, cancelled); !s) break;
  }
  return grpc::Status::CANCELLED;
}

grpc::Status ElectionService::Resign(grpc::ServerContext* context, const pb::ResignRequest* request,
                                     pb::ResignResponse* response) {
  if (auto s = auth_.authorize(*context, request->leader().key(), "", Access::kWrite); !s) return to_status(s);
  if (!request->has_leader()) return missing_leader();
  const auto& leader = request->leader();
  auto r = if_leader(store_, leader, store::DeleteRangeRequest{leader.key(), "", false});
  if (!r) return to_status(r.error());
  response->mutable_header()->set_revision(r->revision);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

}  // namespace zeppelin::etcd_api
