// A client of the Docker Engine API (served by Docker and by Podman) over its
// unix socket. Every request opens its own connection, so requests run
// concurrently and a long stream (logs, wait) never blocks the others.
// Callbacks run on the io_context's thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace zeppelin::runtime::container {

struct EngineResponse {
  int status = 0;
  std::string body;
  bool ok() const { return status >= 200 && status < 300; }
  nlohmann::json json() const;  // null when the body is not JSON
  // The engine's {"message": ...}, or the status when it has none.
  std::string message() const;
};

// Where to look for an engine, in order: DOCKER_HOST (unix:// only), Docker's
// default socket, then Podman's rootful and rootless sockets.
std::vector<std::string> candidate_sockets(const std::map<std::string, std::string>& env);

class Engine : public std::enable_shared_from_this<Engine> {
 public:
  using Done = std::function<void(Result<EngineResponse>)>;
  // A piece of a streamed body, as it arrives.
  using OnData = std::function<void(std::string_view)>;

  // The newest API version this client speaks, and the oldest it accepts.
  static constexpr std::string_view kMaxApiVersion = "1.41";
  static constexpr std::string_view kMinApiVersion = "1.30";

  // Finds a reachable engine among candidate_sockets(env) and agrees on an
  // API version (blocking: this is a local socket and happens once). The
  // error names every socket tried and why it failed.
  static Result<std::shared_ptr<Engine>> connect(boost::asio::io_context& io,
                                                 const std::map<std::string, std::string>& env);

  const std::string& socket_path() const { return socket_path_; }
  const std::string& api_version() const { return api_version_; }
  const std::string& description() const { return description_; }  // "Docker Engine 20.10.24"

  // `target` is relative to the version prefix: "/containers/json?all=1".
  void request(const std::string& method, const std::string& target, std::string body, Done done,
               const std::string& content_type = "application/json");
  // Like request(), but hands the body to `on_data` as it arrives; `done` gets
  // the status with an empty body (or the collected body for non-2xx answers).
  // Without a timeout: ends when the engine closes the stream or cancel() is
  // called on the returned handle.
  class Stream;
  std::shared_ptr<Stream> stream(const std::string& method, const std::string& target, std::string body, OnData on_data,
                                 Done done, const std::string& content_type = "application/json");

  // Runs `request` to completion on a private io_context (for the CLI).
  Result<EngineResponse> call(const std::string& method, const std::string& target, const std::string& body = "",
                              const std::string& content_type = "application/json");

  Engine(boost::asio::io_context& io, std::string socket_path, std::string api_version, std::string description);

 private:
  boost::asio::io_context& io_;
  std::string socket_path_;
  std::string api_version_;
  std::string description_;
};

class Engine::Stream {
 public:
  virtual ~Stream() = default;
  // Closes the connection; `done` is then called with what was received.
  virtual void cancel() = 0;
};

// Splits Docker's multiplexed stdout/stderr stream (8-byte frame headers:
// stream type, 3 zero bytes, big-endian length) back into its two streams.
// Frames may be cut anywhere between reads.
class StreamDemuxer {
 public:
  using Sink = std::function<void(std::string_view data, bool is_stderr)>;
  explicit StreamDemuxer(Sink sink) : sink_(std::move(sink)) {}
  void feed(std::string_view data);

 private:
  Sink sink_;
  std::string header_;
  std::size_t remaining_ = 0;
  bool is_stderr_ = false;
};

// Percent-encodes a query parameter value.
std::string query_escape(std::string_view value);

}  // namespace zeppelin::runtime::container
