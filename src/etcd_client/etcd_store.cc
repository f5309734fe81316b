#include "etcd_client/etcd_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "common/fs_util.h"

namespace zeppelin::etcd_client {

namespace pb = etcdserverpb;
using store::CompactResponse;
using store::DeleteRangeRequest;
using store::DeleteRangeResponse;
using store::KeyValue;
using store::PutRequest;
using store::PutResponse;
using store::RangeRequest;
using store::RangeResponse;
using store::TxnRequest;
using store::TxnResponse;

namespace {

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// Adds and strips the prefix; with an empty prefix both are the identity.
class Keys {
 public:
  explicit Keys(std::string prefix) : prefix_(std::move(prefix)) {}

  std::string key(const std::string& k) const { return prefix_ + k; }

  // etcd's (key, range_end) pair, moved under the prefix.
  void range(const std::string& k, const std::string& end, std::string* out_key, std::string* out_end) const {
    if (prefix_.empty()) {
      *out_key = k;
      *out_end = end;
      return;
    }
    if (end.empty()) {
      *out_key = prefix_ + k;
      out_end->clear();
    } else if (end == std::string(1, '\0')) {
      *out_key = (k == std::string(1, '\0')) ? prefix_ : prefix_ + k;
      *out_end = store::prefix_end(prefix_);
    } else {
      *out_key = prefix_ + k;
      *out_end = prefix_ + end;
    }
  }

  std::string strip(const std::string& k) const {
    return k.starts_with(prefix_) ? k.substr(prefix_.size()) : k;
  }
  bool owns(const std::string& k) const { return k.starts_with(prefix_); }

 private:
  std::string prefix_;
};

KeyValue from_pb(const mvccpb::KeyValue& kv, const Keys& keys) {
  KeyValue out;
  out.key = keys.strip(kv.key());
  out.create_revision = kv.create_revision();
  out.mod_revision = kv.mod_revision();
  out.version = kv.version();
  out.value = kv.value();
  out.lease = kv.lease();
  return out;
}

void to_pb(const RangeRequest& r, const Keys& keys, pb::RangeRequest* out) {
  keys.range(r.key, r.range_end, out->mutable_key(), out->mutable_range_end());
  out->set_limit(r.limit);
  out->set_revision(r.revision);
  out->set_keys_only(r.keys_only);
  out->set_count_only(r.count_only);
}

void to_pb(const PutRequest& r, const Keys& keys, pb::PutRequest* out) {
  out->set_key(keys.key(r.key));
  out->set_value(r.value);
  out->set_lease(r.lease);
  out->set_prev_kv(r.prev_kv);
  out->set_ignore_value(r.ignore_value);
  out->set_ignore_lease(r.ignore_lease);
}

void to_pb(const DeleteRangeRequest& r, const Keys& keys, pb::DeleteRangeRequest* out) {
  keys.range(r.key, r.range_end, out->mutable_key(), out->mutable_range_end());
  out->set_prev_kv(r.prev_kv);
}

void to_pb(const TxnRequest& r, const Keys& keys, pb::TxnRequest* out);

void to_pb(const store::RequestOp& op, const Keys& keys, pb::RequestOp* out) {
  if (auto* range = std::get_if<RangeRequest>(&op)) {
    to_pb(*range, keys, out->mutable_request_range());
  } else if (auto* put = std::get_if<PutRequest>(&op)) {
    to_pb(*put, keys, out->mutable_request_put());
  } else if (auto* del = std::get_if<DeleteRangeRequest>(&op)) {
    to_pb(*del, keys, out->mutable_request_delete_range());
  } else {
    to_pb(*std::get<std::shared_ptr<TxnRequest>>(op), keys, out->mutable_request_txn());
  }
}

void to_pb(const TxnRequest& r, const Keys& keys, pb::TxnRequest* out) {
  for (const auto& c : r.compare) {
    auto* pc = out->add_compare();
    keys.range(c.key, c.range_end, pc->mutable_key(), pc->mutable_range_end());
    using T = store::Compare::Target;
    switch (c.target) {
      case T::kVersion:
        pc->set_target(pb::Compare::VERSION);
        pc->set_version(c.number);
        break;
      case T::kCreateRevision:
        pc->set_target(pb::Compare::CREATE);
        pc->set_create_revision(c.number);
        break;
      case T::kModRevision:
        pc->set_target(pb::Compare::MOD);
        pc->set_mod_revision(c.number);
        break;
      case T::kValue:
        pc->set_target(pb::Compare::VALUE);
        pc->set_value(c.value);
        break;
      case T::kLease:
        pc->set_target(pb::Compare::LEASE);
        pc->set_lease(c.number);
        break;
    }
    using O = store::Compare::Op;
    switch (c.op) {
      case O::kEqual: pc->set_result(pb::Compare::EQUAL); break;
      case O::kGreater: pc->set_result(pb::Compare::GREATER); break;
      case O::kLess: pc->set_result(pb::Compare::LESS); break;
      case O::kNotEqual: pc->set_result(pb::Compare::NOT_EQUAL); break;
    }
  }
  for (const auto& op : r.success) to_pb(op, keys, out->add_success());
  for (const auto& op : r.failure) to_pb(op, keys, out->add_failure());
}

RangeResponse from_pb(const pb::RangeResponse& r, const Keys& keys) {
  RangeResponse out;
  out.revision = r.header().revision();
  for (const auto& kv : r.kvs()) out.kvs.push_back(from_pb(kv, keys));
  out.more = r.more();
  out.count = r.count();
  return out;
}

PutResponse from_pb(const pb::PutResponse& r, const Keys& keys) {
  PutResponse out;
  out.revision = r.header().revision();
  if (r.has_prev_kv()) out.prev_kv = from_pb(r.prev_kv(), keys);
  return out;
}

DeleteRangeResponse from_pb(const pb::DeleteRangeResponse& r, const Keys& keys) {
  DeleteRangeResponse out;
  out.revision = r.header().revision();
  out.deleted = r.deleted();
  for (const auto& kv : r.prev_kvs()) out.prev_kvs.push_back(from_pb(kv, keys));
  return out;
}

TxnResponse from_pb(const pb::TxnResponse& r, const Keys& keys) {
  TxnResponse out;
  out.revision = r.header().revision();
  out.succeeded = r.succeeded();
  for (const auto& op : r.responses()) {
    switch (op.response_case()) {
      case pb::ResponseOp::kResponseRange: {
        auto rr = from_pb(op.response_range(), keys);
        rr.revision = out.revision;
        out.responses.emplace_back(std::move(rr));
        break;
      }
      case pb::ResponseOp::kResponsePut: {
        auto pr = from_pb(op.response_put(), keys);
        pr.revision = out.revision;
        out.responses.emplace_back(std::move(pr));
        break;
      }
      case pb::ResponseOp::kResponseDeleteRange: {
        auto dr = from_pb(op.response_delete_range(), keys);
        dr.revision = out.revision;
        out.responses.emplace_back(std::move(dr));
        break;
      }
      case pb::ResponseOp::kResponseTxn: {
        auto tr = std::make_shared<TxnResponse>(from_pb(op.response_txn(), keys));
        tr->revision = out.revision;
        out.responses.emplace_back(std::move(tr));
        break;
      }
      default:
        break;
    }
  }
  return out;
}

store::Event from_pb(const mvccpb::Event& e, const Keys& keys) {
  store::Event out;
  out.type = e.type() == mvccpb::Event::DELETE ? store::Event::Type::kDelete : store::Event::Type::kPut;
  out.kv = from_pb(e.kv(), keys);
  if (e.has_prev_kv()) out.prev_kv = from_pb(e.prev_kv(), keys);
  return out;
}

// One watch: a thread that owns a watch stream and re-creates it on the
// next member when it breaks, from the revision after the last delivered.
class EtcdWatch : public store::Watch {
 public:
  EtcdWatch(std::shared_ptr<Connection> conn, Keys keys, store::WatchRequest request, store::WatchCallback callback,
            std::function<void(int64_t)> saw_compaction)
      : conn_(std::move(conn)),
        keys_(std::move(keys)),
        request_(std::move(request)),
        callback_(std::move(callback)),
        saw_compaction_(std::move(saw_compaction)) {}

  ~EtcdWatch() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      if (ctx_) ctx_->TryCancel();
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  // Creates the first stream and waits until etcd confirms the watch.
  Status start() {
    thread_ = std::thread([this] { run(); });
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return created_ || start_error_.has_value(); });
    if (start_error_) return *start_error_;
    return ok_status();
  }

  void request_progress() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stream_) return;
    pb::WatchRequest req;
    req.mutable_progress_request();
    stream_->Write(req);
  }

  int64_t revision() const override { return revision_; }

 private:
  using Stream = grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>;

  void run() {
    int64_t next = request_.start_revision;  // 0 until the first stream tells the current revision
    int failures = 0;
    bool first = true;
    while (true) {
      const std::size_t member = conn_->current();
      auto ctx = conn_->context(std::chrono::milliseconds(0));
      // etcd closes the stream if its member loses the leader, so that the watch moves elsewhere.
      ctx->AddMetadata("hasleader", "true");
      std::unique_ptr<Stream> stream;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
        ctx_ = ctx.get();
        stream = conn_->member(member).watch->Watch(ctx.get());
        stream_ = stream.get();
        pb::WatchRequest req;
        auto* create = req.mutable_create_request();
        keys_.range(request_.key, request_.range_end, create->mutable_key(), create->mutable_range_end());
        create->set_start_revision(next);
        create->set_prev_kv(request_.prev_kv);
        if (request_.no_put) create->add_filters(pb::WatchCreateRequest::NOPUT);
        if (request_.no_delete) create->add_filters(pb::WatchCreateRequest::NODELETE);
        stream->Write(req);
      }
      bool ended = false;  // compacted or canceled by etcd for good
      pb::WatchResponse resp;
      while (stream->Read(&resp)) {
        failures = 0;
        if (resp.created()) {
          if (next == 0) next = resp.header().revision() + 1;
          if (first) {
            first = false;
            revision_ = resp.header().revision();
            std::lock_guard<std::mutex> lock(mu_);
            created_ = true;
            cv_.notify_all();
          }
          if (!resp.canceled()) continue;
        }
        if (resp.canceled()) {
          if (resp.compact_revision() > 0) {
            saw_compaction_(resp.compact_revision());
            store::WatchUpdate u;
            u.revision = resp.header().revision();
            u.compact_revision = resp.compact_revision();
            callback_(std::move(u));
          } else if (first) {
            std::lock_guard<std::mutex> lock(mu_);
            start_error_ = make_error(Errc::kInvalidArgument, "etcd refused the watch: " + resp.cancel_reason());
            cv_.notify_all();
          }
          ended = true;
          break;
        }
        store::WatchUpdate u;
        u.revision = resp.header().revision();
        for (const auto& e : resp.events()) {
          if (e.kv().mod_revision() < next) continue;  // delivered before a reconnect
          u.events.push_back(from_pb(e, keys_));
        }
        if (!u.events.empty()) {
          next = u.events.back().kv.mod_revision + 1;
          u.revision = std::max(u.revision, u.events.back().kv.mod_revision);
        } else if (resp.events_size() == 0) {
          u.progress = true;
          next = std::max(next, resp.header().revision() + 1);
        } else {
          continue;  // only duplicates
        }
        callback_(std::move(u));
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        stream_ = nullptr;
        if (ended || stopping_) {
          ctx_->TryCancel();
          ctx_ = nullptr;
          if (first && !start_error_) {
            start_error_ = make_error(Errc::kUnavailable, "watch stopped before etcd confirmed it");
            cv_.notify_all();
          }
          stream->Finish();
          return;
        }
      }
      const grpc::Status status = stream->Finish();
      {
        std::lock_guard<std::mutex> lock(mu_);
        ctx_ = nullptr;
      }
      if (!conn_->should_fail_over(member, status)) {
        if (first) {
          std::lock_guard<std::mutex> lock(mu_);
          start_error_ = to_error(status, "watch");
          cv_.notify_all();
        }
        return;
      }
      ++failures;
      if (first && failures > static_cast<int>(3 * conn_->size())) {
        std::lock_guard<std::mutex> lock(mu_);
        start_error_ = to_error(status, "watch");
        cv_.notify_all();
        return;
      }
      // Around the members once without pausing, then back off a little.
      if (failures % conn_->size() == 0) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_; });
      }
    }
  }

  std::shared_ptr<Connection> conn_;
  Keys keys_;
  store::WatchRequest request_;
  store::WatchCallback callback_;
  std::function<void(int64_t)> saw_compaction_;
  std::atomic<int64_t> revision_{0};

  std::mutex mu_;  // guards what follows and writes to the stream
  std::condition_variable cv_;
  bool stopping_ = false;
  bool created_ = false;
  std::optional<Error> start_error_;
  grpc::ClientContext* ctx_ = nullptr;
  Stream* stream_ = nullptr;
  std::thread thread_;
};

class EtcdStoreImpl : public EtcdStore {
 public:
  EtcdStoreImpl(std::shared_ptr<Connection> conn, std::string prefix)
      : conn_(std::move(conn)), keys_(std::move(prefix)) {
    writer_ = std::thread([this] { write_loop(); });
  }

  ~EtcdStoreImpl() override {
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    writer_.join();
  }

  std::shared_ptr<Connection> connection() override { return conn_; }

  Result<RangeResponse> range(const RangeRequest& request) override {
    pb::RangeRequest req;
    to_pb(request, keys_, &req);
    pb::RangeResponse resp;
    auto status = conn_->call(Retry::kAlways, [&](Member& m, grpc::ClientContext& ctx) {
      return m.kv->Range(&ctx, req, &resp);
    });
    if (!status.ok()) return (to_error(status, "range"));
    return from_pb(resp, keys_);
  }

  Result<PutResponse> put(const PutRequest& request) override {
    if (request.key.empty()) return make_error(Errc::kInvalidArgument, store::kErrEmptyKey);
    pb::PutRequest req;
    to_pb(request, keys_, &req);
    pb::PutResponse resp;
    auto status = conn_->call(Retry::kUnsent, [&](Member& m, grpc::ClientContext& ctx) {
      return m.kv->Put(&ctx, req, &resp);
    });
    if (!status.ok()) return to_error(status, "put");
    return from_pb(resp, keys_);
  }

  Result<DeleteRangeResponse> delete_range(const DeleteRangeRequest& request) override {
    if (request.key.empty()) return make_error(Errc::kInvalidArgument, store::kErrEmptyKey);
    pb::DeleteRangeRequest req;
    to_pb(request, keys_, &req);
    pb::DeleteRangeResponse resp;
    auto status = conn_->call(Retry::kUnsent, [&](Member& m, grpc::ClientContext& ctx) {
      return m.kv->DeleteRange(&ctx, req, &resp);
    });
    if (!status.ok()) return to_error(status, "delete");
    return from_pb(resp, keys_);
  }

  Result<TxnResponse> txn(const TxnRequest& request) override {
    pb::TxnRequest req;
    to_pb(request, keys_, &req);
    pb::TxnResponse resp;
    auto status = conn_->call(Retry::kUnsent, [&](Member& m, grpc::ClientContext& ctx) {
      return m.kv->Txn(&ctx, req, &resp);
    });
    if (!status.ok()) return (to_error(status, "txn"));
    return from_pb(resp, keys_);
  }

  void put_async(const PutRequest& request, std::function<void(Result<PutResponse>)> done) override {
    enqueue([this, request, done = std::move(done)] { done(put(request)); });
  }
  void delete_range_async(const DeleteRangeRequest& request,
                          std::function<void(Result<DeleteRangeResponse>)> done) override {
    enqueue([this, request, done = std::move(done)] { done(delete_range(request)); });
  }
  void txn_async(const TxnRequest& request, std::function<void(Result<TxnResponse>)> done) override {
    enqueue([this, request, done = std::move(done)] { done(txn(request)); });
  }

  Result<CompactResponse> compact(int64_t revision) override {
    pb::CompactionRequest req;
    req.set_revision(revision);
    pb::CompactionResponse resp;
    auto status = conn_->call(Retry::kUnsent, [&](Member& m, grpc::ClientContext& ctx) {
      return m.kv->Compact(&ctx, req, &resp);
    });
    if (!status.ok()) return (to_error(status, "compact"));
    saw_compaction(revision);
    return CompactResponse{resp.header().revision()};
  }

  Result<std::unique_ptr<store::Watch>> watch(const store::WatchRequest& request,
                                              store::WatchCallback callback) override {
    // The watch may outlive this store: it records compactions through a shared counter.
    auto w = std::make_unique<EtcdWatch>(conn_, keys_, request, std::move(callback),
                                         [known = compact_revision_](int64_t rev) { raise(*known, rev); });
    if (auto s = w->start(); !s) return s.error();
    return std::unique_ptr<store::Watch>(std::move(w));
  }

  Result<store::LeaseGrant> lease_grant(int64_t id, int64_t ttl) override {
    pb::LeaseGrantRequest req;
    req.set_id(id);
    req.set_ttl(ttl);
    pb::LeaseGrantResponse resp;
    auto status = conn_->call(Retry::kUnsent, [&](Member& m, grpc::ClientContext& ctx) {
      return m.lease->LeaseGrant(&ctx, req, &resp);
    });
    if (!status.ok()) return to_error(status, "lease grant");
    if (!resp.error().empty()) return make_error(Errc::kInternal, "lease grant: " + resp.error());
    return store::LeaseGrant{resp.id(), resp.ttl()};
  }

  Status lease_revoke(int64_t id) override {
    pb::LeaseRevokeRequest req;
    req.set_id(id);
    pb::LeaseRevokeResponse resp;
    auto status = conn_->call(Retry::kAlways, [&](Member& m, grpc::ClientContext& ctx) {
      return m.lease->LeaseRevoke(&ctx, req, &resp);
    });
    if (!status.ok()) return to_error(status, "lease revoke");
    return ok_status();
  }

  Result<int64_t> lease_keep_alive(int64_t id) override {
    pb::LeaseKeepAliveResponse resp;
    auto status = conn_->call(Retry::kAlways, [&](Member& m, grpc::ClientContext& ctx) {
      auto stream = m.lease->LeaseKeepAlive(&ctx);
      pb::LeaseKeepAliveRequest req;
      req.set_id(id);
      if (stream->Write(req) && stream->Read(&resp)) {
        stream->WritesDone();
        ctx.TryCancel();
        stream->Finish();
        return grpc::Status::OK;
      }
      return stream->Finish();
    });
    if (!status.ok()) return to_error(status, "lease keep-alive");
    // etcd answers TTL 0 (no error) for a lease it does not know.
    if (resp.ttl() <= 0) {
      return make_error(Errc::kLeaseNotFound,
                        std::string(store::kErrLeaseNotFound) + " (lease " + std::to_string(id) + ")");
    }
    return resp.ttl();
  }

  Result<store::LeaseStatus> lease_time_to_live(int64_t id, bool with_keys) override {
    pb::LeaseTimeToLiveRequest req;
    req.set_id(id);
    req.set_keys(with_keys);
    pb::LeaseTimeToLiveResponse resp;
    auto status = conn_->call(Retry::kAlways, [&](Member& m, grpc::ClientContext& ctx) {
      return m.lease->LeaseTimeToLive(&ctx, req, &resp);
    });
    if (!status.ok()) return to_error(status, "lease time-to-live");
    // etcd answers TTL -1 (no error) for a lease it does not know; the Store reports it as an error.
    if (resp.ttl() == -1 && resp.grantedttl() == 0) {
      return make_error(Errc::kLeaseNotFound,
                        std::string(store::kErrLeaseNotFound) + " (lease " + std::to_string(id) + ")");
    }
    store::LeaseStatus out;
    out.id = resp.id();
    out.ttl = resp.ttl();
    out.granted_ttl = resp.grantedttl();
    for (const auto& k : resp.keys()) {
      if (keys_.owns(k)) out.keys.push_back(keys_.strip(k));
    }
    return out;
  }

  std::vector<int64_t> lease_list() override {
    pb::LeaseLeasesRequest req;
    pb::LeaseLeasesResponse resp;
    auto status = conn_->call(Retry::kAlways, [&](Member& m, grpc::ClientContext& ctx) {
      return m.lease->LeaseLeases(&ctx, req, &resp);
    });
    std::vector<int64_t> out;
    if (status.ok()) {
      for (const auto& l : resp.leases()) out.push_back(l.id());
    }
    return out;
  }

  store::StoreStatus status() override {
    pb::StatusRequest req;
    pb::StatusResponse resp;
    auto status = conn_->call(Retry::kAlways, [&](Member& m, grpc::ClientContext& ctx) {
      return m.maintenance->Status(&ctx, req, &resp);
    });
    store::StoreStatus out;
    if (status.ok()) {
      out.revision = resp.header().revision();
      out.db_size = resp.dbsize();
    }
    out.compact_revision = compact_revision_->load();
    return out;
  }

  Status snapshot(const std::string& path) override {
    const std::string tmp = path + ".part";
    grpc::Status status;
    for (std::size_t attempt = 0; attempt < conn_->size(); ++attempt) {
      // A copy holds every key: 0600 whatever the umask.
      ::unlink(tmp.c_str());
      const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0 || ::fchmod(fd, 0600) != 0) {
        const std::string why = std::strerror(errno);
        if (fd >= 0) {
          ::close(fd);
          ::unlink(tmp.c_str());
        }
        return make_error(Errc::kInternal, "snapshot: cannot write '" + tmp + "': " + why);
      }
      const std::size_t member = conn_->current();
      auto ctx = conn_->context(std::chrono::milliseconds(0));
      auto reader = conn_->member(member).maintenance->Snapshot(ctx.get(), pb::SnapshotRequest());
      pb::SnapshotResponse resp;
      bool written = true;
      while (reader->Read(&resp)) {
        if (written) written = write_all(fd, resp.blob());
      }
      status = reader->Finish();
      written = ::close(fd) == 0 && written;
      if (status.ok() && written) {
        if (std::rename(tmp.c_str(), path.c_str()) != 0) {
          return make_error(Errc::kInternal, "snapshot: cannot rename to '" + path + "'");
        }
        return ok_status();
      }
      std::remove(tmp.c_str());
      if (!status.ok() && !conn_->should_fail_over(member, status)) break;
    }
    if (status.ok()) return make_error(Errc::kInternal, "snapshot: cannot write '" + path + "'");
    return to_error(status, "snapshot");
  }

 private:
  // etcd 3.4 does not report its compaction point: only the compactions
  // this client makes or its watches run into are known.
  void saw_compaction(int64_t revision) { raise(*compact_revision_, revision); }

  static void raise(std::atomic<int64_t>& value, int64_t to) {
    int64_t cur = value.load();
    while (to > cur && !value.compare_exchange_weak(cur, to)) {
    }
  }

  void enqueue(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      queue_.push_back(std::move(job));
    }
    queue_cv_.notify_one();
  }

  void write_loop() {
    std::unique_lock<std::mutex> lock(queue_mu_);
    while (true) {
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping with nothing left to write
      auto job = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  std::shared_ptr<Connection> conn_;
  Keys keys_;
  std::shared_ptr<std::atomic<int64_t>> compact_revision_ = std::make_shared<std::atomic<int64_t>>(0);

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace

Result<std::unique_ptr<EtcdStore>> EtcdStore::open(const EtcdStoreOptions& options) {
  auto conn = Connection::open(options.connection);
  if (!conn) return conn.error();
  // One read proves that a member answers (and that the credentials work).
  pb::StatusRequest req;
  pb::StatusResponse resp;
  auto status = (*conn)->call(Retry::kAlways, [&](Member& m, grpc::ClientContext& ctx) {
    return m.maintenance->Status(&ctx, req, &resp);
  });
  if (!status.ok()) {
    std::string list;
    for (const auto& e : options.connection.endpoints) list += (list.empty() ? "" : ",") + e;
    return to_error(status, "etcd at " + list);
  }
  return std::unique_ptr<EtcdStore>(std::make_unique<EtcdStoreImpl>(std::move(*conn), options.prefix));
}

}  // namespace zeppelin::etcd_client
