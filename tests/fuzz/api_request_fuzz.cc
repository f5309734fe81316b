// Fuzz target: the control API's request handling. The input's first byte
// picks the door (bit 0: TCP, where the Host/Origin screening and the bearer
// token check apply; else the unix socket, where every route is open); the
// rest is the bytes a client sends. They go through the connection's parser
// (parse_request) and, when a request comes out, through the routes against a
// real Supervisor.
//
// Nothing runs: the event loop is never run, so the reconciler never starts a
// replica, and the driver answers supports() only — start() aborts, which
// would show a handler starting a process itself. Each input gets a fresh
// supervisor and state, so that inputs do not depend on each other.
#include <stdlib.h>

#include <boost/asio/io_context.hpp>
#include <spdlog/spdlog.h>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>

#include "api/http_server.h"
#include "api/routes.h"
#include "runtime/driver.h"
#include "state/state_store.h"
#include "supervisor/supervisor.h"

namespace {

using namespace zeppelin;

void check(bool condition) {
  if (!condition) std::abort();
}

// Accepts process services; a handler that starts anything aborts the run.
class UnreachableDriver final : public runtime::Driver {
 public:
  Status supports(const spec::Service& service) override {
    if (service.is_container()) return make_error(Errc::kUnavailable, "no container engine in the fuzzer");
    return ok_status();
  }
  Result<std::unique_ptr<runtime::Instance>> start(const runtime::LaunchSpec&, runtime::InstanceEvents) override {
    std::abort();
  }
  int reap_leftovers(const std::function<bool(const std::string&)>&) override { std::abort(); }
  bool adoptable(const std::string&) const override { return false; }
};

// Checks the answer's shape: one reply, or one stream, never both.
class RecordingExchange final : public api::Exchange {
 public:
  void reply(int status, const nlohmann::json& body) override {
    check(!answered_ && !streaming_);
    answered_ = true;
    check(status >= 200 && status < 600);
    if (status >= 400) check(body.contains("error") && body["error"].contains("code"));
  }
  // From the routes' serialising thread: the answer must be JSON the client can read.
  void reply_serialized(int status, std::string body) override {
    std::lock_guard<std::mutex> lock(mu_);
    check(!answered_ && !streaming_);
    answered_ = true;
    check(status >= 200 && status < 600);
    check(!nlohmann::json::parse(body, nullptr, false).is_discarded());
  }
  void reply_file(int status, const std::string&, const std::map<std::string, std::string>&) override {
    check(!answered_ && !streaming_);
    answered_ = true;
    check(status == 200);
  }
  void begin_stream() override {
    check(!answered_ && !streaming_);
    streaming_ = true;
  }
  void stream(const nlohmann::json&) override { check(streaming_); }
  void end_stream() override { check(streaming_); }
  void on_disconnect(std::function<void()> callback) override { check(streaming_ && callback != nullptr); }

 private:
  std::mutex mu_;
  bool answered_ = false;
  bool streaming_ = false;
};

const std::string& home() {
  static const std::string dir = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "zeppelin-fuzz-api-XXXXXX").string();
    check(::mkdtemp(pattern.data()) != nullptr);
    return pattern;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The API logs every refused request: at thousands of executions a second
  // that would be most of the run. Errors still show.
  static const bool quiet = (spdlog::set_level(spdlog::level::err), true);
  (void)quiet;
  if (size == 0) return 0;
  const bool tcp = (data[0] & 1) != 0;
  const std::string_view wire(reinterpret_cast<const char*>(data) + 1, size - 1);
  static const HostGuard guard("127.0.0.1:7440", {"zeppelin.example"});

  auto parsed = api::parse_request(wire, tcp ? &guard : nullptr);
  if (auto* refusal = std::get_if<api::Refusal>(&parsed)) {
    check(refusal->status == 400 || refusal->status == 403 || refusal->status == 413 || refusal->status == 415);
    check(refusal->body["error"]["code"].is_string());
    return 0;
  }
  auto* request = std::get_if<api::Request>(&parsed);
  if (request == nullptr) return 0;
  request->tcp = tcp;
  if (tcp) request->peer = "127.0.0.1";

  boost::asio::io_context io;  // never run: nothing the handlers schedule happens
  UnreachableDriver driver;
  state::MemoryStateStore state;
  supervisor::SupervisorOptions options;
  options.home = home();
  options.address_block = 100;  // not looked up per input: reading /proc/net/tcp would be most of the run
  {
    supervisor::Supervisor supervisor(io, driver, state, options);
    bool shut_down = false;
    auto handler = api::make_routes(supervisor, [&shut_down] { shut_down = true; });
    handler(*request, std::make_shared<RecordingExchange>());
    check(!shut_down || (request->method == "POST" && request->path == "/v1/shutdown" && !tcp));
  }
  return 0;
}
