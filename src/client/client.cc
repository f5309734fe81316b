#include "client/client.h"

#include "common/url.h"

#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <limits>

namespace zeppelin::client {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using nlohmann::json;

std::string Response::error_message() const {
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    return body["error"].value("message", "request failed");
  }
  return "request failed with HTTP " + std::to_string(status);
}

std::string url_encode(const std::string& value) { return percent_encode(value, "/"); }

namespace {

Result<local::socket> connect(asio::io_context& io, const std::string& path) {
  local::socket socket(io);
  boost::system::error_code ec;
  socket.connect(local::endpoint(path), ec);
  if (ec) return make_error(Errc::kUnavailable, "cannot reach the zeppelin server at " + path + ": " + ec.message());
  return socket;
}

http::request<http::string_body> make_request(const std::string& method, const std::string& target, const json& body) {
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, "zeppelin");
  req.set(http::field::user_agent, "zeppelin-cli");
  req.keep_alive(false);
  if (!body.is_null()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body.dump();
  }
  req.prepare_payload();
  return req;
}

// Connects and sends one request; the caller reads the answer.
Result<local::socket> send_request(asio::io_context& io, const std::string& path, const std::string& method,
                                   const std::string& target, const json& body) {
  auto socket = connect(io, path);
  if (!socket) return socket.error();
  boost::system::error_code ec;
  http::write(*socket, make_request(method, target, body), ec);
  if (ec) return make_error(Errc::kUnavailable, "the zeppelin server closed the connection: " + ec.message());
  return socket;
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

json parse_json(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json(text) : j;
}

}  // namespace

bool Client::reachable() const {
  asio::io_context io;
  return connect(io, socket_path_).ok();
}

Result<Response> Client::call(const std::string& method, const std::string& target, const json& body) const {
  asio::io_context io;
  auto socket = send_request(io, socket_path_, method, target, body);
  if (!socket) return socket.error();
  try {
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 * 1024 * 1024);
    http::read(*socket, buffer, parser);
    Response out;
    out.status = static_cast<int>(parser.get().result_int());
    out.body = parse_json(parser.get().body());
    return out;
  } catch (const boost::system::system_error& e) {
    return make_error(Errc::kUnavailable, "the zeppelin server closed the connection: " + e.code().message());
  }
}

Result<Response> Client::stream(const std::string& method, const std::string& target, const json& body,
                                const std::function<bool(const json&)>& on_item) const {
  asio::io_context io;
  auto socket = send_request(io, socket_path_, method, target, body);
  if (!socket) return socket.error();
  try {
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    // Not boost::none: Boost 1.74 then rejects every answer with a Content-Length.
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    http::read_header(*socket, buffer, parser);
    Response out;
    out.status = static_cast<int>(parser.get().result_int());
    std::string collected;
    std::string pending;
    char chunk[16384];
    bool keep_going = true;
    while (!parser.is_done() && keep_going) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      boost::system::error_code ec;
      http::read_some(*socket, buffer, parser, ec);  // returns as soon as some body arrived
      if (ec == http::error::need_buffer) ec = {};
      const std::size_t n = sizeof chunk - parser.get().body().size;
      if (!out.ok()) {
        collected.append(chunk, n);
      } else {
        pending.append(chunk, n);
        std::size_t start = 0;
        for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
          json item = json::parse(pending.substr(start, nl - start), nullptr, false);
          start = nl + 1;
          if (!item.is_discarded() && !on_item(item)) {
            keep_going = false;
            break;
          }
        }
        pending.erase(0, start);
      }
      if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == http::error::partial_message) break;
      if (ec) {
        if (out.ok()) return out;  // the server went away mid-stream: the stream simply ends
        return make_error(Errc::kUnavailable, "reading from the zeppelin server: " + ec.message());
      }
    }
    if (!out.ok()) out.body = parse_json(collected);
    return out;
  } catch (const boost::system::system_error& e) {
    return make_error(Errc::kUnavailable, "the zeppelin server closed the connection: " + e.code().message());
  }
}

Result<Response> Client::download(const std::string& method, const std::string& target, int out) const {
  asio::io_context io;
  auto socket = send_request(io, socket_path_, method, target, nullptr);
  if (!socket) return socket.error();
  try {
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    http::read_header(*socket, buffer, parser);
    Response response;
    response.status = static_cast<int>(parser.get().result_int());
    for (const auto& field : parser.get()) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      response.headers[name] = std::string(field.value());
    }
    std::string error_text;
    char chunk[65536];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      boost::system::error_code ec;
      http::read(*socket, buffer, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return make_error(Errc::kUnavailable, "the zeppelin server ended the answer early: " + ec.message());
      const std::size_t n = sizeof chunk - parser.get().body().size;
      if (!response.ok()) {
        error_text.append(chunk, n);
      } else if (!write_all(out, chunk, n)) {
        return make_error(Errc::kInternal, std::string("cannot write the answer: ") + std::strerror(errno));
      }
    }
    if (!response.ok()) response.body = parse_json(error_text);
    return response;
  } catch (const boost::system::system_error& e) {
    return make_error(Errc::kUnavailable, "the zeppelin server closed the connection: " + e.code().message());
  }
}

}  // namespace zeppelin::client
