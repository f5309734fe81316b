#include "etcd_api/json_gateway.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
// GCC 12 with ASan's instrumentation sees a boost::optional in Beast's parser
// as maybe uninitialized (a false positive in the header, not in our code).
// Clang has no such warning (and would warn about the pragma).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <boost/beast/http.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
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

template <class Socket>
class Connection;

// A unary call relayed to the gRPC server, held until its answer is handled
// on the connection's loop.
struct UnaryCall {
  grpc::ClientContext ctx;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
};

// A streaming call relayed to the gRPC server. The HTTP body's requests are
// written first; each response is handed to the connection's loop, and the
// next one is read only once the connection has written it out, so that a
// client that stops reading pushes back on the stream (gRPC flow control).
// The connection holds the call and the call its connection until the call
// is done.
template <class Socket>
class StreamCall final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamCall(std::shared_ptr<Connection<Socket>> connection, std::vector<grpc::ByteBuffer> requests,
             bool client_streaming)
      : connection_(std::move(connection)), requests_(std::move(requests)), client_streaming_(client_streaming) {}

  void begin() {
    StartWrite(&requests_.front());  // split_requests() gives one at least
    StartRead(&response);
    StartCall();
  }
  void read_next() { StartRead(&response); }

  void OnWriteDone(bool ok) override {
    if (!ok) return;  // the call is ending: OnDone says how
    if (++written_ < requests_.size()) return StartWrite(&requests_[written_]);
    // A bidirectional stream stays open for the client's lifetime (etcd's
    // watch stream outlives a half-close); the others expect one request.
    if (!client_streaming_) StartWritesDone();
  }
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

  grpc::ClientContext ctx;
  grpc::ByteBuffer response;  // the last one read; the connection's until read_next()

 private:
  const std::shared_ptr<Connection<Socket>> connection_;
  std::vector<grpc::ByteBuffer> requests_;
  size_t written_ = 0;
  const bool client_streaming_;
};

// One HTTP/1.1 connection, served asynchronously on the event loop its socket
// (a tcp::socket, or a TlsStream) belongs to: every handler below runs there,
// and what other threads answer (the store, gRPC) is posted back to it.
template <class Socket>
class Connection final : public PortConnection, public std::enable_shared_from_this<Connection<Socket>> {
 public:
  friend grpc::Status etcd_api::decode_json_body(const std::string&, const protobuf::MethodDescriptor&,
                                                 std::vector<grpc::ByteBuffer>*);
  Connection(Socket socket, std::shared_ptr<void> slot, grpc::GenericStub& stub, KvCalls& kv, const HostGuard& guard,
             std::chrono::milliseconds idle_timeout)
      : socket_(std::move(socket)),
        executor_(socket_.get_executor()),
        slot_(std::move(slot)),
        stub_(stub),
        kv_(kv),
        guard_(guard),
        idle_timeout_(idle_timeout),
        idle_timer_(socket_.get_executor()),
        retry_timer_(socket_.get_executor()),
        buffer_(kMaxBufferedBytes) {}

  void start() { read_request(); }
  const net::any_io_executor& executor() const { return executor_; }

  void close() override {
    closed_ = true;
    if (unary_) unary_->ctx.TryCancel();
    if (stream_) stream_->ctx.TryCancel();
    end();
  }

  // From the stream's call, on this loop.
  void stream_response();
  void stream_done(const grpc::Status& status);

 private:
  // ---- Reading requests. A connection waiting for a request (its first, or
  // the next on a kept-alive connection) is closed after idle_timeout_ without
  // a complete header, or without a byte of its body; one with a call in
  // flight never is.

  void read_request() {
    if (closed_) return;
    parser_.emplace();
    parser_->header_limit(kMaxGatewayHeaderBytes);
    parser_->body_limit(kMaxGatewayBodyBytes);
    arm_idle_timer();
    read_header();
  }

  void read_header() {
    http::async_read_header(socket_, buffer_, *parser_,
                            [self = this->shared_from_this()](const boost::system::error_code& ec, size_t) {
                              if (self->closed_) return;
                              if (ec) return self->read_failed(ec, &Connection::read_header);
                              self->header_read();
                            });
  }

  void header_read() {
    if (parser_->get()[http::field::expect] != "100-continue") return read_body();
    // curl asks before sending a large body, and waits a second for no answer.
    auto go_on = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
    http::async_write(socket_, *go_on,
                      [self = this->shared_from_this(), go_on](const boost::system::error_code& ec, size_t) {
                        if (ec || self->closed_) return self->end();
                        self->read_body();
                      });
  }

  void read_body() {
    if (parser_->is_done()) {
      awaiting_request_ = false;
      return request_read();
    }
    arm_idle_timer();  // each part of the body in time, however long the whole takes
    http::async_read_some(socket_, buffer_, *parser_,
                          [self = this->shared_from_this()](const boost::system::error_code& ec, size_t) {
                            if (self->closed_) return;
                            if (ec) return self->read_failed(ec, &Connection::read_body);
                            self->read_body();
                          });
  }

  void read_failed(const boost::system::error_code& ec, void (Connection::*resume)()) {
    if (ec == net::error::no_memory || ec == net::error::no_buffer_space) {
      // The kernel is short of memory, which is not the connection's end.
      retry_timer_.expires_after(std::chrono::milliseconds(10));
      retry_timer_.async_wait([self = this->shared_from_this(), resume](const boost::system::error_code& wait) {
        if (!wait && !self->closed_) ((*self).*resume)();
      });
      return;
    }
    awaiting_request_ = false;
    if (ec == http::error::body_limit) {
      return reply_error(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "request body larger than max (" +
                                                                                std::to_string(kMaxGatewayBodyBytes) +
                                                                                " bytes)"),
                         false);
    }
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted) return end();
    reply_text(http::status::bad_request, "Bad Request\n", false);
  }

  // The idle clock restarts at each call; the timer itself is set only when
  // none is pending, and looks at the clock when it fires, so that a busy
  // connection's requests cost no timer updates (each one a system call and
  // a cancelled handler).
  void arm_idle_timer() {
    awaiting_request_ = true;
    awaiting_since_ = std::chrono::steady_clock::now();
    if (!idle_timer_pending_) wait_idle(idle_timeout_);
  }

  void wait_idle(std::chrono::steady_clock::duration after) {
    idle_timer_pending_ = true;
    idle_timer_.expires_after(after);
    idle_timer_.async_wait([self = this->shared_from_this()](const boost::system::error_code& ec) {
      self->idle_timer_pending_ = false;
      if (ec || self->closed_ || !self->awaiting_request_) return;  // a call in flight: armed again after it
      const auto waited = std::chrono::steady_clock::now() - self->awaiting_since_;
      if (waited >= self->idle_timeout_) return self->close();
      self->wait_idle(self->idle_timeout_ - waited);
    });
  }

  void request_read() {
    Request req = parser_->release();
    parser_.reset();
    request_bytes_ = req.body().size();
    handle(req);
  }

  // Answers one request, now or once its call is answered.
  void handle(const Request& req) {
    keep_alive_ = req.keep_alive();
    std::string_view path(req.target().data(), req.target().size());
    path = path.substr(0, path.find('?'));
    if (screen(req)) return;
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
    if (method->client_streaming() || method->server_streaming()) return stream(req, *method, method_path, token);
    unary(req, *method, method_path, token);
  }

  // Browsers are not clients of this port (common/http_guard.h): a CORS
  // preflight (OPTIONS) gets no grant, and what a page can send without one is
  // refused here, before any call or auth check. True when it answered the
  // refusal, false when the request may go on.
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
  bool screen(const Request& req) {
    const std::string_view host = view(req[http::field::host]);
    if (auto s = guard_.check_host(host); !s) {
      reply_refusal(http::status::forbidden, grpc::StatusCode::PERMISSION_DENIED, s.error().message);
      return true;
    }
    const auto origin = req.find(http::field::origin);
    if (origin != req.end()) {
      if (auto s = HostGuard::check_origin(view(origin->value()), host); !s) {
        reply_refusal(http::status::forbidden, grpc::StatusCode::PERMISSION_DENIED, s.error().message);
        return true;
      }
    }
    const std::string type = media_type(view(req[http::field::content_type]));
    if (type.empty() || type == "application/json") return false;
    if (type == "application/x-www-form-urlencoded" && origin == req.end()) return false;
    reply_refusal(http::status::unsupported_media_type, grpc::StatusCode::INVALID_ARGUMENT,
                  "Content-Type " + type + " is not accepted: send the request as application/json");
    return true;
  }

  // ---- Calls.

  // KV's calls, in process: the body parsed straight into the request, the
  // answer printed straight from the response, as a gRPC client would get them.
  void kv_unary(const Request& req, const std::string& name, const std::string& token) {
    namespace pb = etcdserverpb;
    if (name == "Range") return kv_call<pb::RangeRequest, pb::RangeResponse>(req, token, &KvCalls::range);
    if (name == "Put") return kv_call<pb::PutRequest, pb::PutResponse>(req, token, &KvCalls::put);
    if (name == "DeleteRange") {
      return kv_call<pb::DeleteRangeRequest, pb::DeleteRangeResponse>(req, token, &KvCalls::delete_range);
    }
    if (name == "Txn") return kv_call<pb::TxnRequest, pb::TxnResponse>(req, token, &KvCalls::txn);
    kv_call<pb::CompactionRequest, pb::CompactionResponse>(req, token, &KvCalls::compact);
  }

  // Parses the request and makes the call; its answer (a write's comes from
  // the store's thread) is written from this loop.
  template <class Req, class Resp>
  void kv_call(const Request& req, const std::string& token,
               void (KvCalls::*call)(const std::string&, const Req&, Resp*, KvCalls::Done)) {
    auto exchange = std::make_shared<std::pair<Req, Resp>>();
    if (auto s = parse_json(req.body(), &exchange->first); !s.ok()) return reply_error(s, keep_alive_);
    (kv_.*call)(token, exchange->first, &exchange->second,
                [self = this->shared_from_this(), exchange](const grpc::Status& status) {
                  net::post(self->executor_, [self, exchange, status] {
                    if (!status.ok()) return self->reply_error(status, self->keep_alive_);
                    self->reply_json(exchange->second);
                  });
                });
  }

  void unary(const Request& req, const protobuf::MethodDescriptor& method, const std::string& path,
             const std::string& token) {
    auto call = std::make_shared<UnaryCall>();
    if (auto s = to_buffer(req.body(), *method.input_type(), &call->request); !s.ok()) {
      return reply_error(s, keep_alive_);
    }
    if (!token.empty()) call->ctx.AddMetadata("authorization", token);
    unary_ = call;
    stub_.UnaryCall(&call->ctx, path, grpc::StubOptions(), &call->request, &call->response,
                    [self = this->shared_from_this(), call, output = method.output_type()](const grpc::Status& status) {
                      net::post(self->executor_,
                                [self, call, output, status] { self->unary_done(*call, *output, status); });
                    });
    // Lock and Campaign wait for their turn: give up the turn if the client does.
    if (method.name() == "Lock" || method.name() == "Campaign") watch_for_hangup();
  }

  void unary_done(UnaryCall& call, const protobuf::Descriptor& output, const grpc::Status& status) {
    unary_.reset();
    if (hangup_read_pending_) {
      boost::system::error_code ignored;
      socket_.cancel(ignored);  // the next request is read once that read has ended
    }
    if (closed_) return;
    if (!status.ok()) return reply_error(status, keep_alive_);
    std::unique_ptr<protobuf::Message> message(new_message(output));
    if (auto s = from_buffer(call.response, message.get()); !s.ok()) return reply_error(s, false);
    reply_json(*message);
  }

  // Reads while a call waits for its turn, to learn that the client hung up;
  // what it sends meanwhile (a pipelined request) is kept for later, up to
  // what the buffer holds.
  void watch_for_hangup() {
    if (buffer_.size() >= buffer_.max_size()) return;
    hangup_read_pending_ = true;
    socket_.async_read_some(
        buffer_.prepare(buffer_.max_size() - buffer_.size()),
        [self = this->shared_from_this()](const boost::system::error_code& ec, size_t n) { self->hangup_read(ec, n); });
  }

  void hangup_read(const boost::system::error_code& ec, size_t n) {
    hangup_read_pending_ = false;
    if (!ec) buffer_.commit(n);
    if (ec && ec != net::error::operation_aborted && !closed_) {
      keep_alive_ = false;
      if (unary_) unary_->ctx.TryCancel();
    }
    if (!ec && unary_) return watch_for_hangup();
    if (resume_reading_) {
      resume_reading_ = false;
      read_request();
    }
  }

  // Streams: the body's JSON objects are the requests; each response is
  // written as {"result": ...} and a newline on a chunked answer, until the
  // call ends or the client goes away. The connection closes afterwards.
  void stream(const Request& req, const protobuf::MethodDescriptor& method, const std::string& path,
              const std::string& token) {
    std::vector<grpc::ByteBuffer> requests;
    if (auto s = split_requests(req.body(), method, &requests); !s.ok()) {
      // grpc-gateway reports a stream's undecodable body as UNKNOWN.
      return reply_error(grpc::Status(grpc::StatusCode::UNKNOWN, s.error_message()), false);
    }
    stream_output_ = method.output_type();
    buffer_.clear();  // no further request is read on this connection
    buffer_.shrink_to_fit();
    auto head = std::make_shared<http::response<http::empty_body>>(http::status::ok, 11);
    head->set(http::field::content_type, "application/json");
    head->chunked(true);
    head->keep_alive(false);
    auto serializer = std::make_shared<http::response_serializer<http::empty_body>>(*head);
    stream_ =
        std::make_shared<StreamCall<Socket>>(this->shared_from_this(), std::move(requests), method.client_streaming());
    if (!token.empty()) stream_->ctx.AddMetadata("authorization", token);
    http::async_write_header(
        socket_, *serializer,
        [self = this->shared_from_this(), head, serializer, path](const boost::system::error_code& ec, size_t) {
          if (ec || self->closed_) {
            self->stream_.reset();  // never started
            return self->end();
          }
          self->stub_.PrepareBidiStreamingCall(&self->stream_->ctx, path, grpc::StubOptions(), self->stream_.get());
          self->stream_->begin();
          self->watch_stream_hangup();
        });
  }

  // The client closing its side is the only way it ends a watch: read (and
  // drop) until it does.
  void watch_stream_hangup() {
    socket_.async_read_some(net::buffer(discard_),
                            [self = this->shared_from_this()](const boost::system::error_code& ec, size_t) {
                              if (self->closed_ || !self->stream_) return;
                              if (!ec) return self->watch_stream_hangup();
                              self->client_gone_ = true;
                              self->stream_->ctx.TryCancel();
                            });
  }

  void write_stream_chunk(std::string line) {
    stream_writing_ = true;
    stream_line_ = std::move(line);
    net::async_write(socket_, http::make_chunk(net::buffer(stream_line_)),
                     [self = this->shared_from_this()](const boost::system::error_code& ec, size_t) {
                       self->stream_writing_ = false;
                       if (ec) {
                         self->client_gone_ = true;
                         if (self->stream_) self->stream_->ctx.TryCancel();  // the client is gone: end the call
                       }
                       if (self->stream_status_) return self->finish_stream();
                       if (!ec && self->stream_) self->stream_->read_next();
                     });
  }

  // The stream has ended: its error, if any, then the last chunk.
  void finish_stream() {
    const grpc::Status status = *stream_status_;
    stream_.reset();
    if (client_gone_ || closed_) return end();
    std::string tail;
    if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) tail = stream_error_body(status);
    auto last = [self = this->shared_from_this()] {
      net::async_write(self->socket_, http::make_chunk_last(),
                       [self](const boost::system::error_code&, size_t) { self->end(); });
    };
    if (tail.empty()) return last();
    stream_line_ = std::move(tail);
    net::async_write(socket_, http::make_chunk(net::buffer(stream_line_)),
                     [self = this->shared_from_this(), last](const boost::system::error_code& ec, size_t) {
                       if (ec) return self->end();
                       last();
                     });
  }

  // ---- Answers.

  void reply_json(const protobuf::Message& message) {
    std::string json;
    if (auto s = print_json(message, &json); !s.ok()) return reply_error(s, false);
    http::response<http::string_body> res(http::status::ok, 11);
    res.set(http::field::content_type, "application/json");
    res.body() = std::move(json);
    send(std::move(res), keep_alive_);
  }

  void reply_error(const grpc::Status& status, bool keep_alive) {
    http::response<http::string_body> res(http_status(status.error_code()), 11);
    res.set(http::field::content_type, "application/json");
    res.body() = error_body(status);
    send(std::move(res), keep_alive);
  }

  // A refusal of screen(): grpc-gateway's error body, with its own HTTP status.
  void reply_refusal(http::status code, grpc::StatusCode grpc_code, const std::string& message) {
    http::response<http::string_body> res(code, 11);
    res.set(http::field::content_type, "application/json");
    res.body() = error_body(grpc::Status(grpc_code, message));
    send(std::move(res), keep_alive_);
  }

  void reply_text(http::status code, std::string text, bool keep_alive) {
    http::response<http::string_body> res(code, 11);
    if (!text.empty()) res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::move(text);
    send(std::move(res), keep_alive);
  }

  // Writes `res`, then reads the next request if the connection stays open.
  void send(http::response<http::string_body> res, bool keep_alive) {
    res.keep_alive(keep_alive);
    res.prepare_payload();
    sent_bytes_ = std::max(sent_bytes_, res.body().size());
    auto out = std::make_shared<http::response<http::string_body>>(std::move(res));
    auto written = [self = this->shared_from_this(), out, keep_alive](const boost::system::error_code& ec,
                                                                      size_t) mutable {
      out.reset();  // before replied() gives memory back
      self->replied(ec, keep_alive && self->keep_alive_);
    };
    http::async_write(socket_, *out, std::move(written));
  }

  void replied(const boost::system::error_code& ec, bool keep_alive) {
    // After a large request or answer, its buffers are gone by now: give the
    // memory back rather than keep it for the next.
    if (request_bytes_ >= kReleaseAfterBytes || sent_bytes_ >= kReleaseAfterBytes) {
      request_bytes_ = 0;
      sent_bytes_ = 0;
      buffer_.shrink_to_fit();
      release_free_memory();
    }
    if (ec || !keep_alive || closed_) return end();
    if (hangup_read_pending_) {
      resume_reading_ = true;  // once the hang-up watch's read has ended
      return;
    }
    read_request();
  }

  // Closes the connection (at once; a second call does nothing).
  void end() {
    closed_ = true;
    idle_timer_.cancel();
    retry_timer_.cancel();
    if (!socket_.is_open()) return;
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  // ---- Conversions.

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

  // Bytes read ahead of the parser: a header (kMaxGatewayHeaderBytes) and
  // pipelined requests; a body goes straight into its request.
  static constexpr std::size_t kMaxBufferedBytes = 64 * 1024;

  Socket socket_;
  const net::any_io_executor executor_;  // the loop's: what other threads answer is posted here
  const std::shared_ptr<void> slot_;  // the port's count of open connections
  grpc::GenericStub& stub_;
  KvCalls& kv_;
  const HostGuard& guard_;
  const std::chrono::milliseconds idle_timeout_;
  net::steady_timer idle_timer_;
  bool idle_timer_pending_ = false;
  bool awaiting_request_ = false;  // a request is awaited or being read: the idle clock runs
  std::chrono::steady_clock::time_point awaiting_since_;
  net::steady_timer retry_timer_;  // a read the kernel's shortage of memory failed
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::size_t request_bytes_ = 0;  // the last request's body
  std::size_t sent_bytes_ = 0;     // the largest answer body since the last release
  bool keep_alive_ = true;
  bool closed_ = false;

  std::shared_ptr<UnaryCall> unary_;  // in flight
  bool hangup_read_pending_ = false;
  bool resume_reading_ = false;  // the answer is out, the hang-up watch's read not yet ended

  std::shared_ptr<StreamCall<Socket>> stream_;  // in flight
  const protobuf::Descriptor* stream_output_ = nullptr;
  std::string stream_line_;  // being written
  bool stream_writing_ = false;
  std::optional<grpc::Status> stream_status_;  // the call is done: finish once the last line is out
  bool client_gone_ = false;
  char discard_[256];
};

template <class Socket>
void Connection<Socket>::stream_response() {
  if (closed_ || !stream_) return;
  std::unique_ptr<protobuf::Message> message(new_message(*stream_output_));
  std::string json;
  if (!from_buffer(stream_->response, message.get()).ok() || !print_json(*message, &json).ok()) {
    stream_->ctx.TryCancel();
    return;
  }
  write_stream_chunk("{\"result\":" + json + "}\n");
}

template <class Socket>
void Connection<Socket>::stream_done(const grpc::Status& status) {
  stream_status_ = status;
  if (!stream_writing_) finish_stream();
}

template <class Socket>
void StreamCall<Socket>::OnReadDone(bool ok) {
  if (!ok) return;  // no more: OnDone follows
  net::post(connection_->executor(), [c = connection_] { c->stream_response(); });
}

template <class Socket>
void StreamCall<Socket>::OnDone(const grpc::Status& status) {
  net::post(connection_->executor(), [c = connection_, status] { c->stream_done(status); });
}

}  // namespace

std::shared_ptr<PortConnection> JsonGateway::serve(tcp::socket socket, std::shared_ptr<void> slot) {
  auto connection =
      std::make_shared<Connection<tcp::socket>>(std::move(socket), std::move(slot), stub_, kv_, guard_, idle_timeout_);
  connection->start();
  return connection;
}

std::shared_ptr<PortConnection> JsonGateway::serve(TlsStream stream, std::shared_ptr<void> slot) {
  auto connection =
      std::make_shared<Connection<TlsStream>>(std::move(stream), std::move(slot), stub_, kv_, guard_, idle_timeout_);
  connection->start();
  return connection;
}

grpc::Status decode_json_body(const std::string& body, const protobuf::MethodDescriptor& method,
                              std::vector<grpc::ByteBuffer>* requests) {
  if (method.client_streaming() || method.server_streaming()) {
    return Connection<tcp::socket>::split_requests(body, method, requests);
  }
  grpc::ByteBuffer request;
  if (auto s = Connection<tcp::socket>::to_buffer(body, *method.input_type(), &request); !s.ok()) return s;
  requests->push_back(std::move(request));
  return grpc::Status::OK;
}

}  // namespace zeppelin::etcd_api
