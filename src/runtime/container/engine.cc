#include "runtime/container/engine.h"

#include "common/url.h"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstring>
#include <limits>

namespace zeppelin::runtime::container {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using nlohmann::json;

json EngineResponse::json() const {
  auto parsed = json::parse(body, nullptr, false);
  return parsed.is_discarded() ? nlohmann::json() : parsed;
}

std::string EngineResponse::message() const {
  auto j = json();
  if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  std::string text = body.substr(0, 500);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (!text.empty()) return text;
  return "HTTP " + std::to_string(status);
}

std::vector<std::string> candidate_sockets(const std::map<std::string, std::string>& env) {
  auto get = [&](const char* key) {
    auto it = env.find(key);
    return it == env.end() ? std::string() : it->second;
  };
  const std::string docker_host = get("DOCKER_HOST");
  if (!docker_host.empty()) return {docker_host};  // explicit: only that one
  std::vector<std::string> out = {"unix:///var/run/docker.sock", "unix:///run/podman/podman.sock"};
  if (auto runtime_dir = get("XDG_RUNTIME_DIR"); !runtime_dir.empty()) {
    out.push_back("unix://" + runtime_dir + "/podman/podman.sock");
  }
  return out;
}

std::string query_escape(std::string_view value) { return percent_encode(value); }

namespace {

constexpr std::size_t kMaxCollectedBody = 64 * 1024 * 1024;

// One HTTP exchange on a connection of its own. In streaming mode a 2xx body
// goes to on_data as it arrives; otherwise the body is collected.
class Exchange final : public Engine::Stream, public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(asio::io_context& io, std::string socket_path, http::request<http::string_body> request,
           Engine::OnData on_data, Engine::Done done)
      : socket_(io),
        socket_path_(std::move(socket_path)),
        request_(std::move(request)),
        on_data_(std::move(on_data)),
        done_(std::move(done)) {
    // Not boost::none: Boost 1.74 then rejects every Content-Length.
    parser_.body_limit(std::numeric_limits<std::uint64_t>::max());
  }

  void run() {
    socket_.async_connect(local::endpoint(socket_path_), [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) return self->fail("cannot reach the container engine at unix://" + self->socket_path_ + ": " + ec.message());
      http::async_write(self->socket_, self->request_, [self](boost::system::error_code ec, std::size_t) {
        if (ec) return self->fail("the container engine closed the connection: " + ec.message());
        self->read_header();
      });
    });
  }

  void cancel() override {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      boost::system::error_code ignored;
      self->socket_.close(ignored);
    });
  }

 private:
  void read_header() {
    http::async_read_header(socket_, buffer_, parser_, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (ec) return self->fail("the container engine closed the connection: " + ec.message());
      self->response_.status = static_cast<int>(self->parser_.get().result_int());
      self->read_body();
    });
  }

  void read_body() {
    if (parser_.is_done()) return finish();
    parser_.get().body().data = chunk_;
    parser_.get().body().size = sizeof chunk_;
    http::async_read_some(socket_, buffer_, parser_, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      const std::size_t got = sizeof self->chunk_ - self->parser_.get().body().size;
      if (got > 0) self->deliver(std::string_view(self->chunk_, got));
      if (ec == http::error::need_buffer) ec = {};
      if (!ec) return self->read_body();
      // A stream ends when the engine closes it (or we cancel): that is its end.
      if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == http::error::partial_message ||
          ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) {
        return self->finish();
      }
      self->fail("reading from the container engine: " + ec.message());
    });
  }

  void deliver(std::string_view data) {
    if (on_data_ && response_.ok()) {
      on_data_(data);
    } else if (response_.body.size() < kMaxCollectedBody) {
      response_.body.append(data);
    }
  }

  void finish() {
    if (!done_) return;
    auto done = std::move(done_);
    done_ = nullptr;
    done(std::move(response_));
  }

  void fail(std::string message) {
    if (!done_) return;
    auto done = std::move(done_);
    done_ = nullptr;
    done(make_error(Errc::kUnavailable, std::move(message)));
  }

  local::socket socket_;
  std::string socket_path_;
  http::request<http::string_body> request_;
  Engine::OnData on_data_;
  Engine::Done done_;
  beast::flat_buffer buffer_;
  http::response_parser<http::buffer_body> parser_;
  EngineResponse response_;
  char chunk_[16384];
};

http::request<http::string_body> make_request(const std::string& method, const std::string& target, std::string body,
                                              const std::string& content_type) {
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, "docker");  // any name: the socket decides
  req.set(http::field::user_agent, "zeppelin");
  req.keep_alive(false);
  if (!body.empty()) req.set(http::field::content_type, content_type);
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

std::shared_ptr<Exchange> start_exchange(asio::io_context& io, const std::string& socket_path, const std::string& method,
                                         const std::string& target, std::string body, const std::string& content_type,
                                         Engine::OnData on_data, Engine::Done done) {
  auto exchange = std::make_shared<Exchange>(io, socket_path, make_request(method, target, std::move(body), content_type),
                                             std::move(on_data), std::move(done));
  exchange->run();
  return exchange;
}

Result<EngineResponse> run_to_completion(const std::string& socket_path, const std::string& method,
                                         const std::string& target, std::string body, const std::string& content_type) {
  asio::io_context io;
  Result<EngineResponse> out = make_error(Errc::kInternal, "no answer");
  start_exchange(io, socket_path, method, target, std::move(body), content_type, nullptr,
                 [&out](Result<EngineResponse> r) { out = std::move(r); });
  io.run();
  return out;
}

// "1.41" -> 1041, for comparisons; -1 when malformed.
int version_number(std::string_view v) {
  const auto dot = v.find('.');
  if (dot == std::string_view::npos) return -1;
  try {
    return std::stoi(std::string(v.substr(0, dot))) * 1000 + std::stoi(std::string(v.substr(dot + 1)));
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace

void StreamDemuxer::feed(std::string_view data) {
  while (!data.empty()) {
    if (remaining_ == 0) {
      const std::size_t need = 8 - header_.size();
      header_.append(data.substr(0, need));
      data.remove_prefix(std::min(need, data.size()));
      if (header_.size() < 8) return;
      const auto* h = reinterpret_cast<const unsigned char*>(header_.data());
      is_stderr_ = h[0] == 2;
      remaining_ = (std::size_t{h[4]} << 24) | (std::size_t{h[5]} << 16) | (std::size_t{h[6]} << 8) | h[7];
      header_.clear();
      continue;
    }
    const std::size_t take = std::min(remaining_, data.size());
    sink_(data.substr(0, take), is_stderr_);
    remaining_ -= take;
    data.remove_prefix(take);
  }
}

Engine::Engine(asio::io_context& io, std::string socket_path, std::string api_version, std::string description)
    : io_(io), socket_path_(std::move(socket_path)), api_version_(std::move(api_version)), description_(std::move(description)) {}

Result<std::shared_ptr<Engine>> Engine::connect(asio::io_context& io, const std::map<std::string, std::string>& env) {
  std::string tried;
  for (const auto& url : candidate_sockets(env)) {
    if (url.rfind("unix://", 0) != 0) {
      tried += "\n  " + url + ": only unix:// engine addresses are supported";
      continue;
    }
    const std::string path = url.substr(7);
    auto version = run_to_completion(path, "GET", "/version", "", "");
    if (!version) {
      tried += "\n  " + url + ": " + version.error().message;
      continue;
    }
    const json info = version->json();
    if (!version->ok() || !info.is_object() || !info.contains("ApiVersion")) {
      tried += "\n  " + url + ": not a container engine (GET /version answered " + std::to_string(version->status) + ")";
      continue;
    }
    const std::string theirs = info.value("ApiVersion", "");
    if (version_number(theirs) < version_number(kMinApiVersion)) {
      return make_error(Errc::kUnavailable, "the container engine at " + url + " speaks API " + theirs +
                                                 "; zeppelin needs at least " + std::string(kMinApiVersion));
    }
    const std::string agreed = version_number(theirs) < version_number(kMaxApiVersion) ? theirs : std::string(kMaxApiVersion);
    std::string name = "Docker Engine";
    if (info.contains("Components") && info["Components"].is_array()) {
      for (const auto& c : info["Components"]) {
        if (c.is_object() && c.value("Name", "").find("Podman") != std::string::npos) name = "Podman";
      }
    }
    return std::make_shared<Engine>(io, path, agreed, name + " " + info.value("Version", "?"));
  }
  return make_error(Errc::kUnavailable, "no container engine is reachable; tried:" + tried +
                                            "\nstart Docker or Podman, or point DOCKER_HOST at its socket");
}

void Engine::request(const std::string& method, const std::string& target, std::string body, Done done,
                     const std::string& content_type) {
  start_exchange(io_, socket_path_, method, "/v" + api_version_ + target, std::move(body), content_type, nullptr,
                 std::move(done));
}

std::shared_ptr<Engine::Stream> Engine::stream(const std::string& method, const std::string& target, std::string body,
                                               OnData on_data, Done done, const std::string& content_type) {
  return start_exchange(io_, socket_path_, method, "/v" + api_version_ + target, std::move(body), content_type,
                        std::move(on_data), std::move(done));
}

Result<EngineResponse> Engine::call(const std::string& method, const std::string& target, const std::string& body,
                                    const std::string& content_type) {
  return run_to_completion(socket_path_, method, "/v" + api_version_ + target, body, content_type);
}

}  // namespace zeppelin::runtime::container
