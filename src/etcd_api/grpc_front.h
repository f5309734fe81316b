// The HTTP/2 side of the etcd port. Every gRPC connection is served here, on
// nghttp2 and a few event-loop threads: KV's unary calls (Range, Put,
// DeleteRange, Txn, Compact) are answered in place through KvCalls, and every
// other call (streams, leases, locks, elections, auth, maintenance) is relayed
// stream by stream to the gRPC server over a private socket pair of the
// connection's own.
//
// Why not gRPC for everything: KV's unary calls are what a loaded etcd client
// sends most, and in the gRPC server a durable put's answer comes from the
// store's writer thread, which cost about 20 µs of hand-offs per call on top
// of gRPC's own 25 µs. Here the writer thread hands each event loop the
// answers of a whole group commit at once; the server's CPU per put went from
// 57-81 µs to 35-50 µs in all (bench/README.md).
//
// A call is relayed as it came: headers, messages and trailers are copied
// frame by frame, and flow control is end to end (bytes are acknowledged to
// the sender only once the other side took them), so a watcher that stops
// reading still pushes back on the server.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "etcd_api/tls_stream.h"

namespace zeppelin::etcd_api {

class KvCalls;

class GrpcFront {
 public:
  // Hands one end of a connected socket pair to the gRPC server, which then
  // serves it as an HTTP/2 connection; the other end is the relay's.
  using AttachToGrpc = std::function<void(int fd)>;

  // Starts `threads` event loops. `kv` and `attach` must outlive the front.
  // A connection with no call in flight for `idle_timeout` is ended (GOAWAY).
  static std::unique_ptr<GrpcFront> start(KvCalls& kv, AttachToGrpc attach, int threads,
                                          std::chrono::milliseconds idle_timeout);
  virtual ~GrpcFront() = default;

  // Takes over a non-blocking TCP connection that opened with the HTTP/2
  // preface. `slot` is held for as long as the connection is open (the
  // port's count of connections, see shared_port.h).
  virtual void serve(int fd, std::shared_ptr<void> slot) = 0;
  // The same for a TLS connection whose handshake is done (ALPN: h2): `ssl`
  // is the session on `fd`.
  virtual void serve_tls(int fd, SslPtr ssl, std::shared_ptr<void> slot) = 0;
  // From now on, calls that need the gRPC server are refused (REFUSED_STREAM):
  // it is shutting down. KV calls are still answered.
  virtual void stop_relaying() = 0;
  // Closes every connection and waits for the event loops and for KV calls in flight.
  virtual void stop() = 0;
};

}  // namespace zeppelin::etcd_api
