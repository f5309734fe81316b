// One TCP port for both faces of the etcd API, as etcd serves them: gRPC
// (HTTP/2) and the JSON gateway (HTTP/1.1). Connections are accepted here and
// told apart by their first bytes: a connection opening with the HTTP/2 client
// preface goes to gRPC, anything else to the HTTP/1.1 handler. The first
// bytes are only peeked at: each handler reads its connection from the start.
//
// Thread model: a fixed number of event loops (SharedPortOptions::event_loops
// threads), whatever the number of connections. The first loop accepts;
// each connection is sniffed, and served as HTTP/1.1 if it is, on one loop,
// asynchronously. Connections handed to the HTTP/2 handler are its own.
//
// With TLS (SharedPortOptions::tls), every connection first completes a TLS
// handshake, asynchronously on its loop, and its protocol is the one ALPN
// chose: "h2" goes to the HTTP/2 handler, anything else (ALPN "http/1.1" or
// none) to the HTTP/1.1 one. A connection that does not speak TLS fails the
// handshake and is closed: a TLS port never answers in plaintext.
//
// Limits: at most `max_connections` open at once, HTTP/2 ones included
// (more are closed as soon as they are accepted); a connection that sends
// nothing for `idle_timeout` before its protocol is known is closed, and one
// whose TLS handshake has not completed by then too (the HTTP/1.1 handler
// applies the same timeout between requests).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "etcd_api/etcd_server.h"
#include "etcd_api/tls_stream.h"

namespace zeppelin {
class TlsContextSource;
}

namespace zeppelin::etcd_api {

struct SharedPortOptions {
  int event_loops = 2;
  int max_connections = kDefaultEtcdMaxConnections;
  std::chrono::milliseconds idle_timeout = kDefaultEtcdIdleTimeout;
  // Where each connection's TLS context comes from (it offers ALPN "h2" and
  // "http/1.1"); null: plaintext. Must outlive the port.
  TlsContextSource* tls = nullptr;
};

// A connection served on one of the port's event loops.
class PortConnection {
 public:
  virtual ~PortConnection() = default;
  // Ends the connection now (the port is stopping). Called on its loop.
  virtual void close() = 0;
};

class SharedPort {
 public:
  // Held by whoever serves a connection, for as long as it is open: the
  // connection counts towards max_connections until the slot is gone.
  using ConnectionSlot = std::shared_ptr<void>;
  // Takes over an HTTP/2 connection's file descriptor (non-blocking, Nagle
  // off; closed by the handler when done). Called on one of the port's loops.
  using Http2Handler = std::function<void(int fd, ConnectionSlot slot)>;
  // Takes over an HTTP/1.1 connection, on the loop `socket` belongs to, and
  // serves it asynchronously there; returns it so that stop() can close it.
  // The connection must hold `slot` until it is gone.
  using Http1Handler =
      std::function<std::shared_ptr<PortConnection>(boost::asio::ip::tcp::socket socket, ConnectionSlot slot)>;

  // Called once, on one of the port's loops, when the port cannot accept any
  // more (its listening socket failed; the reason was logged as an error).
  // It must not stop the port itself (stop() waits for the loops): post that.
  // Errors it can survive (signals, aborted connections, out of descriptors
  // or memory) are retried, with a back-off for the shortages.
  using Failed = std::function<void(const std::string& reason)>;

  // On a TLS port, the same for connections whose handshake is done: an
  // HTTP/2 one as its descriptor and session, an HTTP/1.1 one as a stream.
  using Http2TlsHandler = std::function<void(int fd, SslPtr ssl, ConnectionSlot slot)>;
  using Http1TlsHandler = std::function<std::shared_ptr<PortConnection>(TlsStream stream, ConnectionSlot slot)>;

  struct Handlers {
    Http2Handler http2 = {};
    Http1Handler http1 = {};
    Failed failed = {};
    Http2TlsHandler http2_tls = {};  // needed with SharedPortOptions::tls only
    Http1TlsHandler http1_tls = {};
  };

  // Binds "HOST:PORT" (port 0: a free one) without accepting yet.
  static Result<std::unique_ptr<SharedPort>> bind(const std::string& listen, SharedPortOptions options = {});
  virtual ~SharedPort() = default;

  virtual int port() const = 0;
  // Starts the event loops and accepts. The handlers must stay valid until stop() returns.
  virtual void start(Handlers handlers) = 0;
  // Stops accepting, closes the connections it serves, waits until every one
  // of them is gone (their slots released), then ends the loops. Not from a
  // handler: it runs on a loop.
  virtual void stop() = 0;
};

}  // namespace zeppelin::etcd_api
