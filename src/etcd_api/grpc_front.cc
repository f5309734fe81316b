#include "etcd_api/grpc_front.h"

#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/memory.h"
#include "etcd_api/convert.h"
#include "etcd_api/kv_calls.h"
#include "etcd_api/tls_stream.h"
#include "rpc.pb.h"

namespace zeppelin::etcd_api {

namespace {

namespace net = boost::asio;
namespace pb = etcdserverpb;
using tcp = net::ip::tcp;
using unix_stream = net::local::stream_protocol;

constexpr size_t kGrpcPrefixBytes = 5;                // compressed flag and big-endian length
constexpr size_t kMaxBufferedPerConnection = 64 << 20;  // KV requests being received, in all
constexpr size_t kReadChunk = 32 * 1024;
constexpr size_t kWriteHighWater = 1 << 20;  // stop framing once this much waits for the socket
constexpr int32_t kStreamWindow = 1 << 20;
constexpr int32_t kConnectionWindow = 16 << 20;
constexpr uint32_t kMaxConcurrentStreams = 10000;

using Headers = std::vector<std::pair<std::string, std::string>>;

std::vector<nghttp2_nv> to_nv(const Headers& headers) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(headers.size());
  for (const auto& [name, value] : headers) {
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                  NGHTTP2_NV_FLAG_NONE});
  }
  return nv;
}

std::string_view header(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return {};
}

// grpc-message is percent-encoded: bytes outside printable ASCII, and '%'.
std::string percent_encode(const std::string& message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : message) {
    if (c < 0x20 || c > 0x7e || c == '%') {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

enum class KvMethod { kNone, kRange, kPut, kDeleteRange, kTxn, kCompact };

KvMethod kv_method(std::string_view path) {
  static const std::map<std::string_view, KvMethod> kMethods = {
      {"/etcdserverpb.KV/Range", KvMethod::kRange},
      {"/etcdserverpb.KV/Put", KvMethod::kPut},
      {"/etcdserverpb.KV/DeleteRange", KvMethod::kDeleteRange},
      {"/etcdserverpb.KV/Txn", KvMethod::kTxn},
      {"/etcdserverpb.KV/Compact", KvMethod::kCompact},
  };
  auto it = kMethods.find(path);
  return it == kMethods.end() ? KvMethod::kNone : it->second;
}

// What every connection shares: the KV calls, the way to the gRPC server,
// and the count of KV calls still waiting for the store.
class Shared {
 public:
  Shared(KvCalls& kv, GrpcFront::AttachToGrpc attach, std::chrono::milliseconds idle_timeout)
      : kv(kv), attach(std::move(attach)), idle_timeout(idle_timeout) {}

  void begin_call() {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
  }
  void end_call() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--calls_ == 0) idle_.notify_all();
  }
  void wait_for_calls() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return calls_ == 0; });
  }

  KvCalls& kv;
  const GrpcFront::AttachToGrpc attach;
  const std::chrono::milliseconds idle_timeout;
  std::atomic<bool> relaying{true};

 private:
  std::mutex mu_;
  std::condition_variable idle_;
  int calls_ = 0;  // guarded by mu_
};

// One event loop. Work from other threads (the store's writer answering a
// group commit) is gathered, so that a batch of answers costs one wake-up.
class Loop {
 public:
  void complete(std::function<void()> fn) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.push_back(std::move(fn));
      wake = !scheduled_;
      scheduled_ = true;
    }
    if (wake) net::post(io, [this] { drain(); });
  }

  net::io_context io{1};

 private:
  void drain() {
    std::vector<std::function<void()>> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(pending_);
      scheduled_ = false;
    }
    for (auto& fn : batch) fn();
  }

  std::mutex mu_;
  std::vector<std::function<void()>> pending_;  // guarded by mu_
  bool scheduled_ = false;                      // guarded by mu_
};

// Bytes waiting to be sent on, taken from the front.
class ByteQueue {
 public:
  bool empty() const { return taken_ == bytes_.size(); }
  size_t size() const { return bytes_.size() - taken_; }
  void append(const uint8_t* data, size_t n) { bytes_.append(reinterpret_cast<const char*>(data), n); }
  void assign(std::string bytes) {
    bytes_ = std::move(bytes);
    taken_ = 0;
  }
  // Copies up to `max` bytes into `out` and drops them.
  size_t take(uint8_t* out, size_t max) {
    const size_t n = std::min(max, size());
    std::memcpy(out, bytes_.data() + taken_, n);
    taken_ += n;
    if (taken_ == bytes_.size()) {
      clear();
    } else if (taken_ > kCompactAfter && taken_ > bytes_.size() / 2) {
      // A stream that never drains (a busy watch) must not keep what it sent.
      bytes_.erase(0, taken_);
      taken_ = 0;
    }
    return n;
  }
  void clear() {
    bytes_.clear();
    taken_ = 0;
  }

 private:
  static constexpr size_t kCompactAfter = 64 * 1024;
  std::string bytes_;
  size_t taken_ = 0;
};

// One call (HTTP/2 stream) of a client's connection.
struct Stream {
  explicit Stream(int32_t id) : id(id) {}
  const int32_t id;    // on the client's connection
  int32_t up_id = -1;  // on the relay to the gRPC server; -1: not relayed
  Headers request;
  KvMethod method = KvMethod::kNone;  // answered here unless kNone
  std::string body;                   // a KV request being received
  bool request_ended = false;
  bool closed = false;     // the client's stream is gone
  bool up_closed = false;  // the relayed stream is gone

  // Request bytes for the relay not yet sent; the first `preconsumed` of them
  // were acknowledged to the client already (a KV request that was relayed).
  ByteQueue to_up;
  size_t preconsumed = 0;
  // Response bytes for the client not yet sent, and what follows them.
  ByteQueue to_down;
  Headers response;
  Headers trailers;
  bool response_ended = false;
  bool large_answer = false;  // at least kReleaseAfterBytes: memory goes back to the system when it is gone
};

// A client's connection as the front knows it, whatever it runs on.
class Served {
 public:
  virtual ~Served() = default;
  virtual Loop& loop() = 0;
  virtual void start() = 0;
  virtual void close() = 0;
};

// A TCP socket on `io` for a connected descriptor.
tcp::socket adopt(net::io_context& io, int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  tcp::socket socket(io);
  boost::system::error_code ec;
  socket.assign(address.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
  return socket;
}

// The two HTTP/2 connections of a client: its own (a tcp::socket, or a
// TlsStream), and the relay's to the gRPC server (opened at the first call
// that needs it). Runs on one loop.
template <class ClientSocket>
class Connection final : public Served, public std::enable_shared_from_this<Connection<ClientSocket>> {
 public:
  Connection(Shared& shared, Loop& loop, ClientSocket socket, std::shared_ptr<void> slot)
      : shared_(shared), loop_(loop), down_(std::move(socket)), slot_(std::move(slot)), idle_timer_(loop.io) {}
  ~Connection() override {
    nghttp2_session_del(down_.session);
    if (up_) nghttp2_session_del(up_->session);
    for (auto& wire : lost_relays_) nghttp2_session_del(wire->session);
  }

  Loop& loop() override { return loop_; }
  void start() override;
  void close() override;

 private:
  template <class Socket>
  struct Wire {
    template <class... Args>
    explicit Wire(Args&&... args) : socket(std::forward<Args>(args)...) {}
    Socket socket;
    nghttp2_session* session = nullptr;
    std::vector<uint8_t> in = std::vector<uint8_t>(kReadChunk);
    std::string out;      // framed, waiting for the socket
    std::string sending;  // being written
    bool writing = false;
  };

  // --- the client's side
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int on_request_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                               const uint8_t* value, size_t valuelen, uint8_t, void* self);
  static int on_request_frame(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int on_request_data(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* self);
  static int on_client_stream_close(nghttp2_session*, int32_t id, uint32_t error, void* self);
  static ssize_t read_response(nghttp2_session*, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                               nghttp2_data_source* source, void* self);
  // --- the relay's side
  static int on_response_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                                const uint8_t* value, size_t valuelen, uint8_t, void* self);
  static int on_response_frame(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int on_response_data(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* self);
  static int on_relay_stream_close(nghttp2_session*, int32_t id, uint32_t error, void* self);
  static ssize_t read_request(nghttp2_session*, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                              nghttp2_data_source* source, void* self);

  static const nghttp2_session_callbacks* client_callbacks();
  static const nghttp2_session_callbacks* relay_callbacks();
  static const nghttp2_option* manual_window_option();

  Stream* client_stream(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }
  Stream* relayed_stream(int32_t id) {
    auto it = relayed_.find(id);
    return it == relayed_.end() ? nullptr : it->second.get();
  }

  void request_started(Stream& s);
  void request_ended(Stream& s);
  bool answer_here(Stream& s);
  template <class Request, class Response>
  bool call(Stream& s, std::string_view message,
            void (KvCalls::*method)(const std::string&, const Request&, Response*, KvCalls::Done));
  template <class Response>
  void answer(int32_t id, const grpc::Status& status, const Response& response);
  void relay(Stream& s);
  bool open_relay();
  void relay_lost();
  void refuse(Stream& s, uint32_t error) { nghttp2_submit_rst_stream(down_.session, NGHTTP2_FLAG_NONE, s.id, error); }
  void release_body(Stream& s) {
    buffered_ -= s.body.size();
    s.body.clear();
    s.body.shrink_to_fit();
  }

  using ClientWire = Wire<ClientSocket>;
  using RelayWire = Wire<unix_stream::socket>;
  // Whether a wire's pending I/O still matters, and what its failure ends.
  bool live(ClientWire&) const { return !closed_; }
  bool live(RelayWire& wire) const { return !closed_ && up_.get() == &wire; }
  void lost(ClientWire&) { close(); }
  void lost(RelayWire&) { relay_lost(); }

  template <class Socket>
  void read(Wire<Socket>& wire);
  template <class Socket>
  void write(Wire<Socket>& wire);
  bool frame(nghttp2_session* session, std::string& out);
  void pump();
  void pump_soon();
  // With no stream open for the idle timeout, the connection is ended with
  // GOAWAY; a stream in flight (a silent watch) keeps it. The timer runs from
  // the last stream's end but is re-armed only when it fires, so that a busy
  // connection's calls cost no timer updates.
  void became_idle() { idle_since_ = std::chrono::steady_clock::now(); }
  void watch_idle(std::chrono::steady_clock::duration after);

  Shared& shared_;
  Loop& loop_;
  ClientWire down_;
  std::shared_ptr<void> slot_;  // the port's count of open connections, held until this one is gone
  std::unique_ptr<RelayWire> up_;
  // Relays the gRPC server closed: kept until the connection goes, for the
  // handlers that may still refer to them. A lost relay is not reopened.
  std::vector<std::unique_ptr<RelayWire>> lost_relays_;
  std::map<int32_t, std::shared_ptr<Stream>> streams_;  // by the client's stream id
  std::map<int32_t, std::shared_ptr<Stream>> relayed_;  // by the relay's stream id
  size_t buffered_ = 0;                                 // bytes of KV requests being received
  bool in_callbacks_ = false;                           // a pump follows anyway
  bool pump_scheduled_ = false;
  bool closed_ = false;
  net::steady_timer idle_timer_;
  std::chrono::steady_clock::time_point idle_since_ = std::chrono::steady_clock::now();
};

template <class ClientSocket>
const nghttp2_option* Connection<ClientSocket>::manual_window_option() {
  static nghttp2_option* option = [] {
    nghttp2_option* o;
    nghttp2_option_new(&o);
    // Bytes are acknowledged once forwarded: flow control stays end to end.
    nghttp2_option_set_no_auto_window_update(o, 1);
    return o;
  }();
  return option;
}

template <class ClientSocket>
const nghttp2_session_callbacks* Connection<ClientSocket>::client_callbacks() {
  static nghttp2_session_callbacks* callbacks = [] {
    nghttp2_session_callbacks* c;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(c, on_request_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, on_request_frame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, on_request_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, on_client_stream_close);
    return c;
  }();
  return callbacks;
}

template <class ClientSocket>
const nghttp2_session_callbacks* Connection<ClientSocket>::relay_callbacks() {
  static nghttp2_session_callbacks* callbacks = [] {
    nghttp2_session_callbacks* c;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_header_callback(c, on_response_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, on_response_frame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, on_response_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, on_relay_stream_close);
    return c;
  }();
  return callbacks;
}

template <class ClientSocket>
void Connection<ClientSocket>::start() {
  nghttp2_session_server_new2(&down_.session, client_callbacks(), this, manual_window_option());
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow},
  };
  nghttp2_submit_settings(down_.session, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(down_.session, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  became_idle();
  watch_idle(shared_.idle_timeout);
  pump();
  read(down_);
}

template <class ClientSocket>
void Connection<ClientSocket>::watch_idle(std::chrono::steady_clock::duration after) {
  idle_timer_.expires_after(after);
  idle_timer_.async_wait([self = this->shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->closed_) return;
    const auto idle_for = std::chrono::steady_clock::now() - self->idle_since_;
    if (!self->streams_.empty() || idle_for < self->shared_.idle_timeout) {
      // Busy now, or idle again since: look again one timeout after the last stream's end.
      return self->watch_idle(self->streams_.empty() ? self->shared_.idle_timeout - idle_for
                                                     : std::chrono::steady_clock::duration(self->shared_.idle_timeout));
    }
    // GOAWAY (no error): the client knows to open a new connection for its
    // next call; the session then wants nothing more, and pump() closes.
    nghttp2_session_terminate_session(self->down_.session, NGHTTP2_NO_ERROR);
    self->pump();
  });
}

template <class ClientSocket>
void Connection<ClientSocket>::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ec;
  idle_timer_.cancel();
  down_.socket.close(ec);
  if (up_) up_->socket.close(ec);  // the gRPC server ends the relayed calls
}

// ---- I/O: read, hand to nghttp2, frame what it has to send, write.

template <class ClientSocket>
template <class Socket>
void Connection<ClientSocket>::read(Wire<Socket>& wire) {
  wire.socket.async_read_some(net::buffer(wire.in), [self = this->shared_from_this(), &wire](
                                                        const boost::system::error_code& ec, size_t n) {
    if (!self->live(wire)) return;
    if (ec == net::error::no_memory || ec == net::error::no_buffer_space) {
      // The kernel is short of memory, which is not the connection's end:
      // read again shortly. (Asio itself retries a read a signal interrupted.)
      auto timer = std::make_shared<net::steady_timer>(self->loop_.io, std::chrono::milliseconds(10));
      timer->async_wait([self, &wire, timer](const boost::system::error_code&) {
        if (self->live(wire)) self->read(wire);
      });
      return;
    }
    if (ec) return self->lost(wire);
    self->in_callbacks_ = true;
    const ssize_t rv = nghttp2_session_mem_recv(wire.session, wire.in.data(), n);
    self->in_callbacks_ = false;
    if (rv < 0) return self->lost(wire);  // a protocol error
    self->pump();
    if (self->live(wire)) self->read(wire);
  });
}

template <class ClientSocket>
bool Connection<ClientSocket>::frame(nghttp2_session* session, std::string& out) {
  bool framed = false;
  while (out.size() < kWriteHighWater) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session, &data);
    if (n <= 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    framed = true;
  }
  return framed;
}

template <class ClientSocket>
void Connection<ClientSocket>::pump() {
  if (closed_) return;
  // Sending on one side acknowledges bytes on the other (WINDOW_UPDATE):
  // go round until neither has anything new.
  for (int round = 0; round < 4; ++round) {
    bool framed = frame(down_.session, down_.out);
    if (up_) framed = frame(up_->session, up_->out) || framed;
    if (!framed) break;
  }
  write(down_);
  if (up_) write(*up_);
  if (!nghttp2_session_want_read(down_.session) && !nghttp2_session_want_write(down_.session) && !down_.writing) {
    close();
  }
}

template <class ClientSocket>
void Connection<ClientSocket>::pump_soon() {
  if (in_callbacks_ || pump_scheduled_) return;
  pump_scheduled_ = true;
  net::post(loop_.io, [self = this->shared_from_this()] {
    self->pump_scheduled_ = false;
    self->pump();
  });
}

template <class ClientSocket>
template <class Socket>
void Connection<ClientSocket>::write(Wire<Socket>& wire) {
  if (wire.writing || wire.out.empty()) return;
  wire.writing = true;
  wire.sending.swap(wire.out);
  net::async_write(wire.socket, net::buffer(wire.sending),
                   [self = this->shared_from_this(), &wire](const boost::system::error_code& ec, size_t) {
                     wire.writing = false;
                     wire.sending.clear();
                     if (!self->live(wire)) return;
                     if (ec) return self->lost(wire);
                     self->pump();
                   });
}

// ---- The client's side.

template <class ClientSocket>
int Connection<ClientSocket>::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    c->streams_[frame->hd.stream_id] = std::make_shared<Stream>(frame->hd.stream_id);
  }
  return 0;
}

template <class ClientSocket>
int Connection<ClientSocket>::on_request_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                                                size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                                                void* self) {
  auto* c = static_cast<Connection*>(self);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;  // trailers
  if (Stream* s = c->client_stream(frame->hd.stream_id)) {
    s->request.emplace_back(std::string(reinterpret_cast<const char*>(name), namelen),
                            std::string(reinterpret_cast<const char*>(value), valuelen));
  }
  return 0;
}

template <class ClientSocket>
int Connection<ClientSocket>::on_request_frame(nghttp2_session*, const nghttp2_frame* frame, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  Stream* s = c->client_stream(frame->hd.stream_id);
  if (!s) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) c->request_started(*s);
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) c->request_ended(*s);
  return 0;
}

template <class ClientSocket>
int Connection<ClientSocket>::on_request_data(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                                              size_t len, void* self) {
  auto* c = static_cast<Connection*>(self);
  Stream* s = c->client_stream(id);
  if (!s || (s->up_id < 0 && s->method == KvMethod::kNone) || s->up_closed) {
    nghttp2_session_consume(session, id, len);  // nobody will read it
    return 0;
  }
  if (s->method != KvMethod::kNone) {
    s->body.append(reinterpret_cast<const char*>(data), len);
    c->buffered_ += len;
    nghttp2_session_consume(session, id, len);
    // Too large for a KV request, or too much held for this connection: let
    // the gRPC server take it (and refuse it as it does).
    if (s->body.size() > kMaxGrpcMessageBytes + kGrpcPrefixBytes || c->buffered_ > kMaxBufferedPerConnection) {
      c->relay(*s);
    }
    return 0;
  }
  s->to_up.append(data, len);
  nghttp2_session_resume_data(c->up_->session, s->up_id);
  return 0;
}

template <class ClientSocket>
int Connection<ClientSocket>::on_client_stream_close(nghttp2_session*, int32_t id, uint32_t, void* self) {
  auto* c = static_cast<Connection*>(self);
  auto it = c->streams_.find(id);
  if (it == c->streams_.end()) return 0;
  std::shared_ptr<Stream> s = std::move(it->second);
  c->streams_.erase(it);
  if (c->streams_.empty()) c->became_idle();
  s->closed = true;
  c->release_body(*s);
  if (s->up_id >= 0 && c->up_) {
    // Hand back what the relay sent that will never be forwarded, and end the call there.
    nghttp2_session_consume(c->up_->session, s->up_id, s->to_down.size());
    s->to_down.clear();
    if (!s->up_closed) nghttp2_submit_rst_stream(c->up_->session, NGHTTP2_FLAG_NONE, s->up_id, NGHTTP2_CANCEL);
  }
  if (s->large_answer) {
    s.reset();  // the last owner of the answer's bytes, once sent
    release_free_memory();
  }
  return 0;
}

template <class ClientSocket>
ssize_t Connection<ClientSocket>::read_response(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                                                uint32_t* flags, nghttp2_data_source* source, void* self) {
  auto* c = static_cast<Connection*>(self);
  auto* s = static_cast<Stream*>(source->ptr);
  if (s->to_down.empty()) {
    if (!s->response_ended) return NGHTTP2_ERR_DEFERRED;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!s->trailers.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      const auto nv = to_nv(s->trailers);
      nghttp2_submit_trailer(session, id, nv.data(), nv.size());
    }
    return 0;
  }
  const size_t n = s->to_down.take(buf, length);
  if (s->up_id >= 0 && c->up_) nghttp2_session_consume(c->up_->session, s->up_id, n);
  return static_cast<ssize_t>(n);
}

template <class ClientSocket>
void Connection<ClientSocket>::request_started(Stream& s) {
  const std::string_view type = header(s.request, "content-type");
  const std::string_view encoding = header(s.request, "grpc-encoding");
  const bool plain_grpc = (type == "application/grpc" || type == "application/grpc+proto") &&
                          (encoding.empty() || encoding == "identity");
  if (plain_grpc && header(s.request, ":method") == "POST") s.method = kv_method(header(s.request, ":path"));
  if (s.method == KvMethod::kNone) relay(s);
}

template <class ClientSocket>
void Connection<ClientSocket>::request_ended(Stream& s) {
  s.request_ended = true;
  if (s.method != KvMethod::kNone) {
    if (!answer_here(s)) relay(s);
    release_body(s);
  } else if (s.up_id >= 0 && !s.up_closed) {
    nghttp2_session_resume_data(up_->session, s.up_id);
  }
}

// Answers a KV call that carried exactly one uncompressed message the
// gRPC server would take; anything else is left to it.
template <class ClientSocket>
bool Connection<ClientSocket>::answer_here(Stream& s) {
  const std::string& b = s.body;
  if (b.size() < kGrpcPrefixBytes || b[0] != 0) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(b.data());
  const size_t length = (size_t{p[1]} << 24) | (size_t{p[2]} << 16) | (size_t{p[3]} << 8) | p[4];
  if (length != b.size() - kGrpcPrefixBytes || length > kMaxGrpcMessageBytes) return false;
  const std::string_view message(b.data() + kGrpcPrefixBytes, length);
  switch (s.method) {
    case KvMethod::kRange:
      return call(s, message, &KvCalls::range);
    case KvMethod::kPut:
      return call(s, message, &KvCalls::put);
    case KvMethod::kDeleteRange:
      return call(s, message, &KvCalls::delete_range);
    case KvMethod::kTxn:
      return call(s, message, &KvCalls::txn);
    case KvMethod::kCompact:
      return call(s, message, &KvCalls::compact);
    case KvMethod::kNone:
      break;
  }
  return false;
}

template <class ClientSocket>
template <class Request, class Response>
bool Connection<ClientSocket>::call(Stream& s, std::string_view message,
                                    void (KvCalls::*method)(const std::string&, const Request&, Response*,
                                                            KvCalls::Done)) {
  struct Call {
    Request request;
    Response response;
  };
  auto call = std::make_shared<Call>();
  if (!call->request.ParseFromArray(message.data(), static_cast<int>(message.size()))) return false;
  std::string token(header(s.request, "token"));
  if (token.empty()) token = header(s.request, "authorization");
  shared_.begin_call();
  const std::thread::id loop_thread = std::this_thread::get_id();
  (shared_.kv.*method)(token, call->request, &call->response,
                       [call, self = this->weak_from_this(), id = s.id, loop = &loop_, shared = &shared_,
                        loop_thread](const grpc::Status& status) {
                         auto finish = [call, self, id, status] {
                           if (auto c = self.lock()) c->answer(id, status, call->response);
                         };
                         // Reads answer at once, here; writes from the store's writer thread.
                         if (std::this_thread::get_id() == loop_thread) {
                           finish();
                         } else {
                           loop->complete(std::move(finish));
                         }
                         shared->end_call();
                       });
  return true;
}

template <class ClientSocket>
template <class Response>
void Connection<ClientSocket>::answer(int32_t id, const grpc::Status& status, const Response& response) {
  Stream* s = client_stream(id);
  if (!s || closed_) return;  // the client gave up on it
  Headers headers = {{":status", "200"}, {"content-type", "application/grpc"}};
  if (status.ok()) {
    const size_t n = response.ByteSizeLong();
    std::string message(kGrpcPrefixBytes + n, '\0');
    auto* p = reinterpret_cast<uint8_t*>(message.data());
    p[0] = 0;
    p[1] = static_cast<uint8_t>(n >> 24);
    p[2] = static_cast<uint8_t>(n >> 16);
    p[3] = static_cast<uint8_t>(n >> 8);
    p[4] = static_cast<uint8_t>(n);
    response.SerializeWithCachedSizesToArray(p + kGrpcPrefixBytes);
    s->large_answer = n >= kReleaseAfterBytes;
    s->to_down.assign(std::move(message));
    s->trailers = {{"grpc-status", "0"}};
    s->response_ended = true;
    nghttp2_data_provider provider;
    provider.source.ptr = s;
    provider.read_callback = read_response;
    const auto nv = to_nv(headers);
    nghttp2_submit_response(down_.session, id, nv.data(), nv.size(), &provider);
  } else {
    // Trailers-only, as gRPC servers answer an error.
    headers.emplace_back("grpc-status", std::to_string(static_cast<int>(status.error_code())));
    headers.emplace_back("grpc-message", percent_encode(status.error_message()));
    const auto nv = to_nv(headers);
    nghttp2_submit_response(down_.session, id, nv.data(), nv.size(), nullptr);
  }
  pump_soon();
}

// ---- The relay to the gRPC server.

template <class ClientSocket>
bool Connection<ClientSocket>::open_relay() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0) return false;
  shared_.attach(fds[0]);
  up_ = std::make_unique<RelayWire>(loop_.io);
  boost::system::error_code ec;
  up_->socket.assign(unix_stream(), fds[1], ec);
  if (ec) {
    ::close(fds[1]);
    up_.reset();
    return false;
  }
  nghttp2_session_client_new2(&up_->session, relay_callbacks(), this, manual_window_option());
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow},
  };
  nghttp2_submit_settings(up_->session, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(up_->session, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  read(*up_);
  return true;
}

template <class ClientSocket>
void Connection<ClientSocket>::relay(Stream& s) {
  if (s.up_id >= 0) return;
  const bool was_kv = s.method != KvMethod::kNone;
  s.method = KvMethod::kNone;
  if (!shared_.relaying.load() || (!up_ && (!lost_relays_.empty() || !open_relay()))) {
    release_body(s);
    return refuse(s, NGHTTP2_REFUSED_STREAM);
  }
  if (was_kv) {
    // Already acknowledged to the client as it came.
    buffered_ -= s.body.size();
    s.preconsumed = s.body.size();
    s.to_up.assign(std::move(s.body));
    s.body.clear();
  }
  nghttp2_data_provider provider;
  provider.source.ptr = &s;
  provider.read_callback = read_request;
  const auto nv = to_nv(s.request);
  const int32_t up_id = nghttp2_submit_request(up_->session, nullptr, nv.data(), nv.size(), &provider, nullptr);
  if (up_id < 0) return refuse(s, NGHTTP2_INTERNAL_ERROR);
  s.up_id = up_id;
  relayed_[up_id] = streams_.at(s.id);
  pump_soon();
}

// The gRPC server closed the relay (it is shutting down): end what went through it.
template <class ClientSocket>
void Connection<ClientSocket>::relay_lost() {
  if (!up_) return;
  for (auto& [up_id, s] : relayed_) {
    s->up_closed = true;
    if (!s->closed) refuse(*s, NGHTTP2_CANCEL);
  }
  relayed_.clear();
  boost::system::error_code ec;
  up_->socket.close(ec);
  lost_relays_.push_back(std::move(up_));
  pump();
}

template <class ClientSocket>
int Connection<ClientSocket>::on_response_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                                                 size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                                                 void* self) {
  auto* c = static_cast<Connection*>(self);
  Stream* s = c->relayed_stream(frame->hd.stream_id);
  if (!s || frame->hd.type != NGHTTP2_HEADERS) return 0;
  Headers& into = frame->headers.cat == NGHTTP2_HCAT_RESPONSE ? s->response : s->trailers;
  into.emplace_back(std::string(reinterpret_cast<const char*>(name), namelen),
                    std::string(reinterpret_cast<const char*>(value), valuelen));
  return 0;
}

template <class ClientSocket>
int Connection<ClientSocket>::on_response_frame(nghttp2_session*, const nghttp2_frame* frame, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  Stream* s = c->relayed_stream(frame->hd.stream_id);
  if (!s) return 0;
  const bool ends = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
    if (ends) s->response_ended = true;
    if (s->closed) return 0;
    const auto nv = to_nv(s->response);
    if (ends) {
      nghttp2_submit_response(c->down_.session, s->id, nv.data(), nv.size(), nullptr);  // trailers-only
    } else {
      nghttp2_data_provider provider;
      provider.source.ptr = s;
      provider.read_callback = read_response;
      nghttp2_submit_response(c->down_.session, s->id, nv.data(), nv.size(), &provider);
    }
    return 0;
  }
  if (ends) {
    s->response_ended = true;
    if (!s->closed) nghttp2_session_resume_data(c->down_.session, s->id);
  }
  return 0;
}

template <class ClientSocket>
int Connection<ClientSocket>::on_response_data(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                                               size_t len, void* self) {
  auto* c = static_cast<Connection*>(self);
  Stream* s = c->relayed_stream(id);
  if (!s || s->closed) {
    nghttp2_session_consume(session, id, len);
    return 0;
  }
  s->to_down.append(data, len);
  nghttp2_session_resume_data(c->down_.session, s->id);
  return 0;
}

template <class ClientSocket>
int Connection<ClientSocket>::on_relay_stream_close(nghttp2_session*, int32_t id, uint32_t error, void* self) {
  auto* c = static_cast<Connection*>(self);
  auto it = c->relayed_.find(id);
  if (it == c->relayed_.end()) return 0;
  std::shared_ptr<Stream> s = std::move(it->second);
  c->relayed_.erase(it);
  s->up_closed = true;
  if (s->closed) return 0;
  // Hand back request bytes the server will never read.
  const size_t owed = s->to_up.size() - std::min(s->to_up.size(), s->preconsumed);
  if (owed > 0) nghttp2_session_consume(c->down_.session, s->id, owed);
  s->to_up.clear();
  if (!s->response_ended) c->refuse(*s, error == NGHTTP2_NO_ERROR ? uint32_t{NGHTTP2_INTERNAL_ERROR} : error);
  return 0;
}

template <class ClientSocket>
ssize_t Connection<ClientSocket>::read_request(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                                               nghttp2_data_source* source, void* self) {
  auto* c = static_cast<Connection*>(self);
  auto* s = static_cast<Stream*>(source->ptr);
  if (s->to_up.empty()) {
    if (!s->request_ended) return NGHTTP2_ERR_DEFERRED;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
  }
  const size_t n = s->to_up.take(buf, length);
  const size_t already = std::min(n, s->preconsumed);
  s->preconsumed -= already;
  if (n > already && !s->closed) nghttp2_session_consume(c->down_.session, s->id, n - already);
  return static_cast<ssize_t>(n);
}

// ---- The front: event loops and the connections on them.

class GrpcFrontImpl final : public GrpcFront {
 public:
  GrpcFrontImpl(KvCalls& kv, AttachToGrpc attach, int threads, std::chrono::milliseconds idle_timeout)
      : shared_(kv, std::move(attach), idle_timeout) {
    for (int i = 0; i < std::max(1, threads); ++i) {
      loops_.push_back(std::make_unique<Loop>());
      guards_.emplace_back(loops_.back()->io.get_executor());
    }
    for (auto& loop : loops_) threads_.emplace_back([io = &loop->io] { io->run(); });
  }
  ~GrpcFrontImpl() override { stop(); }

  void serve(int fd, std::shared_ptr<void> slot) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) {
      ::close(fd);
      return;
    }
    Loop& loop = *loops_[next_loop_++ % loops_.size()];
    add(std::make_shared<Connection<tcp::socket>>(shared_, loop, adopt(loop.io, fd), std::move(slot)));
  }

  void serve_tls(int fd, SslPtr ssl, std::shared_ptr<void> slot) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) {
      ::close(fd);
      return;
    }
    Loop& loop = *loops_[next_loop_++ % loops_.size()];
    add(std::make_shared<Connection<TlsStream>>(shared_, loop, TlsStream(adopt(loop.io, fd), std::move(ssl)),
                                                std::move(slot)));
  }

  void stop_relaying() override { shared_.relaying.store(false); }

  void stop() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      shared_.relaying.store(false);
      for (auto& weak : connections_) {
        if (auto c = weak.lock()) net::post(c->loop().io, [c] { c->close(); });
      }
      connections_.clear();
    }
    // The loops end once their connections are closed. KV calls still
    // waiting for the store post their answers into a loop's queue, which
    // must outlive them: wait for those before the loops may go.
    guards_.clear();
    for (auto& t : threads_) t.join();
    threads_.clear();
    shared_.wait_for_calls();
  }

 private:
  // Starts serving `connection` on its loop. REQUIRES: mu_ held.
  void add(const std::shared_ptr<Served>& connection) {
    connections_.push_back(connection);
    if (connections_.size() > 2 * last_sweep_ + 64) sweep();
    net::post(connection->loop().io, [connection] { connection->start(); });
  }

  // Forgets connections that have ended.
  void sweep() {
    std::erase_if(connections_, [](const std::weak_ptr<Served>& c) { return c.expired(); });
    last_sweep_ = connections_.size();
  }

  Shared shared_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::vector<std::weak_ptr<Served>> connections_;      // guarded by mu_
  size_t last_sweep_ = 0;                               // guarded by mu_
  size_t next_loop_ = 0;                                // guarded by mu_
  bool stopped_ = false;                                // guarded by mu_
};

}  // namespace

std::unique_ptr<GrpcFront> GrpcFront::start(KvCalls& kv, AttachToGrpc attach, int threads,
                                            std::chrono::milliseconds idle_timeout) {
  return std::make_unique<GrpcFrontImpl>(kv, std::move(attach), threads, idle_timeout);
}

}  // namespace zeppelin::etcd_api
