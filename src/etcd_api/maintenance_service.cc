#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>

#include "etcd_api/convert.h"
#include "etcd_api/services.h"

namespace zeppelin::etcd_api {

namespace pb = etcdserverpb;

namespace {

// The etcd API version this server speaks (clients gate features on it).
constexpr char kApiVersion[] = "3.4.0";
constexpr std::size_t kSnapshotChunk = 32 * 1024;
constexpr uint64_t kDigestBytes = 32;  // SHA-256

}  // namespace

grpc::Status MaintenanceService::Status(grpc::ServerContext*, const pb::StatusRequest*, pb::StatusResponse* response) {
  const store::StoreStatus s = store_.status();
  response->set_version(kApiVersion);
  response->set_dbsize(s.db_size);
  response->set_dbsizeinuse(s.db_size);
  response->set_leader(options_.member_id);
  response->set_raftindex(static_cast<uint64_t>(s.revision));
  response->set_raftappliedindex(static_cast<uint64_t>(s.revision));
  response->set_raftterm(1);
  // As etcd: each alarm as the text of its AlarmMember (etcdctl endpoint status shows them).
  if (store_.nospace_alarm()) {
    response->add_errors("memberID:" + std::to_string(options_.member_id) + " alarm:NOSPACE ");
  }
  response->mutable_header()->set_revision(s.revision);
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

grpc::Status MaintenanceService::Alarm(grpc::ServerContext* context, const pb::AlarmRequest* request,
                                       pb::AlarmResponse* response) {
  // etcd leaves alarms to root when auth is on.
  Caller caller = Caller::unrestricted();
  zeppelin::Status allowed = auth_.caller(*context, &caller);
  if (allowed) allowed = caller.admin();
  if (!allowed) return to_status(allowed);
  const bool mine = request->memberid() == 0 || request->memberid() == options_.member_id;
  switch (request->action()) {
    case pb::AlarmRequest::DEACTIVATE:
      if (mine && (request->alarm() == pb::NOSPACE || request->alarm() == pb::NONE)) {
        if (store_.nospace_alarm()) {
          auto* a = response->add_alarms();
          a->set_memberid(options_.member_id);
          a->set_alarm(pb::NOSPACE);
        }
        store_.disarm_nospace_alarm();
      }
      break;
    case pb::AlarmRequest::ACTIVATE:
      // Only the store raises alarms, from its size; etcd's own members do the same.
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: alarms are raised by the store only");
    default:
      if (store_.nospace_alarm()) {
        auto* a = response->add_alarms();
        a->set_memberid(options_.member_id);
        a->set_alarm(pb::NOSPACE);
      }
      break;
  }
  header_.fill(response->mutable_header());
  return grpc::Status::OK;
}

// Streams a consistent copy of the store, followed (as etcd does) by the
// SHA-256 of the copy so that clients can verify what they received.
grpc::Status MaintenanceService::Snapshot(grpc::ServerContext* context, const pb::SnapshotRequest*,
                                          grpc::ServerWriter<pb::SnapshotResponse>* writer) {
  // As etcd: a snapshot holds every key, so only the root role takes one. (Status is open to all.)
  Caller caller = Caller::unrestricted();
  zeppelin::Status allowed = auth_.caller(*context, &caller);
  if (allowed) allowed = caller.admin();
  // etcd 3.4 answers this one with its auth package's own error, unconverted.
  if (!allowed && allowed.error().code == Errc::kPermissionDenied) {
    return grpc::Status(grpc::StatusCode::UNKNOWN, "auth: permission denied");
  }
  if (!allowed) return to_status(allowed);
  static std::atomic<uint64_t> sequence{0};
  const std::string path = options_.snapshot_dir + "/snapshot-" + std::to_string(::getpid()) + "-" +
                           std::to_string(sequence.fetch_add(1)) + ".db";
  const int64_t revision = store_.status().revision;
  if (auto s = store_.snapshot(path); !s) return to_status(s.error());
  struct Cleanup {
    std::string path;
    ~Cleanup() { ::unlink(path.c_str()); }
  } cleanup{path};

  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return grpc::Status(grpc::StatusCode::INTERNAL, "etcdserver: cannot read snapshot " + path);
  const auto size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  uint64_t remaining = size + kDigestBytes;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sha(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!sha || EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr) != 1) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "etcdserver: cannot compute SHA-256");
  }
  std::string chunk(kSnapshotChunk, '\0');
  bool first = true;
  while (remaining > kDigestBytes) {
    const auto n = static_cast<std::size_t>(std::min<uint64_t>(kSnapshotChunk, remaining - kDigestBytes));
    if (!in.read(chunk.data(), static_cast<std::streamsize>(n))) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "etcdserver: short read of snapshot " + path);
    }
    EVP_DigestUpdate(sha.get(), chunk.data(), n);
    remaining -= n;
    pb::SnapshotResponse response;
    response.set_blob(chunk.data(), n);
    response.set_remaining_bytes(remaining);
    if (first) {
      response.mutable_header()->set_revision(revision);
      header_.fill(response.mutable_header());
      first = false;
    }
    if (context->IsCancelled() || !writer->Write(response)) return grpc::Status::CANCELLED;
  }
  unsigned char digest[kDigestBytes];
  unsigned int digest_size = 0;
  EVP_DigestFinal_ex(sha.get(), digest, &digest_size);
  pb::SnapshotResponse last;
  last.set_blob(digest, kDigestBytes);
  last.set_remaining_bytes(0);
  if (first) header_.fill(last.mutable_header());
  writer->Write(last);
  return grpc::Status::OK;
}

}  // namespace zeppelin::etcd_api
