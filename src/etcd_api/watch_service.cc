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

// How often a watch created with progress_notify hears the current revision (etcd's default).
constexpr auto kProgressInterval = std::chrono::minutes(10);
constexpr int64_t kStreamWide = -1;  // watch_id of a progress answer for the whole stream

// One Watch call: the watches created on it and the responses waiting to be
// written. Requests are handled on a reader thread; responses are written by
// the call's own thread; store callbacks only append to the queue.
class WatchStream {
 public:
  // `token` is the one the stream was opened with: each watch it creates is checked with it.
  WatchStream(store::Store& store, const Header& header, AuthStore& auth, std::string token)
      : store_(store), header_(header), auth_(auth), token_(std::move(token)) {}

  ~WatchStream() {
    // Store watches first: after this no callback touches the queue.
    std::lock_guard<std::mutex> lock(watches_mu_);
    watches_.clear();
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

  // Waits for the next response; false once the stream is closed.
  bool next(pb::WatchResponse* out) {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (!queue_.empty()) {
        *out = std::move(queue_.front());
        queue_.pop_front();
        return true;
      }
      if (closed_) return false;
      if (cv_.wait_until(lock, next_progress_) == std::cv_status::timeout) {
        lock.unlock();
        periodic_progress();
        lock.lock();
        next_progress_ = std::chrono::steady_clock::now() + kProgressInterval;
      }
    }
  }

  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  struct Entry {
    std::unique_ptr<store::Watch> watch;
    bool progress_notify = false;
  };

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
      push(std::move(refused));
      return;
    }
    Caller caller = Caller::unrestricted();
    grpc::Status allowed = auth_.caller(token_, &caller);
    if (allowed.ok()) allowed = caller.may(request.key(), request.range_end(), Access::kRead);
    if (!allowed.ok()) {
      // As etcd: created and canceled at once, the reason in gRPC's error form.
      pb::WatchResponse refused;
      refused.set_watch_id(id);
      refused.set_created(true);
      refused.set_canceled(true);
      refused.set_cancel_reason("rpc error: code = PermissionDenied desc = etcdserver: permission denied");
      header_.fill(refused.mutable_header());
      push(std::move(refused));
      return;
    }
    {
      std::lock_guard<std::mutex> q(mu_);
      creating_.insert(id);
    }
    auto watch = store_.watch(from_proto(request), [this, id](const store::WatchUpdate& u) { on_update(id, u); });
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
      watches_[id] = Entry{std::move(*watch), request.progress_notify()};
    }
    // The answer to the create goes first, then whatever the watch already produced.
    std::lock_guard<std::mutex> q(mu_);
    queue_.push_back(std::move(created));
    auto& held = held_[id];
    for (auto& r : held) queue_.push_back(std::move(r));
    held_.erase(id);
    creating_.erase(id);
    cv_.notify_all();
  }

  void cancel(int64_t id) {
    std::lock_guard<std::mutex> lock(watches_mu_);
    if (watches_.erase(id) == 0) return;
    pb::WatchResponse canceled;
    canceled.set_watch_id(id);
    canceled.set_canceled(true);
    header_.fill(canceled.mutable_header());
    push(std::move(canceled));
  }

  // A progress request covers the whole stream. Asking one of the store
  // watches makes the answer come after every event already committed.
  void progress_all() {
    std::lock_guard<std::mutex> lock(watches_mu_);
    if (watches_.empty()) {
      pb::WatchResponse r;
      r.set_watch_id(kStreamWide);
      header_.fill(r.mutable_header());
      push(std::move(r));
      return;
    }
    {
      std::lock_guard<std::mutex> q(mu_);
      ++stream_wide_progress_;
    }
    watches_.begin()->second.watch->request_progress();
  }

  void periodic_progress() {
    std::lock_guard<std::mutex> lock(watches_mu_);
    for (auto& [id, entry] : watches_) {
      if (entry.progress_notify) entry.watch->request_progress();
    }
  }

  // Runs on a store thread: only builds the response and queues it.
  void on_update(int64_t id, const store::WatchUpdate& u) {
    pb::WatchResponse r;
    r.set_watch_id(id);
    r.mutable_header()->set_revision(u.revision);
    header_.fill(r.mutable_header());
    if (u.compact_revision) {
      r.set_compact_revision(u.compact_revision);
      r.set_canceled(true);
      r.set_cancel_reason("etcdserver: mvcc: required revision has been compacted");
    }
    for (const auto& e : u.events) to_proto(e, r.add_events());
    std::lock_guard<std::mutex> q(mu_);
    if (u.progress && stream_wide_progress_ > 0) {
      --stream_wide_progress_;
      r.set_watch_id(kStreamWide);
    }
    if (creating_.count(id)) {
      held_[id].push_back(std::move(r));
      return;
    }
    queue_.push_back(std::move(r));
    cv_.notify_all();
  }

  void push(pb::WatchResponse r) {
    std::lock_guard<std::mutex> q(mu_);
    queue_.push_back(std::move(r));
    cv_.notify_all();
  }

  store::Store& store_;
  const Header& header_;
  AuthStore& auth_;
  const std::string token_;

  std::mutex watches_mu_;             // taken before mu_
  std::map<int64_t, Entry> watches_;  // guarded by watches_mu_
  int64_t next_id_ = 0;               // guarded by watches_mu_

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<pb::WatchResponse> queue_;                     // guarded by mu_
  std::set<int64_t> creating_;                              // guarded by mu_
  std::map<int64_t, std::vector<pb::WatchResponse>> held_;  // guarded by mu_
  int stream_wide_progress_ = 0;                            // guarded by mu_
  bool closed_ = false;                                     // guarded by mu_
  std::chrono::steady_clock::time_point next_progress_ = std::chrono::steady_clock::now() + kProgressInterval;
};

}  // namespace

grpc::Status WatchService::Watch(grpc::ServerContext* context,
                                 grpc::ServerReaderWriter<pb::WatchResponse, pb::WatchRequest>* stream) {
  WatchStream watches(store_, header_, auth_, AuthStore::token_of(*context));
  std::thread reader([&] {
    pb::WatchRequest request;
    while (stream->Read(&request)) watches.handle(request);
    watches.close();
  });
  pb::WatchResponse response;
  while (watches.next(&response)) {
    if (!stream->Write(response)) {
      context->TryCancel();  // the client is gone: unblock the reader
      break;
    }
  }
  reader.join();
  return grpc::Status::OK;
}

}  // namespace zeppelin::etcd_api
