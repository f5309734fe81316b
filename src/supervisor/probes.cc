#include "supervisor/probes.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>

namespace zeppelin::supervisor {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;


void probe_tcp(asio::io_context& io, const std::string& host, int port, std::chrono::milliseconds timeout,
               std::function<void(bool)> done) {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) {
    done(false);
    return;
  }
  auto stream = std::make_shared<beast::tcp_stream>(io);
  stream->expires_after(timeout);
  stream->async_connect(tcp::endpoint(address, static_cast<unsigned short>(port)),
                        [stream, done = std::move(done)](const boost::system::error_code& e) {
                          stream->socket().close();
                          done(!e);
                        });
}

void probe_http(asio::io_context& io, const std::string& host, int port, const std::string& path,
                std::chrono::milliseconds timeout, std::function<void(bool)> done) {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) {
    done(false);
    return;
  }
  struct Exchange {
    explicit Exchange(asio::io_context& io) : stream(io) {}
    beast::tcp_stream stream;
    http::request<http::empty_body> request;
    http::response_parser<http::string_body> parser;
    beast::flat_buffer buffer;
    std::function<void(bool)> done;
  };
  auto x = std::make_shared<Exchange>(io);
  x->done = std::move(done);
  x->request = http::request<http::empty_body>(http::verb::get, path, 11);
  x->request.set(http::field::host, host + ":" + std::to_string(port));
  x->request.set(http::field::user_agent, "zeppelin-health");
  x->request.set(http::field::connection, "close");
  x->parser.body_limit(64 * 1024);
  x->stream.expires_after(timeout);
  x->stream.async_connect(tcp::endpoint(address, static_cast<unsigned short>(port)), [x](const boost::system::error_code& e) {
    if (e) return x->done(false);
    http::async_write(x->stream, x->request, [x](const boost::system::error_code& e2, std::size_t) {
      if (e2) return x->done(false);
      http::async_read(x->stream, x->buffer, x->parser, [x](const boost::system::error_code& e3, std::size_t) {
        beast::error_code ignored;
        x->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        const unsigned status = x->parser.get().result_int();
        x->done(!e3 && status >= 200 && status < 400);
      });
    });
  });
}

bool port_taken(const std::string& host, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // TIME_WAIT is no obstacle
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool parsed = ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1;
  const bool taken = parsed && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno == EADDRINUSE;
  ::close(fd);
  return taken;
}

}  // namespace zeppelin::supervisor
