#include "etcd_api/json_gateway.h"

#include <fcntl.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "common/json_depth.h"
#include "common/memory.h"
#include "etcd_api/convert.h"
#include "etcd_api/kv_calls.h"

namespace zeppelin::etcd_api {

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
namespace protobuf = google::protobuf;
using tcp = net::ip::tcp;
using Request = http::request<http::string_body>;

struct Route {
  const char* service;  // full proto name
  const char* method;
};

// etcd 3.4's gateway paths (from the google.api.http options of its protos).
const std::map<std::string, Route, std::less<>>& routes() {
  static const std::map<std::string, Route, std::less<>> table = {
      {"/v3/kv/range", {"etcdserverpb.KV", "Range"}},
      {"/v3/kv/put", {"etcdserverpb.KV", "Put"}},
      {"/v3/kv/deleterange", {"etcdserverpb.KV", "DeleteRange"}},
      {"/v3/kv/txn", {"etcdserverpb.KV", "Txn"}},
      {"/v3/kv/compaction", {"etcdserverpb.KV", "Compact"}},
      {"/v3/watch", {"etcdserverpb.Watch", "Watch"}},
      {"/v3/lease/grant", {"etcdserverpb.Lease", "LeaseGrant"}},
      {"/v3/lease/revoke", {"etcdserverpb.Lease", "LeaseRevoke"}},
      {"/v3/kv/lease/revoke", {"etcdserverpb.Lease", "LeaseRevoke"}},
      {"/v3/lease/keepalive", {"etcdserverpb.Lease", "LeaseKeepAlive"}},
      {"/v3/lease/timetolive", {"etcdserverpb.Lease", "LeaseTimeToLive"}},
      {"/v3/kv/lease/timetolive", {"etcdserverpb.Lease", "LeaseTimeToLive"}},
      {"/v3/lease/leases", {"etcdserverpb.Lease", "LeaseLeases"}},
      {"/v3/kv/lease/leases", {"etcdserverpb.Lease", "LeaseLeases"}},
      {"/v3/maintenance/alarm", {"etcdserverpb.Maintenance", "Alarm"}},
      {"/v3/maintenance/status", {"etcdserverpb.Maintenance", "Status"}},
      {"/v3/maintenance/defragment", {"etcdserverpb.Maintenance", "Defragment"}},
      {"/v3/maintenance/hash", {"etcdserverpb.Maintenance", "Hash"}},
      {"/v3/maintenance/snapshot", {"etcdserverpb.Maintenance", "Snapshot"}},
      {"/v3/maintenance/transfer-leadership", {"etcdserverpb.Maintenance", "MoveLeader"}},
      {"/v3/cluster/member/add", {"etcdserverpb.Cluster", "MemberAdd"}},
      {"/v3/cluster/member/remove", {"etcdserverpb.Cluster", "MemberRemove"}},
      {"/v3/cluster/member/update", {"etcdserverpb.Cluster", "MemberUpdate"}},
      {"/v3/cluster/member/list", {"etcdserverpb.Cluster", "MemberList"}},
      {"/v3/cluster/member/promote", {"etcdserverpb.Cluster", "MemberPromote"}},
      {"/v3/auth/enable", {"etcdserverpb.Auth", "AuthEnable"}},
      {"/v3/auth/disable", {"etcdserverpb.Auth", "AuthDisable"}},
      {"/v3/auth/authenticate", {"etcdserverpb.Auth", "Authenticate"}},
      {"/v3/auth/user/add", {"etcdserverpb.Auth", "UserAdd"}},
      {"/v3/auth/user/get", {"etcdserverpb.Auth", "UserGet"}},
      {"/v3/auth/user/list", {"etcdserverpb.Auth", "UserList"}},
      {"/v3/auth/user/delete", {"etcdserverpb.Auth", "UserDelete"}},
      {"/v3/auth/user/changepw", {"etcdserverpb.Auth", "UserChangePassword"}},
      {"/v3/auth/user/grant", {"etcdserverpb.Auth", "UserGrantRole"}},
      {"/v3/auth/user/revoke", {"etcdserverpb.Auth", "UserRevokeRole"}},
      {"/v3/auth/role/add", {"etcdserverpb.Auth", "RoleAdd"}},
      {"/v3/auth/role/get", {"etcdserverpb.Auth", "RoleGet"}},
      {"/v3/auth/role/list", {"etcdserverpb.Auth", "RoleList"}},
      {"/v3/auth/role/delete", {"etcdserverpb.Auth", "RoleDelete"}},
      {"/v3/auth/role/grant", {"etcdserverpb.Auth", "RoleGrantPermission"}},
      {"/v3/auth/role/revoke", {"etcdserverpb.Auth", "RoleRevokePermission"}},
      {"/v3/lock/lock", {"v3lockpb.Lock", "Lock"}},
      {"/v3/lock/unlock", {"v3lockpb.Lock", "Unlock"}},
      {"/v3/election/campaign", {"v3electionpb.Election", "Campaign"}},
      {"/v3/election/proclaim", {"v3electionpb.Election", "Proclaim"}},
      {"/v3/election/leader", {"v3electionpb.Election", "Leader"}},
      {"/v3/election/observe", {"v3electionpb.Election", "Observe"}},
      {"/v3/election/resign", {"v3electionpb.Election", "Resign"}},
  };
  return table;
}

// grpc-gateway's mapping from gRPC codes to HTTP statuses (the one etcd 3.4 ships).
http::status http_status(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return http::status::ok;
    case grpc::StatusCode::CANCELLED:
      return http::status::request_timeout;
    case grpc::StatusCode::UNKNOWN:
      return http::status::internal_server_error;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return http::status::bad_request;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return http::status::gateway_timeout;
    case grpc::StatusCode::NOT_FOUND:
      return http::status::not_found;
    case grpc::StatusCode::ALREADY_EXISTS:
      return http::status::conflict;
    case grpc::StatusCode::PERMISSION_DENIED:
      return http::status::forbidden;
    case grpc::StatusCode::UNAUTHENTICATED:
      return http::status::unauthorized;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return http::status::too_many_requests;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return http::status::precondition_failed;
    case grpc::StatusCode::ABORTED:
      return http::status::conflict;
    case grpc::StatusCode::OUT_OF_RANGE:
      return http::status::bad_request;
    case grpc::StatusCode::UNIMPLEMENTED:
      return http::status::not_implemented;
    case grpc::StatusCode::INTERNAL:
      return http::status::internal_server_error;
    case grpc::StatusCode::UNAVAILABLE:
      return http::status::service_unavailable;
    case grpc::StatusCode::DATA_LOSS:
      return http::status::internal_server_error;
    default:
      return http::status::internal_server_error;
  }
}

std::string error_body(const grpc::Status& status) {
  nlohmann::ordered_json body;
  body["error"] = status.error_message();
  body["message"] = status.error_message();
  body["code"] = static_cast<int>(status.error_code());
  return body.dump();
}

// What grpc-gateway writes when a stream ends in an error after it started.
std::string stream_error_body(const grpc::Status& status) {
  const auto http = http_status(status.error_code());
  nlohmann::ordered_json error;
  error["grpc_code"] = static_cast<int>(status.error_code());
  error["http_code"] = static_cast<int>(http);
  error["message"] = status.error_message();
  error["http_status"] = std::string(http::obsolete_reason(http));
  return nlohmann::json{{"error", error}}.dump() + "\n";
}

std::string_view view(boost::beast::string_view s) { return {s.data(), s.size()}; }

// Cancels a call when the HTTP client closes its connection, while the call runs.
class HangupWatch {
 public:
  HangupWatch(int fd, grpc::ClientContext& ctx) {
    if (::pipe2(stop_, O_CLOEXEC) != 0) return;
    thread_ = std::thread([this, fd, &ctx] {
      // Only the hang-up is watched: bytes the client sends meanwhile stay unread.
      pollfd p[2] = {{fd, POLLRDHUP, 0}, {stop_[0], POLLIN, 0}};
      while (::poll(p, 2, -1) < 0 && errno == EINTR) {
      }
      if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) ctx.TryCancel();
    });
  }
  ~HangupWatch() {
    if (!thread_.joinable()) return;
    const char byte = 0;
    (void)!::write(stop_[1], &byte, 1);
    thread_.join();
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  HangupWatch(const HangupWatch&) = delete;
  HangupWatch& operator=(const HangupWatch&) = delete;

 private:
  int stop_[2] = {-1, -1};
  std::thread thread_;
};

// The connection's blocking socket as Beast reads and writes it, except that
// a call a signal interrupted (EINTR, which Asio's blocking calls return as
// they get it) is made again at once, and one that found the kernel short of
// memory (ENOMEM, ENOBUFS) a little later, instead of ending the connection.
class RetryingSocket {
 public:
  explicit RetryingSocket(tcp::socket& socket) : socket_(socket) {}

  int native_handle() { return socket_.native_handle(); }

  template <class Buffers>
  size_t read_some(const Buffers& buffers, boost::system::error_code& ec) {
    for (;;) {
      const size_t n = socket_.read_some(buffers, ec);
      if (!retry(ec)) return n;
    }
  }
  template <class Buffers>
  size_t read_some(const Buffers& buffers) {
    boost::system::error_code ec;
    const size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
  template <class Buffers>
  size_t write_some(const Buffers& buffers, boost::system::error_code& ec) {
    for (;;) {
      const size_t n = socket_.write_some(buffers, ec);
      if (!retry(ec)) return n;
    }
  }
  template <class Buffers>
  size_t write_some(const Buffers& buffers) {
    boost::system::error_code ec;
    const size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  static bool retry(const boost::system::error_code& ec) {
    if (ec == net::error::interrupted) return true;
    if (ec != net::error::no_memory && ec != net::error::no_buffer_space) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return true;
  }

  tcp::socket& socket_;
};

class Connection {
 public:
  friend grpc::Status etcd_api::decode_json_body(const std::string&, const protobuf::MethodDescriptor&,
                                                 std::vector<grpc::ByteBuffer>*);
  Connection(tcp::socket& socket, const std::shared_ptr<grpc::Channel>& channel, KvCalls& kv, const HostGuard& guard)
      : socket_(socket), stub_(channel), kv_(kv), guard_(guard) {}
  ~Connection() {
    unary_cq_.Shutdown();
    drain(unary_cq_);
  }

  void serve() {
    for (;;) {
      // After a large request or answer, its buffers are gone by the end of
      // the iteration: give the memory back rather than keep it for the next.
      struct Release {
        Connection& c;
        std::size_t request_bytes = 0;
        ~Release() {
          if (request_bytes < kReleaseAfterBytes && c.sent_bytes_ < kReleaseAfterBytes) return;
          c.sent_bytes_ = 0;
          c.buffer_.shrink_to_fit();
          release_free_memory();
        }
      };
      Release release{*this, 0};  // before the parser: it runs once the parser's buffers are freed
      http::request_parser<http::string_body> parser;
      parser.body_limit(kMaxGatewayBodyBytes);
      boost::system::error_code ec;
      http::read_header(socket_, buffer_, parser, ec);
      if (!ec && parser.get()[http::field::expect] == "100-continue") {
        // curl asks before sending a large body, and waits a second for no answer.
        http::response<http::empty_body> go_on(http::status::continue_, 11);
        http::write(socket_, go_on, ec);
      }
      if (!ec) http::read(socket_, buffer_, parser, ec);
      if (ec == http::error::body_limit) {
        reply_error(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 "request body larger than max (" + std::to_string(kMaxGatewayBodyBytes) + " bytes)"),
                    false);
        return;
      }
      if (ec) {
        if (ec != http::error::end_of_stream) reply_text(http::status::bad_request, "Bad Request\n", false);
        return;
      }
      release.request_bytes = parser.get().body().size();
      if (!handle(parser.get())) return;
    }
  }

 private:
  // Answers one request; false when the connection must close afterwards.
  bool handle(const Request& req) {
    keep_alive_ = req.keep_alive();
    std::string_view path(req.target().data(), req.target().size());
    path = path.substr(0, path.find('?'));
    if (auto refused = screen(req)) return *refused;
    const auto route = routes().find(path);
    if (route == routes().end()) return reply_text(http::status::not_found, "Not Found\n", keep_alive_);
    if (req.method() != http::verb::post) {
      return reply_text(http::status::method_not_allowed, "Method Not Allowed\n", keep_alive_);
    }
    const std::string method_path = std::string("/") + route->second.service + "/" + route->second.method;
    const auto* service = protobuf::DescriptorPool::generated_pool()->FindServiceByName(route->second.service);
    const auto* method = service ? service->FindMethodByName(route->second.method) : nullptr;
    if (!method) {
      // What a gRPC server answers for a service or method it lacks.
      return reply_error(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                      service ? "unknown method " + std::string(route->second.method) +
                                                    " for service " + route->second.service
                                              : "unknown service " + std::string(route->second.service)),
                         keep_alive_);
    }
    std::string token;
    if (auto auth = req.find(http::field::authorization); auth != req.end()) token = std::string(auth->value());
    if (service->full_name() == "etcdserverpb.KV") return kv_unary(req, method->name(), token);
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", token);
    if (method->client_streaming() || method->server_streaming()) return stream(req, *method, method_path, ctx);
    return unary(req, *method, method_path, ctx);
  }

  // Browsers are not clients of this port (common/http_guard.h): a CORS
  // preflight (OPTIONS) gets no grant, and what a page can send without one is
  // refused here, before any call or auth check. Answers the refusal, or
  // nothing when the request may go on.
  //
  // Host must name this server (DNS rebinding). An Origin header, which
  // browsers send with every cross-origin POST, must be this server itself.
  // The body type must be one a browser cannot send cross-origin without a
  // preflight, with one exception: curl -d and other command-line clients
  // send application/x-www-form-urlencoded by default (etcd's own
  // documentation posts JSON that way), so that type is accepted from a
  // request without Origin -- a browser's cross-origin form or fetch always
  // carries one. text/plain and multipart/form-data, the other types of a
  // "simple" request, are refused whatever the Origin, and so is any type but
  // JSON; no type at all (Python's http.client, many scripts) is accepted.
  std::optional<bool> screen(const Request& req) {
    const std::string_view host = view(req[http::field::host]);
    if (auto s = guard_.check_host(host); !s) {
      return reply_refusal(http::status::forbidden, grpc::StatusCode::PERMISSION_DENIED, s.error().message);
    }
    const auto origin = req.find(http::field::origin);
    if (origin != req.end()) {
      if (auto s = HostGuard::check_origin(view(origin->value()), host); !s) {
        return reply_refusal(http::status::forbidden, grpc::StatusCode::PERMISSION_DENIED, s.error().message);
      }
    }
    const std::string type = media_type(view(req[http::field::content_type]));
    if (type.empty() || type == "application/json") return std::nullopt;
    if (type == "application/x-www-form-urlencoded" && origin == req.end()) return std::nullopt;
    return reply_refusal(http::status::unsupported_media_type, grpc::StatusCode::INVALID_ARGUMENT,
                         "Content-Type " + type + " is not accepted: send the request as application/json");
  }

  // KV's calls, in process: the body parsed straight into the request, the
  // answer printed straight from the response, as a gRPC client would get them.
  bool kv_unary(const Request& req, const std::string& name, const std::string& token) {
    namespace pb = etcdserverpb;
    if (name == "Range") return kv_call<pb::RangeRequest, pb::RangeResponse>(req, token, &KvCalls::range);
    if (name == "Put") return kv_call<pb::PutRequest, pb::PutResponse>(req, token, &KvCalls::put);
    if (name == "DeleteRange") {
      return kv_call<pb::DeleteRangeRequest, pb::DeleteRangeResponse>(req, token, &KvCalls::delete_range);
    }
    if (name == "Txn") return kv_call<pb::TxnRequest, pb::TxnResponse>(req, token, &KvCalls::txn);
    return kv_call<pb::CompactionRequest, pb::CompactionResponse>(req, token, &KvCalls::compact);
  }

  // Parses the request, makes the call and waits for its answer (a write's comes from the store's thread).
  template <class Req, class Resp>
  bool kv_call(const Request& req, const std::string& token,
               void (KvCalls::*call)(const std::string&, const Req&, Resp*, KvCalls::Done)) {
    Req request;
    if (auto s = parse_json(req.body(), &request); !s.ok()) return reply_error(s, keep_alive_);
    Resp response;
    std::promise<grpc::Status> answered;
    (kv_.*call)(token, request, &response, [&answered](const grpc::Status& s) { answered.set_value(s); });
    const grpc::Status status = answered.get_future().get();
    if (!status.ok()) return reply_error(status, keep_alive_);
    return reply_json(response);
  }

  bool unary(const Request& req, const protobuf::MethodDescriptor& method, const std::string& path,
             grpc::ClientContext& ctx) {
    grpc::ByteBuffer request;
    if (auto s = to_buffer(req.body(), *method.input_type(), &request); !s.ok()) {
      return reply_error(s, keep_alive_);
    }
    // Lock and Campaign wait for their turn: give up the turn if the client does.
    std::optional<HangupWatch> hangup;
    if (method.name() == "Lock" || method.name() == "Campaign") hangup.emplace(socket_.native_handle(), ctx);
    grpc::ByteBuffer response;
    grpc::Status status;
    auto call = stub_.PrepareUnaryCall(&ctx, path, request, &unary_cq_);
    call->StartCall();
    call->Finish(&response, &status, this);
    wait(unary_cq_);  // the call's one event: the queue is empty again afterwards
    hangup.reset();
    if (!status.ok()) return reply_error(status, keep_alive_);
    std::unique_ptr<protobuf::Message> message(new_message(*method.output_type()));
    if (auto s = from_buffer(response, message.get()); !s.ok()) return reply_error(s, false);
    return reply_json(*message);
  }

  bool reply_json(const protobuf::Message& message) {
    std::string json;
    if (auto s = print_json(message, &json); !s.ok()) return reply_error(s, false);
    http::response<http::string_body> res(http::status::ok, 11);
    res.set(http::field::content_type, "application/json");
    res.body() = std::move(json);
    return send(std::move(res), keep_alive_);
  }

  // Streams: the body's JSON objects are the requests; each response is
  // written as {"result": ...} and a newline, until the call ends or the
  // client goes away. The connection closes afterwards.
  bool stream(const Request& req, const protobuf::MethodDescriptor& method, const std::string& path,
              grpc::ClientContext& ctx) {
    std::vector<grpc::ByteBuffer> requests;
    if (auto s = split_requests(req.body(), method, &requests); !s.ok()) {
      // grpc-gateway reports a stream's undecodable body as UNKNOWN.
      return reply_error(grpc::Status(grpc::StatusCode::UNKNOWN, s.error_message()), false);
    }
    grpc::CompletionQueue cq;
    auto call = stub_.PrepareCall(&ctx, path, &cq);
    call->StartCall(this);
    bool ok = wait(cq);
    for (auto& r : requests) {
      if (!ok) break;
      call->Write(r, this);
      ok = wait(cq);
    }
    // A bidirectional stream stays open for the client's lifetime (etcd's
    // watch stream outlives a half-close); the others expect one request.
    if (ok && !method.client_streaming()) {
      call->WritesDone(this);
      ok = wait(cq);
    }

    http::response<http::empty_body> res(http::status::ok, 11);
    res.set(http::field::content_type, "application/json");
    res.chunked(true);
    res.keep_alive(false);
    http::response_serializer<http::empty_body> serializer(res);
    boost::system::error_code ec;
    http::write_header(socket_, serializer, ec);

    // The client closing its side is the only way it ends a watch.
    HangupWatch hangup(socket_.native_handle(), ctx);
    grpc::ByteBuffer response;
    while (ok && !ec) {
      call->Read(&response, this);
      if (!wait(cq)) break;
      std::unique_ptr<protobuf::Message> message(new_message(*method.output_type()));
      std::string json;
      if (!from_buffer(response, message.get()).ok() || !print_json(*message, &json).ok()) break;
      const std::string line = "{\"result\":" + json + "}\n";
      net::write(socket_, http::make_chunk(net::buffer(line)), ec);
    }
    if (ec) ctx.TryCancel();  // the client is gone: end the call
    grpc::Status status;
    call->Finish(&status, this);
    wait(cq);
    if (!ec && !status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
      const std::string line = stream_error_body(status);
      net::write(socket_, http::make_chunk(net::buffer(line)), ec);
    }
    if (!ec) net::write(socket_, http::make_chunk_last(), ec);
    cq.Shutdown();
    drain(cq);
    return false;
  }

  // The JSON body as a request; refused as gRPC refuses a message over its limit.
  static grpc::Status parse_json(const std::string& json, protobuf::Message* message) {
    const bool blank = json.find_first_not_of(" \t\r\n") == std::string::npos;
    if (!blank) {
      // Before the parser builds anything: megabytes of "[" cost it hundreds of megabytes.
      if (json_deeper_than(json)) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "request body is nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
      }
      protobuf::util::JsonParseOptions options;
      options.ignore_unknown_fields = true;  // as etcd's gateway does
      auto parsed = protobuf::util::JsonStringToMessage(json, message, options);
      if (!parsed.ok()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(parsed.message()));
    }
    // gRPC's own limit, checked before calling, with the message etcd's gateway relays.
    if (const std::size_t bytes = message->ByteSizeLong(); bytes > kMaxGrpcMessageBytes) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "grpc: received message larger than max (" +
                                                                    std::to_string(bytes) + " vs. " +
                                                                    std::to_string(kMaxGrpcMessageBytes) + ")");
    }
    return grpc::Status::OK;
  }

  static grpc::Status to_buffer(const std::string& json, const protobuf::Descriptor& type, grpc::ByteBuffer* out) {
    std::unique_ptr<protobuf::Message> message(new_message(type));
    if (auto s = parse_json(json, message.get()); !s.ok()) return s;
    std::string bytes;
    message->SerializeToString(&bytes);
    grpc::Slice slice(bytes);
    *out = grpc::ByteBuffer(&slice, 1);
    return grpc::Status::OK;
  }

  // A stream's body: one request per JSON value, in order.
  static grpc::Status split_requests(const std::string& body, const protobuf::MethodDescriptor& method,
                                     std::vector<grpc::ByteBuffer>* out) {
    std::istringstream in(body);
    for (;;) {
      in >> std::ws;
      if (in.peek() == std::char_traits<char>::eof()) break;
      nlohmann::json value;
      try {
        in >> value;
      } catch (const nlohmann::json::exception& e) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, e.what());
      }
      grpc::ByteBuffer request;
      if (auto s = to_buffer(value.dump(), *method.input_type(), &request); !s.ok()) return s;
      out->push_back(std::move(request));
      if (!method.client_streaming()) break;
    }
    if (out->empty()) {  // an empty body is the default request
      grpc::ByteBuffer request;
      if (auto s = to_buffer("", *method.input_type(), &request); !s.ok()) return s;
      out->push_back(std::move(request));
    }
    return grpc::Status::OK;
  }

  static grpc::Status from_buffer(const grpc::ByteBuffer& buffer, protobuf::Message* message) {
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (buffer.Valid() && buffer.Dump(&slices).ok()) {
      for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    if (!message->ParseFromString(bytes)) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "cannot decode a " + message->GetTypeName());
    }
    return grpc::Status::OK;
  }

  static grpc::Status print_json(const protobuf::Message& message, std::string* out) {
    protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;  // etcd's gateway: OrigName, defaults omitted
    auto printed = protobuf::util::MessageToJsonString(message, out, options);
    if (!printed.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, std::string(printed.message()));
    return grpc::Status::OK;
  }

  static protobuf::Message* new_message(const protobuf::Descriptor& type) {
    return protobuf::MessageFactory::generated_factory()->GetPrototype(&type)->New();
  }

  static bool wait(grpc::CompletionQueue& cq) {
    void* tag = nullptr;
    bool ok = false;
    return cq.Next(&tag, &ok) && ok;
  }

  static void drain(grpc::CompletionQueue& cq) {
    void* tag = nullptr;
    bool ok = false;
    while (cq.Next(&tag, &ok)) {
    }
  }

  bool reply_error(const grpc::Status& status, bool keep_alive) {
    http::response<http::string_body> res(http_status(status.error_code()), 11);
    res.set(http::field::content_type, "application/json");
    res.body() = error_body(status);
    return send(std::move(res), keep_alive);
  }

  // A refusal of screen(): grpc-gateway's error body, with its own HTTP status.
  bool reply_refusal(http::status code, grpc::StatusCode grpc_code, const std::string& message) {
    http::response<http::string_body> res(code, 11);
    res.set(http::field::content_type, "application/json");
    res.body() = error_body(grpc::Status(grpc_code, message));
    return send(std::move(res), keep_alive_);
  }

  bool reply_text(http::status code, std::string text, bool keep_alive) {
    http::response<http::string_body> res(code, 11);
    if (!text.empty()) res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::move(text);
    return send(std::move(res), keep_alive);
  }

  // Writes `res`; true when the connection stays open for another request.
  bool send(http::response<http::string_body> res, bool keep_alive) {
    res.keep_alive(keep_alive);
    res.prepare_payload();
    sent_bytes_ = std::max(sent_bytes_, res.body().size());
    boost::system::error_code ec;
    http::write(socket_, res, ec);
    return !ec && keep_alive;
  }

  RetryingSocket socket_;
  grpc::GenericStub stub_;
  KvCalls& kv_;
  const HostGuard& guard_;
  // Unary calls, one at a time, share this queue for the connection's lifetime.
  grpc::CompletionQueue unary_cq_;
  boost::beast::flat_buffer buffer_;
  std::size_t sent_bytes_ = 0;  // the largest answer body since the last release
  bool keep_alive_ = true;
};

}  // namespace

void JsonGateway::serve(tcp::socket& socket) const { Connection(socket, channel_, kv_, guard_).serve(); }

grpc::Status decode_json_body(const std::string& body, const protobuf::MethodDescriptor& method,
                              std::vector<grpc::ByteBuffer>* requests) {
  if (method.client_streaming() || method.server_streaming()) {
    return Connection::split_requests(body, method, requests);
  }
  grpc::ByteBuffer request;
  if (auto s = Connection::to_buffer(body, *method.input_type(), &request); !s.ok()) return s;
  requests->push_back(std::move(request));
  return grpc::Status::OK;
}

}  // namespace zeppelin::etcd_api
