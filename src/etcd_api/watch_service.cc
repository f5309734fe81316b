#include <grpcpp/support/byte_buffer.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "etcd_api/convert.h"
#include "etcd_api/services.h"

namespace zeppelin::etcd_api {

namespace pb = etcdserverpb;

namespace {
class WatchStream;
// How often a watch created with progress_notify hears the current revision (etcd's default).
constexpr auto kProgressInterval = std::chrono::minutes(10);
}  // namespace

// Drives progress_notify for every open stream from one thread: a stream's
// watches hear the current revision kProgressInterval after it opened and
// every interval after that.
class ProgressTicker {
 public:
  ProgressTicker() : thread_([this] { run(); }) {}
  ~ProgressTicker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

  void add(WatchStream* stream) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      due_[stream] = std::chrono::steady_clock::now() + kProgressInterval;
    }
    cv_.notify_one();
  }

  // Returns once no tick of `stream` runs or will run.
  void remove(WatchStream* stream) {
    std::lock_guard<std::mutex> lock(mu_);
    due_.erase(stream);
  }

 private:
  void run();

  std::mutex mu_;  // held while a stream ticks, so remove() waits for it
  std::condition_variable cv_;
  std::map<WatchStream*, std::chrono::steady_clock::time_point> due_;  // guarded by mu_
  bool stop_ = false;                                                   // guarded by mu_
  std::thread thread_;                                                  // last: it uses the members above
};

namespace {

constexpr int64_t kStreamWide = -1;  // watch_id of a progress answer for the whole stream
// Responses a stream holds for a client that reads slower than events come.
// Beyond this, its watches pause and later resume from where they stopped
// (the store keeps the history), as etcd's slow watchers catch up from its
// backend: memory stays bounded and the client misses nothing.
constexpr std::size_t kMaxQueuedBytes = 8 * 1024 * 1024;

// A message as it goes on the wire.
grpc::Slice encode(const google::protobuf::Message& m) { return grpc::Slice(m.SerializeAsString()); }

// A response waiting to be written: its encoding in one or two parts (a
// watcher's own fields, then a part shared with other watchers). Cheap to
// move, unlike grpc::ByteBuffer, which copies; the buffer is made at write time.
struct Outgoing {
  grpc::Slice own;
  grpc::Slice shared;
  std::size_t size() const { return own.size() + shared.size(); }
};

bool same_events(const std::vector<store::Event>& a, const std::vector<store::Event>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const store::Event& x, const store::Event& y) {
    return x.type == y.type && x.kv == y.kv && x.prev_kv == y.prev_kv;
  });
}

// One Watch call on gRPC's callback API: the watches created on it and the
// responses waiting to be written. Requests are handled as gRPC reads them;
// store callbacks append responses to the queue, and whoever finds no write
// in flight starts one. Each finished write starts the next from the queue,
// on gRPC's own threads, so a burst of responses (one per watcher after a
// put) goes out without a thread hand-off per response.
//
// Lifetime: gRPC owns the object from Watch() on; it deletes itself in
// OnDone(), after its store watches and its progress ticks have stopped.
//
// The stream reads and writes encoded messages (gRPC's raw API) so that the
// watchers of one stream share one encoding of an update: a put seen by N
// watchers is encoded once, and each of the N responses is a few bytes of
// watch_id followed by that shared slice. Protobuf's encoding allows it: a
// message's fields may come in any order, and concatenated encodings parse
// as one message with the fields of both.
class WatchStream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // `token` is the one the stream was opened with: each watch it creates is checked with it.
  WatchStream(store::Store& store, const Header& header, AuthStore& auth, ProgressTicker& ticker, std::string token)
      : store_(store), header_(header), auth_(auth), ticker_(ticker), token_(std::move(token)) {
    ticker_.add(this);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (ok) {
      pb::WatchRequest request;
      if (parse(request_, &request)) {
        handle(request);
        StartRead(&request_);
        return;
      }
      std::unique_lock<std::mutex> lock(mu_);
      if (finished_) return;
      finished_ = true;
      lock.unlock();
      Finish(grpc::Status(grpc::StatusCode::INTERNAL, "Watch: a request is not a well-formed WatchRequest"));
      return;
    }
    // The client closed its side or the call ended: finish once the queue is written.
    std::unique_lock<std::mutex> lock(mu_);
    reads_done_ = true;
    if (!writing_ && queue_.empty() && !finished_) {
      finished_ = true;
      lock.unlock();
      Finish(grpc::Status::OK);  // may run OnDone() at once: touch nothing after it
    }
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    writing_ = false;
    headers_sent_ = true;
    queued_bytes_ -= std::min(queued_bytes_, writing_bytes_);
    if (!ok) queue_.clear();  // the client is gone
    const bool resume = ok && !paused_.empty() && queued_bytes_ < kMaxQueuedBytes / 2;
    if (resume) {
      lock.unlock();
      resume_paused();  // queues responses and may start the next write
      lock.lock();
    }
    if (!ok || (reads_done_ && queue_.empty())) {
      if (writing_ || finished_) return;
      finished_ = true;
      lock.unlock();
      Finish(grpc::Status::OK);
      return;
    }
    write_next(std::move(lock));
  }

  void OnDone() override {
    ticker_.remove(this);
    {
      // Store watches first: after this no callback touches the queue.
      std::lock_guard<std::mutex> lock(watches_mu_);
      watches_.clear();
    }
    delete this;
  }

  // Sends a progress notification on each watch created with progress_notify.
  void periodic_progress() {
    std::lock_guard<std::mutex> lock(watches_mu_);
    for (auto& [id, entry] : watches_) {
      if (entry.progress_notify) entry.watch->request_progress();
    }
  }

 private:
  static bool parse(const grpc::ByteBuffer& buffer, pb::WatchRequest* out) {
    std::vector<grpc::Slice> slices;
    if (!buffer.Dump(&slices).ok()) return false;
    std::string bytes;
    bytes.reserve(buffer.Length());
    for (const auto& slice : slices) bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    return out->ParseFromString(bytes);
  }

  void handle(const pb::WatchRequest& request) {
    switch (request.request_union_case()) {
      case pb::WatchRequest::kCreateRequest:
        create(request.create_request());
        break;
      case pb::WatchRequest::kCancelRequest:
        cancel(request.cancel_request().watch_id());
        break;
      case pb::WatchRequest::kProgressRequest:
        progress_all();
        break;
      case pb::WatchRequest::REQUEST_UNION_NOT_SET:
        break;
    }
  }

  struct Entry {
    std::unique_ptr<store::Watch> watch;
    store::WatchRequest request;
    bool progress_notify = false;
  };

  // Re-creates the watches paused by a full queue from the revision after
  // the last one they delivered.
  void resume_paused() {
    std::lock_guard<std::mutex> lock(watches_mu_);
    for (auto& [id, entry] : watches_) {
      int64_t from = 0;
      {
        std::lock_guard<std::mutex> q(mu_);
        auto paused = paused_.find(id);
        if (paused == paused_.end()) continue;
        from = paused->second;
      }
      entry.watch.reset();  // no callback of the old watch runs after this
      {
        std::lock_guard<std::mutex> q(mu_);
        paused_.erase(id);
      }
      store::WatchRequest request = entry.request;
      request.start_revision = from;
      const int64_t watch_id = id;
      auto watch = store_.watch(request, [this, watch_id](store::WatchUpdate u) { on_update(watch_id, std::move(u)); });
      if (watch) {
        entry.watch = std::move(*watch);
        continue;
      }
      pb::WatchResponse canceled;
      canceled.set_watch_id(id);
      canceled.set_canceled(true);
      canceled.set_cancel_reason(to_status(watch.error()).error_message());
      header_.fill(canceled.mutable_header());
      push(canceled);
    }
    std::erase_if(watches_, [](const auto& item) { return item.second.watch == nullptr; });
  }

  void create(const pb::WatchCreateRequest& request) {
    std::lock_guard<std::mutex> lock(watches_mu_);
    int64_t id = request.watch_id();
    if (id == 0) {
      while (watches_.count(next_id_)) ++next_id_;
      id = next_id_++;
    } else if (watches_.count(id)) {
      pb::WatchResponse refused;
      refused.set_watch_id(id);
      refused.set_created(true);
      refused.set_canceled(true);
      refused.set_cancel_reason("etcdserver: mvcc: watcher id already exists");
      header_.fill(refused.mutable_header());
      push(refused);
      return;
    }
    Caller caller = Caller::unrestricted();
    Status allowed = auth_.caller(token_, &caller);
    if (allowed) allowed = caller.may(request.key(), request.range_end(), Access::kRead);
    if (!allowed) {
      // As etcd: created and canceled at once, the reason in gRPC's error form.
      pb::WatchResponse refused;
      refused.set_watch_id(id);
      refused.set_created(true);
      refused.set_canceled(true);
      refused.set_cancel_reason("rpc error: code = PermissionDenied desc = etcdserver: permission denied");
      header_.fill(refused.mutable_header());
      push(refused);
      return;
    }
    {
      std::lock_guard<std::mutex> q(mu_);
      creating_.insert(id);
    }
    const store::WatchRequest store_request = from_proto(request);
    auto watch = store_.watch(store_request, [this, id](store::WatchUpdate u) { on_update(id, std::move(u)); });
    pb::WatchResponse created;
    created.set_watch_id(id);
    created.set_created(true);
    if (!watch) {
      created.set_canceled(true);
      created.set_cancel_reason(to_status(watch.error()).error_message());
      header_.fill(created.mutable_header());
    } else {
      created.mutable_header()->set_revision((*watch)->revision());
      header_.fill(created.mutable_header());
      watches_[id] = Entry{std::move(*watch), store_request, request.progress_notify()};
    }
    // The answer to the create goes first, then whatever the watch already produced.
    std::unique_lock<std::mutex> q(mu_);
    enqueue(Outgoing{encode(created), {}});
    auto& held = held_[id];
    for (auto& r : held) enqueue(std::move(r));
    held_.erase(id);
    creating_.erase(id);
    write_next(std::move(q));
  }

  void cancel(int64_t id) {
    std::lock_guard<std::mutex> lock(watches_mu_);
    if (watches_.erase(id) == 0) return;
    {
      std::lock_guard<std::mutex> q(mu_);
      paused_.erase(id);
    }
    pb::WatchResponse canceled;
    canceled.set_watch_id(id);
    canceled.set_canceled(true);
    header_.fill(canceled.mutable_header());
    push(canceled);
  }

  // A progress request covers the whole stream. Asking one of the store
  // watches makes the answer come after every event already committed.
  void progress_all() {
    std::lock_guard<std::mutex> lock(watches_mu_);
    if (watches_.empty()) {
      pb::WatchResponse r;
      r.set_watch_id(kStreamWide);
      header_.fill(r.mutable_header());
      push(r);
      return;
    }
    {
      std::lock_guard<std::mutex> q(mu_);
      ++stream_wide_progress_;
    }
    watches_.begin()->second.watch->request_progress();
  }

  // Runs on a store thread: only encodes the response (under mu_: a
  // watcher's update is usually the one encoded last) and queues it.
  void on_update(int64_t id, store::WatchUpdate u) {
    std::unique_lock<std::mutex> q(mu_);
    if (paused_.count(id)) return;  // resume_paused() fetches it again later
    int64_t wire_id = id;
    if (u.progress && stream_wide_progress_ > 0) {
      --stream_wide_progress_;
      wire_id = kStreamWide;
    }
    pb::WatchResponse head;
    head.set_watch_id(wire_id);
    Outgoing r{encode(head), encode_shared(u)};
    if (creating_.count(id)) {
      held_[id].push_back(std::move(r));
      return;
    }
    enqueue(std::move(r));
    // Everything up to u.revision is queued; a paused watch resumes after it.
    if (queued_bytes_ > kMaxQueuedBytes && !u.compact_revision) paused_[id] = u.revision + 1;
    write_next(std::move(q));
  }

  // The encoding of a response to `u` without its watch_id, shared by every
  // watcher of the stream that receives the same update (the last one
  // encoded is kept). May move u.events away. REQUIRES: mu_ held.
  grpc::Slice encode_shared(store::WatchUpdate& u) {
    if (shared_body_.size() > 0 && u.revision == shared_.revision && u.progress == shared_.progress &&
        u.compact_revision == shared_.compact_revision && same_events(u.events, shared_.events)) {
      return shared_body_;
    }
    pb::WatchResponse r;
    r.mutable_header()->set_revision(u.revision);
    header_.fill(r.mutable_header());
    if (u.compact_revision) {
      r.set_compact_revision(u.compact_revision);
      r.set_canceled(true);
      r.set_cancel_reason("etcdserver: mvcc: required revision has been compacted");
    }
    for (const auto& e : u.events) to_proto(e, r.add_events());
    shared_body_ = encode(r);
    shared_.revision = u.revision;
    shared_.progress = u.progress;
    shared_.compact_revision = u.compact_revision;
    shared_.events = std::move(u.events);
    return shared_body_;
  }

  void push(const pb::WatchResponse& r) {
    std::unique_lock<std::mutex> q(mu_);
    enqueue(Outgoing{encode(r), {}});
    write_next(std::move(q));
  }

  // REQUIRES: mu_ held.
  void enqueue(Outgoing r) {
    queued_bytes_ += r.size();
    queue_.push_back(std::move(r));
  }

  // Starts writing the queue's first response unless a write is in flight
  // (its completion starts the next one). Every response written while more
  // wait behind it goes with the buffer hint, so gRPC coalesces a burst into
  // few socket writes; the last one flushes. Never the stream's first write:
  // it carries the response headers, and gRPC holds a hinted first write
  // until something else flushes the connection, which can be never (an
  // answer to a watch on a compacted revision stalled that way).
  // REQUIRES: `lock` holds mu_; releases it.
  void write_next(std::unique_lock<std::mutex> lock) {
    if (writing_ || finished_ || queue_.empty()) return;
    writing_ = true;
    Outgoing next = std::move(queue_.front());
    queue_.pop_front();
    writing_bytes_ = next.size();
    grpc::WriteOptions options;
    if (!queue_.empty() && headers_sent_) options.set_buffer_hint();
    lock.unlock();
    // Only the thread that set writing_ touches writing_response_ until the write is done.
    const grpc::Slice parts[] = {std::move(next.own), std::move(next.shared)};
    grpc::ByteBuffer buffer(parts, parts[1].size() > 0 ? 2 : 1);
    writing_response_.Swap(&buffer);
    StartWrite(&writing_response_, options);
  }

  store::Store& store_;
  const Header& header_;
  AuthStore& auth_;
  ProgressTicker& ticker_;
  const std::string token_;

  std::mutex watches_mu_;             // taken before mu_
  std::map<int64_t, Entry> watches_;  // guarded by watches_mu_
  int64_t next_id_ = 0;               // guarded by watches_mu_

  grpc::ByteBuffer request_;  // the read in flight


  std::mutex mu_;
  store::WatchUpdate shared_;                               // guarded by mu_: the update last encoded...
  grpc::Slice shared_body_;                                 // guarded by mu_: ...and its encoding
  std::deque<Outgoing> queue_;                              // guarded by mu_
  grpc::ByteBuffer writing_response_;                       // the write in flight; owned by the writer (writing_)
  std::size_t writing_bytes_ = 0;                           // guarded by mu_: its encoded size
  bool writing_ = false;                                    // guarded by mu_: a write is in flight
  bool headers_sent_ = false;                               // guarded by mu_: a write has completed
  bool reads_done_ = false;                                 // guarded by mu_
  bool finished_ = false;                                   // guarded by mu_: Finish() was called
  std::size_t queued_bytes_ = 0;                            // guarded by mu_: encoded size of queue_
  std::map<int64_t, int64_t> paused_;                       // guarded by mu_: watch id -> revision to resume from
  std::set<int64_t> creating_;                              // guarded by mu_
  std::map<int64_t, std::vector<Outgoing>> held_;          // guarded by mu_
  int stream_wide_progress_ = 0;                            // guarded by mu_
};

}  // namespace

void ProgressTicker::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const auto now = std::chrono::steady_clock::now();
    auto earliest = std::chrono::steady_clock::time_point::max();
    for (auto& [stream, due] : due_) {
      if (due <= now) {
        stream->periodic_progress();
        due = now + kProgressInterval;
      }
      earliest = std::min(earliest, due);
    }
    if (earliest == std::chrono::steady_clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, earliest);
    }
  }
}

WatchService::WatchService(store::Store& store, const Header& header, AuthStore& auth)
    : store_(store), header_(header), auth_(auth), ticker_(std::make_unique<ProgressTicker>()) {}

// gRPC's Shutdown() returns only after every stream's OnDone(), so no stream is left on the ticker.
WatchService::~WatchService() = default;

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* WatchService::Watch(
    grpc::CallbackServerContext* context) {
  return new WatchStream(store_, header_, auth_, *ticker_, AuthStore::token_of(*context));
}

}  // namespace zeppelin::etcd_api
