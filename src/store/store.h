// The coordination store: a key-value store with etcd v3 semantics.
//
// Every change gets a global, strictly increasing revision (one per write
// request; all changes of a transaction share one). Each key keeps its history
// since the last compaction, so reads and watches can ask for a past revision.
// Leases hold keys: when a lease expires or is revoked, its keys are deleted.
//
// Store is the seam; EmbeddedStore (store/embedded_store.h) is the engine
// inside the zeppelin binary. Thread-safety: every method may be called from
// any thread concurrently. A write returns only once it is durable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/result.h"

namespace zeppelin::store {

// etcd's wording for the store's conditions: an Error's message starts with
// one of these (details may follow after " ("), and its code (Errc::kCompacted,
// ...) says which it is. Callers test the code, never the text.
inline constexpr char kErrCompacted[] = "mvcc: required revision has been compacted";
inline constexpr char kErrFutureRevision[] = "mvcc: required revision is a future revision";
inline constexpr char kErrLeaseNotFound[] = "lease not found";
inline constexpr char kErrLeaseExists[] = "lease already exists";
inline constexpr char kErrLeaseTtlTooLarge[] = "too large lease TTL";
// etcd's NOSPACE alarm: the store passed its quota, writes that add data are refused.
inline constexpr char kErrNoSpace[] = "mvcc: database space exceeded";
inline constexpr char kErrDuplicateKey[] = "duplicate key given in txn request";
inline constexpr char kErrEmptyKey[] = "key is not provided";  // Errc::kInvalidArgument
inline constexpr char kErrKeyNotFound[] = "key not found";
// A read whose answer would pass its max_response_bytes (not an etcd error: etcd has no such cap).
inline constexpr char kErrResponseTooLarge[] = "response is too large";

struct KeyValue {
  std::string key;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;  // 1 on creation, +1 per put; a deleted key starts again at 1
  std::string value;
  int64_t lease = 0;  // 0: no lease
  bool operator==(const KeyValue&) const = default;
};

// The keys a request covers, as etcd spells them: range_end empty means the
// single key; "\0" as range_end with key "\0" means every key; otherwise the
// half-open interval [key, range_end), where range_end "\0" means "to the end".
struct KeyRange {
  std::string key;
  std::string range_end;
};

// The range_end that selects every key starting with `prefix`.
std::string prefix_end(const std::string& prefix);

struct RangeRequest {
  std::string key;
  std::string range_end;
  int64_t limit = 0;     // 0: no limit
  int64_t revision = 0;  // 0 or less: the current revision
  bool keys_only = false;
  bool count_only = false;
  // When positive, the read fails with Errc::kResponseTooLarge instead of
  // building an answer whose keys and values pass this many bytes.
  int64_t max_response_bytes = 0;
};

struct RangeResponse {
  int64_t revision = 0;  // the store's current revision when the read was served
  std::vector<KeyValue> kvs;
  bool more = false;  // limit cut the answer short
  int64_t count = 0;  // keys in the range, ignoring limit
};

struct PutRequest {
  std::string key;
  std::string value;
  int64_t lease = 0;
  bool prev_kv = false;
  bool ignore_value = false;  // keep the current value (the key must exist)
  bool ignore_lease = false;  // keep the current lease (the key must exist)
};

struct PutResponse {
  int64_t revision = 0;
  std::optional<KeyValue> prev_kv;
};

struct DeleteRangeRequest {
  std::string key;
  std::string range_end;
  bool prev_kv = false;
};

struct DeleteRangeResponse {
  int64_t revision = 0;
  int64_t deleted = 0;
  std::vector<KeyValue> prev_kvs;
};

struct Compare {
  enum class Target { kVersion, kCreateRevision, kModRevision, kValue, kLease };
  enum class Op { kEqual, kGreater, kLess, kNotEqual };
  std::string key;
  std::string range_end;  // compares every key in the range (all must hold)
  Target target = Target::kValue;
  Op op = Op::kEqual;
  int64_t number = 0;  // version, revisions or lease
  std::string value;   // for kValue
};

struct TxnRequest;
using RequestOp = std::variant<RangeRequest, PutRequest, DeleteRangeRequest, std::shared_ptr<TxnRequest>>;

struct TxnRequest {
  std::vector<Compare> compare;
  std::vector<RequestOp> success;
  std::vector<RequestOp> failure;
  // When positive (on the outermost transaction), the transaction fails with
  // Errc::kResponseTooLarge, before anything is applied, if the answers of its
  // reads (prev_kv included) could pass this many bytes in all.
  int64_t max_response_bytes = 0;
};

struct TxnResponse;
using ResponseOp = std::variant<RangeResponse, PutResponse, DeleteRangeResponse, std::shared_ptr<TxnResponse>>;

struct TxnResponse {
  int64_t revision = 0;
  bool succeeded = false;
  std::vector<ResponseOp> responses;
};

struct CompactResponse {
  int64_t revision = 0;
};

struct Event {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;  // for a delete: the key and the deletion's mod_revision
  std::optional<KeyValue> prev_kv;
};

struct WatchRequest {
  std::string key;
  std::string range_end;
  int64_t start_revision = 0;  // 0: from the next revision on
  bool prev_kv = false;
  bool no_put = false;
  bool no_delete = false;
};

// What a watcher receives. Exactly one of: a batch of events (all events up
// to `revision` that match have been delivered, in revision order); a
// progress notification (no events, `progress` set); or the end of the watch
// because its start revision was compacted (`compact_revision` set).
struct WatchUpdate {
  int64_t revision = 0;
  std::vector<Event> events;
  bool progress = false;
  int64_t compact_revision = 0;
};

// Called on the store's own threads, in revision order, never concurrently for
// one watch. It must not block and must not call back into the Watch.
using WatchCallback = std::function<void(WatchUpdate)>;

class Watch {
 public:
  virtual ~Watch() = default;  // cancels: no callback runs once the destructor returns
  // Delivers a progress notification: every matching event up to the current
  // revision has already been delivered.
  virtual void request_progress() = 0;
  // The store's revision when the watch was registered: events after it are delivered live.
  virtual int64_t revision() const = 0;
};

// etcd's MaxLeaseTTL: a grant asking for more seconds is refused (Errc::kLeaseTtlTooLarge).
inline constexpr int64_t kMaxLeaseTtl = 9'000'000'000;

struct LeaseGrant {
  int64_t id = 0;
  int64_t ttl = 0;  // seconds
};

struct LeaseStatus {
  int64_t id = 0;
  int64_t ttl = -1;         // seconds left; -1 when the lease has expired or does not exist
  int64_t granted_ttl = 0;  // seconds asked at grant
  std::vector<std::string> keys;
};

struct StoreStatus {
  int64_t revision = 0;
  int64_t compact_revision = 0;
  int64_t db_size = 0;  // bytes on disk
};

class Store {
 public:
  virtual ~Store() = default;

  virtual Result<RangeResponse> range(const RangeRequest& request) = 0;
  virtual Result<PutResponse> put(const PutRequest& request) = 0;
  virtual Result<DeleteRangeResponse> delete_range(const DeleteRangeRequest& request) = 0;
  virtual Result<TxnResponse> txn(const TxnRequest& request) = 0;
  // The same writes without blocking: `done` runs once the write is durable
  // (or has failed), on a store thread, and must not block. These defaults
  // call the blocking versions; an engine with a write queue does better.
  virtual void put_async(const PutRequest& request, std::function<void(Result<PutResponse>)> done) {
    auto callback = std::move(done);
    callback(put(request));
  }
  virtual void delete_range_async(const DeleteRangeRequest& request,
                                  std::function<void(Result<DeleteRangeResponse>)> done) {
    auto callback = std::move(done);
    callback(delete_range(request));
  }
  virtual void txn_async(const TxnRequest& request, std::function<void(Result<TxnResponse>)> done) {
    auto callback = std::move(done);
    callback(txn(request));
  }
  // Forgets history before `revision`: reads and watches below it fail with Errc::kCompacted.
  virtual Result<CompactResponse> compact(int64_t revision) = 0;

  // `start_revision` below the compaction point is not an error here: the
  // callback gets one update with compact_revision set and nothing else.
  virtual Result<std::unique_ptr<Watch>> watch(const WatchRequest& request, WatchCallback callback) = 0;

  // id 0 picks a fresh id. TTLs are whole seconds, at most kMaxLeaseTtl.
  virtual Result<LeaseGrant> lease_grant(int64_t id, int64_t ttl) = 0;
  virtual Status lease_revoke(int64_t id) = 0;
  // Restarts the lease's countdown; returns its TTL.
  virtual Result<int64_t> lease_keep_alive(int64_t id) = 0;
  virtual Result<LeaseStatus> lease_time_to_live(int64_t id, bool with_keys) = 0;
  virtual std::vector<int64_t> lease_list() = 0;

  virtual StoreStatus status() = 0;
  // etcd's NOSPACE alarm, raised when the store passes its size quota: Put,
  // Txn with a put and LeaseGrant fail with Errc::kNoSpace while it is raised.
  // An engine without a quota never raises it.
  virtual bool nospace_alarm() { return false; }
  // Lowers the alarm; it is raised again at the next commit if the store is still over its quota.
  virtual void disarm_nospace_alarm() {}
  // Writes a consistent copy of the whole store to `path` (a file restore() accepts).
  virtual Status snapshot(const std::string& path) = 0;
};

}  // namespace zeppelin::store
