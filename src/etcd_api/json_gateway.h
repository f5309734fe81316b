// etcd's JSON gateway (POST /v3/kv/range, /v3/watch, ...) answered as etcd 3.4
// answers it: each path maps to one gRPC method, the JSON body is that
// method's request (proto field names, bytes in base64, 64-bit integers as
// strings). KV's calls (range, put, deleterange, txn, compaction) are made in
// process; the others go through a gRPC channel to the very handlers gRPC
// clients reach. Streaming methods answer with newline-separated
// {"result": ...} objects on a chunked response that stays open.
//
// Unlike etcd's gateway, which answers every origin (Access-Control-Allow-
// Origin: *), this one is for programs, not web pages: no CORS headers, Host
// must name this server, and a cross-origin Origin or a body type a browser
// form could send is refused (common/http_guard.h, docs/store.md).
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

#include <grpcpp/generic/generic_stub.h>

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/http_guard.h"
#include "etcd_api/shared_port.h"
#include "etcd_api/tls_stream.h"

namespace google::protobuf {
class MethodDescriptor;
}

namespace zeppelin::etcd_api {

class KvCalls;

// Larger HTTP bodies are refused before parsing (etcd's own limit applies to
// the decoded request, see kMaxRequestBytes).
inline constexpr std::size_t kMaxGatewayBodyBytes = 64 * 1024 * 1024;
// A request line and headers larger than this are refused with 400 (Beast's
// default; etcd's requests carry a few short headers and a token).
inline constexpr std::size_t kMaxGatewayHeaderBytes = 8 * 1024;

// The gRPC requests of `method` that the gateway makes of a JSON `body`: one
// for a unary method, one per JSON value for a streaming one. The error is
// the status the client is answered. Connections call it as they serve; this
// declaration serves tests and fuzzing.
grpc::Status decode_json_body(const std::string& body, const google::protobuf::MethodDescriptor& method,
                              std::vector<grpc::ByteBuffer>* requests);

class JsonGateway {
 public:
  // `channel` reaches the etcd services (a loopback channel to the gRPC
  // server); `kv` serves the KV calls. Both must outlive the gateway. `guard`
  // says which Host names requests may carry. A connection waiting for a
  // request longer than `idle_timeout` is closed; one with a call or stream
  // in flight never is, however long it stays silent.
  JsonGateway(std::shared_ptr<grpc::Channel> channel, KvCalls& kv, HostGuard guard,
              std::chrono::milliseconds idle_timeout)
      : stub_(std::move(channel)), kv_(kv), guard_(std::move(guard)), idle_timeout_(idle_timeout) {}

  // Serves HTTP/1.1 requests on `socket` asynchronously, on the event loop the
  // socket belongs to (call it there), until the client closes it, a
  // streaming call ends, it is idle too long, or it is closed. No thread waits
  // for a connection: calls are answered through the loop. The connection
  // holds `slot` until it is gone; the gateway must outlive its connections.
  std::shared_ptr<PortConnection> serve(boost::asio::ip::tcp::socket socket, std::shared_ptr<void> slot);
  // The same over TLS (the handshake done).
  std::shared_ptr<PortConnection> serve(TlsStream stream, std::shared_ptr<void> slot);

 private:
  grpc::GenericStub stub_;
  KvCalls& kv_;
  HostGuard guard_;
  std::chrono::milliseconds idle_timeout_;
};

}  // namespace zeppelin::etcd_api
