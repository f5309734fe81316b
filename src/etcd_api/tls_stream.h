// A server-side TLS connection for the etcd port: OpenSSL driven directly on
// a non-blocking TCP socket's descriptor (SSL_set_fd), asynchronously on the
// socket's event loop: whenever OpenSSL wants to read or write, the stream
// waits for the socket to be ready and tries again. It is an asio
// AsyncReadStream and AsyncWriteStream, so that the HTTP/2 front and Beast
// serve it as they serve a plain socket (each templated on the stream type,
// so that the plaintext path pays nothing for it).
//
// Why not asio's ssl::stream: the handshake runs on the port's event loops
// (shared_port.h) and an HTTP/2 connection then moves to the front's loops;
// ssl::stream is bound to its socket's loop for good, while an OpenSSL
// session on a descriptor is bound to no loop (release() and a new stream).
//
// Thread model: one loop, as a socket's. At most one read and one write in
// flight at a time (asio's rule for a socket). Renegotiation is off, so a
// write never has to wait for the peer's bytes; a read may have to write (a
// TLS 1.3 key update), which it does on the same descriptor.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <cerrno>
#include <climits>
#include <memory>
#include <string>
#include <utility>

namespace zeppelin::etcd_api {

struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

class TlsStream {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  using tcp = boost::asio::ip::tcp;

  // Takes over `socket` (made non-blocking here) and `ssl`, a session of a
  // server context, which is attached to the socket's descriptor unless it
  // already is (a session moved from another stream).
  TlsStream(tcp::socket socket, SslPtr ssl) : socket_(std::move(socket)), ssl_(std::move(ssl)) {
    boost::system::error_code ignored;
    socket_.non_blocking(true, ignored);
    if (SSL_get_fd(ssl_.get()) != socket_.native_handle()) SSL_set_fd(ssl_.get(), socket_.native_handle());
    // Bytes are handed to SSL_write again from where the last call stopped;
    // no renegotiation; a peer that closes without close_notify reads as EOF.
    SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_options(ssl_.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  }
  TlsStream(TlsStream&&) = default;
  TlsStream& operator=(TlsStream&&) = delete;

  executor_type get_executor() { return socket_.get_executor(); }
  tcp::socket& socket() { return socket_; }
  SSL* native_handle() { return ssl_.get(); }
  bool is_open() const { return socket_.is_open(); }

  // The descriptor and the session, for a stream on another loop. The stream
  // is then closed; no operation may be in flight.
  std::pair<int, SslPtr> release() { return {socket_.release(), std::move(ssl_)}; }

  // The server's side of the handshake. Handler: void(error_code).
  template <class Token>
  auto async_handshake(Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
        [this](auto handler) {
          run([ssl = ssl_.get()] { return SSL_accept(ssl); },
              [handler = std::move(handler)](const boost::system::error_code& ec, std::size_t) mutable { handler(ec); },
              true);
        },
        token);
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& buffers) {
          const auto b = first_buffer<boost::asio::mutable_buffer>(buffers);
          if (b.size() == 0) return complete(std::move(handler), {}, 0, true);
          run([ssl = ssl_.get(), b] { return SSL_read(ssl, b.data(), clamp(b.size())); }, std::move(handler), true);
        },
        token, buffers);
  }

  // Several buffers (Beast's header and body) go out as one record, up to 16 KiB.
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& buffers) {
          auto b = first_buffer<boost::asio::const_buffer>(buffers);
          if (b.size() < kGatherBytes && boost::asio::buffer_size(buffers) > b.size()) {
            gathered_.resize(std::min(boost::asio::buffer_size(buffers), kGatherBytes));
            gathered_.resize(boost::asio::buffer_copy(boost::asio::buffer(gathered_), buffers));
            b = boost::asio::buffer(gathered_);
          }
          if (b.size() == 0) return complete(std::move(handler), {}, 0, true);
          run([ssl = ssl_.get(), b] { return SSL_write(ssl, b.data(), clamp(b.size())); }, std::move(handler), true);
        },
        token, buffers);
  }

  void cancel(boost::system::error_code& ec) { socket_.cancel(ec); }
  // Sends close_notify if the socket takes it now (never waits), then shuts the socket down.
  void shutdown(tcp::socket::shutdown_type what, boost::system::error_code& ec) {
    if (ssl_ && socket_.is_open() && SSL_is_init_finished(ssl_.get())) {
      SSL_shutdown(ssl_.get());
      ERR_clear_error();
    }
    socket_.shutdown(what, ec);
  }
  void close(boost::system::error_code& ec) { socket_.close(ec); }

 private:
  static constexpr std::size_t kGatherBytes = 16 * 1024;

  static int clamp(std::size_t n) { return n > INT_MAX ? INT_MAX : static_cast<int>(n); }

  template <class Buffer, class Buffers>
  static Buffer first_buffer(const Buffers& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      if (Buffer b(*it); b.size() > 0) return b;
    }
    return Buffer();
  }

  // Calls `io` (an SSL call: > 0 done) until it is done or fails, waiting for
  // the socket whenever OpenSSL wants it. `first`: not yet returned to the
  // initiator, so the handler must be posted rather than called.
  template <class Io, class Handler>
  void run(Io io, Handler handler, bool first) {
    ERR_clear_error();
    const int rv = io();
    if (rv > 0) return complete(std::move(handler), {}, static_cast<std::size_t>(rv), first);
    const int err = SSL_get_error(ssl_.get(), rv);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      auto executor = boost::asio::get_associated_executor(handler, socket_.get_executor());
      // On an error the stream may be gone: the handler alone is touched.
      socket_.async_wait(err == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write,
                         boost::asio::bind_executor(executor, [this, io, handler = std::move(handler)](
                                                                  const boost::system::error_code& ec) mutable {
                           if (ec) return handler(ec, std::size_t{0});
                           run(io, std::move(handler), false);
                         }));
      return;
    }
    boost::system::error_code ec;
    if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0)) {
      ec = boost::asio::error::eof;
    } else if (err == SSL_ERROR_SYSCALL) {
      ec = boost::system::error_code(errno, boost::system::system_category());
    } else {
      const unsigned long e = ERR_peek_last_error();
      ec = e != 0 ? boost::system::error_code(static_cast<int>(e), boost::asio::error::get_ssl_category())
                  : boost::asio::error::connection_reset;
    }
    ERR_clear_error();
    complete(std::move(handler), ec, 0, first);
  }

  template <class Handler>
  void complete(Handler handler, const boost::system::error_code& ec, std::size_t n, bool first) {
    if (!first) return handler(ec, n);
    auto executor = boost::asio::get_associated_executor(handler, socket_.get_executor());
    boost::asio::post(
        boost::asio::bind_executor(executor, [handler = std::move(handler), ec, n]() mutable { handler(ec, n); }));
  }

  tcp::socket socket_;
  SslPtr ssl_;
  std::string gathered_;  // a write's buffers made one, while it is in flight
};

}  // namespace zeppelin::etcd_api
