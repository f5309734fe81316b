// Fuzz target: the etcd JSON gateway's decoding of a request body into gRPC
// requests (decode_json_body), then, for KV's calls, their conversion into
// the Store's requests (convert.h) as the KV service converts them. The
// input's first byte picks the method among those the gateway serves; the
// rest is the body. A decoded request must be a valid message of the method's
// input type.
#include <google/protobuf/descriptor.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "etcd_api/convert.h"
#include "etcd_api/json_gateway.h"
#include "rpc.pb.h"
#include "v3election.pb.h"
#include "v3lock.pb.h"

namespace {

using namespace zeppelin;
namespace protobuf = google::protobuf;

void check(bool condition) {
  if (!condition) std::abort();
}

const std::vector<const protobuf::MethodDescriptor*>& methods() {
  static const std::vector<const protobuf::MethodDescriptor*> all = [] {
    // Named through their messages, so that the linker keeps every descriptor.
    const protobuf::FileDescriptor* files[] = {etcdserverpb::RangeRequest::descriptor()->file(),
                                               v3lockpb::LockRequest::descriptor()->file(),
                                               v3electionpb::CampaignRequest::descriptor()->file()};
    std::vector<const protobuf::MethodDescriptor*> out;
    for (const auto* file : files) {
      for (int s = 0; s < file->service_count(); ++s) {
        const auto* service = file->service(s);
        for (int m = 0; m < service->method_count(); ++m) out.push_back(service->method(m));
      }
    }
    return out;
  }();
  return all;
}

template <class Message>
Message parsed(const std::string& bytes) {
  Message message;
  check(message.ParseFromString(bytes));
  return message;
}

// What the KV service does with a decoded request before the store sees it.
void convert(const protobuf::MethodDescriptor& method, const std::string& bytes) {
  if (method.service()->full_name() != "etcdserverpb.KV") return;
  if (method.name() == "Range") {
    const auto request = parsed<etcdserverpb::RangeRequest>(bytes);
    (void)etcd_api::from_proto(request);
    (void)etcd_api::store_range(request);
  } else if (method.name() == "Put") {
    (void)etcd_api::from_proto(parsed<etcdserverpb::PutRequest>(bytes));
  } else if (method.name() == "DeleteRange") {
    (void)etcd_api::from_proto(parsed<etcdserverpb::DeleteRangeRequest>(bytes));
  } else if (method.name() == "Txn") {
    const auto request = parsed<etcdserverpb::TxnRequest>(bytes);
    // Nesting deeper than the limit is refused before conversion, as the service does.
    if (etcd_api::check_txn(request).ok()) (void)etcd_api::from_proto(request);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& all = methods();
  const auto& method = *all[data[0] % all.size()];
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<grpc::ByteBuffer> requests;
  const grpc::Status status = etcd_api::decode_json_body(body, method, &requests);
  if (!status.ok()) {
    check(!status.error_message().empty());
    return 0;
  }
  check(!requests.empty());
  check(requests.size() == 1 || method.client_streaming());
  for (const auto& request : requests) {
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (request.Valid()) {
      check(request.Dump(&slices).ok());
      for (const auto& slice : slices) bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
    check(bytes.size() <= etcd_api::kMaxGrpcMessageBytes);
    convert(method, bytes);
  }
  return 0;
}
