// One TCP port for both faces of the etcd API, as etcd serves them: gRPC
// (HTTP/2) and the JSON gateway (HTTP/1.1). Connections are accepted here and
// told apart by their first bytes: a connection opening with the HTTP/2 client
// preface goes to gRPC, anything else to the HTTP/1.1 handler. The first
// bytes are only peeked at: each handler reads its connection from the start.
//
// Thread model: one accept thread, and one thread per connection while it is
// being sniffed or served as HTTP/1.1; connections handed to gRPC are gRPC's.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"

namespace zeppelin::etcd_api {

class SharedPort {
 public:
  // Takes over an HTTP/2 connection's file descriptor (and closes it when done).
  using Http2Handler = std::function<void(int fd)>;
  // Serves one HTTP/1.1 connection until it ends; the socket is closed afterwards.
  using Http1Handler = std::function<void(boost::asio::ip::tcp::socket& socket)>;

  // Called once, on the accept thread, when the port cannot accept any more
  // (its listening socket failed; the reason was logged as an error). Errors
  // it can survive (signals, aborted connections, out of descriptors or
  // memory) are retried, with a back-off for the shortages.
  using Failed = std::function<void(const std::string& reason)>;

  // Binds "HOST:PORT" (port 0: a free one) without accepting yet.
  static Result<std::unique_ptr<SharedPort>> bind(const std::string& listen);
  virtual ~SharedPort() = default;

  virtual int port() const = 0;
  // Starts accepting. The handlers must stay valid until stop() returns.
  virtual void start(Http2Handler http2, Http1Handler http1, Failed failed) = 0;
  // Stops accepting, shuts down the HTTP/1.1 connections and waits for their threads.
  virtual void stop() = 0;
};

}  // namespace zeppelin::etcd_api
