#include "store/mvcc_index.h"

#include <algorithm>
#include <limits>
#include <type_traits>
#include <variant>

namespace zeppelin::store::embedded {

namespace {

// What one key-value costs in an answer: its bytes and a fixed share for the
// revisions, version and lease beside them.
int64_t answer_bytes(std::size_t key, std::size_t value) { return static_cast<int64_t>(key + value) + 48; }

Error response_too_large(int64_t max) {
  return make_error(Errc::kResponseTooLarge, std::string(kErrResponseTooLarge) + " (over " + std::to_string(max) +
                                                 " bytes); ask for fewer keys at a time, paging with limit");
}

KeyValue to_kv(const std::string& key, const Entry& e) {
  return KeyValue{key, e.create_revision, e.mod_revision, e.version, e.value, e.lease};
}

// The live version of a key at `revision`, or null.
const Entry* visible_at(const History& h, int64_t revision) {
  for (auto it = h.rbegin(); it != h.rend(); ++it) {
    if (it->mod_revision <= revision) return it->tombstone() ? nullptr : &*it;
  }
  return nullptr;
}

const Entry* latest(const History& h) { return h.empty() || h.back().tombstone() ? nullptr : &h.back(); }

bool compare_number(int64_t actual, Compare::Op op, int64_t expected) {
  switch (op) {
    case Compare::Op::kEqual:
      return actual == expected;
    case Compare::Op::kNotEqual:
      return actual != expected;
    case Compare::Op::kGreater:
      return actual > expected;
    case Compare::Op::kLess:
      return actual < expected;
  }
  return false;
}

bool compare_kv(const Compare& c, const KeyValue& kv) {
  switch (c.target) {
    case Compare::Target::kValue: {
      const int cmp = kv.value.compare(c.value);
      return compare_number(cmp < 0 ? -1 : cmp > 0 ? 1 : 0, c.op, 0);
    }
    case Compare::Target::kVersion:
      return compare_number(kv.version, c.op, c.number);
    case Compare::Target::kCreateRevision:
      return compare_number(kv.create_revision, c.op, c.number);
    case Compare::Target::kModRevision:
      return compare_number(kv.mod_revision, c.op, c.number);
    case Compare::Target::kLease:
      return compare_number(kv.lease, c.op, c.number);
  }
  return false;
}

}  // namespace

int64_t deadline_after(int64_t now, int64_t ttl) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (ttl <= 0) return now;
  if (ttl > kMax / 1'000'000'000) return kMax;
  const int64_t span = ttl * 1'000'000'000;
  return now > kMax - span ? kMax : now + span;
}

Error compacted_error(int64_t asked, int64_t compacted) {
  return make_error(Errc::kCompacted, std::string(kErrCompacted) + " (asked " + std::to_string(asked) +
                                          ", compacted at " + std::to_string(compacted) + ")");
}

Error future_error(int64_t asked, int64_t current) {
  return make_error(Errc::kFutureRevision, std::string(kErrFutureRevision) + " (asked " + std::to_string(asked) +
                                               ", current " + std::to_string(current) + ")");
}

Error lease_not_found(int64_t id) {
  return make_error(Errc::kLeaseNotFound, std::string(kErrLeaseNotFound) + " (lease " + std::to_string(id) + ")");
}

// ---- reads ------------------------------------------------------------------

template <typename F>
void MvccIndex::for_each_in_range(const std::string& key, const std::string& end, F&& f) const {
  if (end.empty()) {
    if (auto it = index_.find(key); it != index_.end()) f(it->first, it->second);
    return;
  }
  const bool unbounded = end.size() == 1 && end[0] == '\0';
  for (auto it = index_.lower_bound(key); it != index_.end() && (unbounded || it->first < end); ++it) {
    f(it->first, it->second);
  }
}

Result<RangeResponse> MvccIndex::range(const RangeRequest& r, int64_t visible, int64_t current) const {
  if (r.key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
  int64_t at = visible;
  if (r.revision > 0) {
    if (r.revision > current) return future_error(r.revision, current);
    at = r.revision;
  }
  if (at < compact_revision_) return compacted_error(at, compact_revision_);
  RangeResponse response;
  response.revision = current;
  int64_t bytes = 0;
  bool too_large = false;
  for_each_in_range(r.key, r.range_end, [&](const std::string& key, const History& h) {
    const Entry* e = visible_at(h, at);
    if (!e) return;
    ++response.count;
    if (r.count_only || too_large) return;
    if (r.limit > 0 && static_cast<int64_t>(response.kvs.size()) >= r.limit) {
      response.more = true;
      return;
    }
    bytes += answer_bytes(key.size(), r.keys_only ? 0 : e->value.size());
    if (r.max_response_bytes > 0 && bytes > r.max_response_bytes) {
      // Stop building: what was built goes as soon as the answer is refused.
      too_large = true;
      response.kvs = {};
      return;
    }
    response.kvs.push_back(to_kv(key, *e));
    if (r.keys_only) response.kvs.back().value.clear();
  });
  if (too_large) return response_too_large(r.max_response_bytes);
  return response;
}

// Events of keys in the watch's range with revisions in [start_revision, upto], in order.
std::vector<Event> MvccIndex::history_events(const WatchRequest& w, int64_t upto) const {
  std::vector<std::pair<std::pair<int64_t, int64_t>, Event>> found;
  for_each_in_range(w.key, w.range_end, [&](const std::string& key, const History& h) {
    for (std::size_t i = 0; i < h.size(); ++i) {
      const Entry& e = h[i];
      if (e.mod_revision < w.start_revision || e.mod_revision > upto) continue;
      const bool is_put = !e.tombstone();
      if (is_put ? w.no_put : w.no_delete) continue;
      Event event{is_put ? Event::Type::kPut : Event::Type::kDelete,
                  is_put ? to_kv(key, e) : KeyValue{key, 0, e.mod_revision, 0, "", 0}, std::nullopt};
      if (w.prev_kv && i > 0 && !h[i - 1].tombstone()) event.prev_kv = to_kv(key, h[i - 1]);
      found.emplace_back(std::make_pair(e.mod_revision, e.sub), std::move(event));
    }
  });
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Event> events;
  events.reserve(found.size());
  for (auto& f : found) events.push_back(std::move(f.second));
  return events;
}

const Lease* MvccIndex::find_lease(int64_t id) const {
  auto it = leases_.find(id);
  return it == leases_.end() ? nullptr : it->second.get();
}

Lease* MvccIndex::find_lease(int64_t id) {
  auto it = leases_.find(id);
  return it == leases_.end() ? nullptr : it->second.get();
}

std::vector<int64_t> MvccIndex::lease_ids() const {
  std::vector<int64_t> ids;
  for (const auto& [id, l] : leases_) ids.push_back(id);
  return ids;
}

int64_t MvccIndex::earliest_deadline() const {
  int64_t earliest = INT64_MAX;
  for (const auto& [id, l] : leases_) earliest = std::min(earliest, l->deadline.load());
  return earliest;
}

std::vector<int64_t> MvccIndex::expired_leases(int64_t now) const {
  std::vector<int64_t> expired;
  for (const auto& [id, l] : leases_) {
    if (l->deadline.load() <= now) expired.push_back(id);
  }
  return expired;
}

// ---- writes -----------------------------------------------------------------

Status MvccIndex::apply_put(const PutRequest& request, PutResponse& response, Batch& batch) {
  if (auto v = validate_put(request); !v) return v;
  WriteContext ctx{&batch, revision_ + 1};
  response = write_put(ctx, request);
  revision_ = ctx.revision;
  return ok_status();
}

Status MvccIndex::apply_delete(const DeleteRangeRequest& request, DeleteRangeResponse& response, Batch& batch) {
  WriteContext ctx{&batch, revision_ + 1};
  response = write_delete(ctx, request);
  if (ctx.changed()) revision_ = ctx.revision;
  response.revision = revision_;
  return ok_status();
}

Status MvccIndex::apply_txn(const TxnRequest& request, TxnResponse& response, Batch& batch) {
  WriteContext ctx{&batch, revision_ + 1};
  auto r = write_txn(ctx, request);
  if (!r) return r.error();
  response = std::move(*r);
  if (ctx.changed()) revision_ = ctx.revision;
  response.revision = revision_;
  return ok_status();
}

void MvccIndex::compact(Batch& batch, int64_t revision) {
  for (auto it = index_.begin(); it != index_.end();) {
    History& h = it->second;
    // Keep the version live at `revision` and everything after it.
    std::size_t keep_from = 0;
    for (std::size_t i = 0; i < h.size() && h[i].mod_revision <= revision; ++i) keep_from = i;
    if (!h.empty() && h[keep_from].mod_revision <= revision && h[keep_from].tombstone()) ++keep_from;
    for (std::size_t i = 0; i < keep_from; ++i) batch.removed.emplace_back(h[i].mod_revision, h[i].sub);
    h.erase(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(keep_from));
    it = h.empty() ? index_.erase(it) : std::next(it);
  }
  compact_revision_ = revision;
  batch.compacted = true;
  batch.compact_revision = revision;
}

Result<LeaseGrant> MvccIndex::grant_lease(int64_t id, int64_t ttl, int64_t now, std::mt19937_64& random, Batch& batch) {
  if (id != 0 && leases_.count(id)) {
    return make_error(Errc::kLeaseExists, std::string(kErrLeaseExists) + " (lease " + std::to_string(id) + ")");
  }
  int64_t chosen = id;
  while (chosen == 0 || leases_.count(chosen)) chosen = static_cast<int64_t>(random() >> 1);
  auto lease = std::make_unique<Lease>();
  lease->id = chosen;
  lease->ttl = ttl;
  lease->deadline.store(deadline_after(now, lease->ttl));
  batch.leases.emplace_back(chosen, lease->ttl);
  LeaseGrant grant{chosen, lease->ttl};
  leases_.emplace(chosen, std::move(lease));
  return grant;
}

void MvccIndex::revoke_lease(int64_t id, Batch& batch) {
  auto it = leases_.find(id);
  WriteContext ctx{&batch, revision_ + 1};
  const std::set<std::string> keys = it->second->keys;  // deleting detaches them
  for (const auto& key : keys) write_delete(ctx, DeleteRangeRequest{key, "", false});
  if (ctx.changed()) revision_ = ctx.revision;
  leases_.erase(it);
  batch.revoked.push_back(id);
}

Status MvccIndex::validate_put(const PutRequest& r) const {
  if (r.key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
  if (r.ignore_value || r.ignore_lease) {
    auto it = index_.find(r.key);
    if (it == index_.end() || !latest(it->second)) {
      return make_error(Errc::kKeyNotFound, std::string(kErrKeyNotFound) + " (" + r.key + ")");
    }
  }
  if (r.lease != 0 && !r.ignore_lease && !leases_.count(r.lease)) return lease_not_found(r.lease);
  return ok_status();
}

void MvccIndex::detach(const std::string& key, int64_t lease) {
  if (lease == 0) return;
  if (auto it = leases_.find(lease); it != leases_.end()) it->second->keys.erase(key);
}

PutResponse MvccIndex::write_put(WriteContext& ctx, const PutRequest& r) {
  History& h = index_[r.key];
  const Entry* current = latest(h);
  PutResponse response;
  response.revision = ctx.revision;
  Entry e;
  e.mod_revision = ctx.revision;
  e.sub = ctx.sub++;
  e.create_revision = current ? current->create_revision : ctx.revision;
  e.version = current ? current->version + 1 : 1;
  e.lease = r.ignore_lease && current ? current->lease : r.lease;
  e.value = r.ignore_value && current ? current->value : r.value;
  Event event{Event::Type::kPut, to_kv(r.key, e), std::nullopt};
  if (current) {
    event.prev_kv = to_kv(r.key, *current);
    if (r.prev_kv) response.prev_kv = event.prev_kv;
    if (current->lease != e.lease) detach(r.key, current->lease);
  }
  if (e.lease != 0) leases_.at(e.lease)->keys.insert(r.key);
  ctx.batch->rows.push_back({r.key, e});
  ctx.batch->events.push_back(std::move(event));
  h.push_back(std::move(e));
  return response;
}

DeleteRangeResponse MvccIndex::write_delete(WriteContext& ctx, const DeleteRangeRequest& r) {
  DeleteRangeResponse response;
  std::vector<std::string> keys;
  for_each_in_range(r.key, r.range_end, [&](const std::string& key, const History& h) {
    if (latest(h)) keys.push_back(key);
  });
  for (const auto& key : keys) {
    History& h = index_.find(key)->second;
    const Entry& current = h.back();
    Entry tomb;
    tomb.mod_revision = ctx.revision;
    tomb.sub = ctx.sub++;
    Event event{Event::Type::kDelete, KeyValue{key, 0, ctx.revision, 0, "", 0}, to_kv(key, current)};
    if (r.prev_kv) response.prev_kvs.push_back(*event.prev_kv);
    detach(key, current.lease);
    ctx.batch->rows.push_back({key, tomb});
    ctx.batch->events.push_back(std::move(event));
    h.push_back(std::move(tomb));
    ++response.deleted;
  }
  return response;
}

// An upper bound of what range(r) answers on the current state, in
// bytes, without building it; `puts` are values the transaction writes
// before the read, which it may see.
int64_t MvccIndex::range_bytes(const RangeRequest& r, const std::vector<const PutRequest*>& puts) const {
  if (r.count_only) return 0;
  const int64_t at = r.revision > 0 ? r.revision : revision_;
  int64_t bytes = 0;
  int64_t n = 0;
  for_each_in_range(r.key, r.range_end, [&](const std::string& key, const History& h) {
    const Entry* e = visible_at(h, at);
    if (!e || (r.limit > 0 && n >= r.limit)) return;
    ++n;
    bytes += answer_bytes(key.size(), r.keys_only ? 0 : e->value.size());
  });
  for (const PutRequest* p : puts) {
    if (in_range(p->key, r.key, r.range_end)) bytes += answer_bytes(p->key.size(), r.keys_only ? 0 : p->value.size());
  }
  return bytes;
}

// What the previous values a delete with prev_kv (or a put's) answer cost.
int64_t MvccIndex::live_bytes(const std::string& key, const std::string& end) const {
  int64_t bytes = 0;
  for_each_in_range(key, end, [&](const std::string& k, const History& h) {
    if (const Entry* e = latest(h)) bytes += answer_bytes(k.size(), e->value.size());
  });
  return bytes;
}

bool MvccIndex::compare_holds(const Compare& c) const {
  bool any = false;
  bool holds = true;
  for_each_in_range(c.key, c.range_end, [&](const std::string& key, const History& h) {
    const Entry* e = latest(h);
    if (!e) return;
    any = true;
    holds = holds && compare_kv(c, to_kv(key, *e));
  });
  if (any) return holds;
  // A missing key compares as zeroes, but never equal to any value.
  return c.target != Compare::Target::kValue && compare_kv(c, KeyValue{});
}

// Rejects a put of the same key twice in one branch (nested transactions
// included), in both branches, as etcd does before looking at the store.
Status MvccIndex::check_duplicates(const std::vector<RequestOp>& ops, std::set<std::string>& put_keys) const {
  for (const auto& op : ops) {
    if (const auto* put = std::get_if<PutRequest>(&op)) {
      if (!put_keys.insert(put->key).second) {
        return make_error(Errc::kDuplicateKey, std::string(kErrDuplicateKey) + " (" + put->key + ")");
      }
    } else if (const auto* txn = std::get_if<std::shared_ptr<TxnRequest>>(&op)) {
      if (!*txn) return make_error(Errc::kInvalidArgument, "empty nested transaction");
      std::set<std::string> success_keys = put_keys;
      std::set<std::string> failure_keys = put_keys;
      if (auto s = check_duplicates((*txn)->success, success_keys); !s) return s;
      if (auto s = check_duplicates((*txn)->failure, failure_keys); !s) return s;
      put_keys.insert(success_keys.begin(), success_keys.end());
      put_keys.insert(failure_keys.begin(), failure_keys.end());
    }
  }
  return ok_status();
}

// The branch each (nested) transaction takes, in pre-order, decided on the
// state before the transaction, as etcd decides it.
void MvccIndex::compute_path(const TxnRequest& r, std::vector<bool>& path) const {
  const bool succeeded =
      std::all_of(r.compare.begin(), r.compare.end(), [&](const Compare& c) { return compare_holds(c); });
  path.push_back(succeeded);
  for (const auto& op : succeeded ? r.success : r.failure) {
    if (const auto* txn = std::get_if<std::shared_ptr<TxnRequest>>(&op)) compute_path(**txn, path);
  }
}

// The size of the answer so far (an upper bound), checked against `budget`
// (0: none) as each read is validated, and the puts applied before it.
struct MvccIndex::AnswerBudget {
  int64_t budget = 0;
  int64_t bytes = 0;
  std::vector<const PutRequest*> puts;
  bool add(int64_t more) {
    bytes += more;
    return budget <= 0 || bytes <= budget;
  }
};

// Checks what applying the taken branches needs before anything changes,
// so a failed transaction leaves no trace.
Status MvccIndex::validate_path(const TxnRequest& r, const std::vector<bool>& path, std::size_t& at,
                                AnswerBudget& answer) const {
  for (const auto& c : r.compare) {
    if (c.key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
  }
  for (const auto& op : path[at++] ? r.success : r.failure) {
    if (const auto* put = std::get_if<PutRequest>(&op)) {
      if (auto s = validate_put(*put); !s) return s;
      if (answer.budget > 0) {
        if (put->prev_kv && !answer.add(live_bytes(put->key, ""))) return response_too_large(answer.budget);
        answer.puts.push_back(put);
      }
    } else if (const auto* del = std::get_if<DeleteRangeRequest>(&op)) {
      if (del->key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
      if (answer.budget > 0 && del->prev_kv && !answer.add(live_bytes(del->key, del->range_end))) {
        return response_too_large(answer.budget);
      }
    } else if (const auto* range = std::get_if<RangeRequest>(&op)) {
      if (range->key.empty()) return make_error(Errc::kInvalidArgument, kErrEmptyKey);
      if (range->revision > revision_) return future_error(range->revision, revision_);
      if (range->revision > 0 && range->revision < compact_revision_) {
        return compacted_error(range->revision, compact_revision_);
      }
      if (answer.budget > 0 && !answer.add(range_bytes(*range, answer.puts))) {
        return response_too_large(answer.budget);
      }
    } else {
      if (auto s = validate_path(*std::get<std::shared_ptr<TxnRequest>>(op), path, at, answer); !s) return s;
    }
  }
  return ok_status();
}

Result<TxnResponse> MvccIndex::write_txn(WriteContext& ctx, const TxnRequest& r) {
  std::set<std::string> put_keys;
  if (auto s = check_duplicates(r.success, put_keys); !s) return s.error();
  put_keys.clear();
  if (auto s = check_duplicates(r.failure, put_keys); !s) return s.error();
  std::vector<bool> path;
  compute_path(r, path);
  std::size_t at = 0;
  AnswerBudget answer{r.max_response_bytes, 0, {}};
  if (auto s = validate_path(r, path, at, answer); !s) return s.error();
  at = 0;
  return write_txn_branch(ctx, r, path, at);
}

TxnResponse MvccIndex::write_txn_branch(WriteContext& ctx, const TxnRequest& r, const std::vector<bool>& path,
                                      std::size_t& at) {
  TxnResponse response;
  response.succeeded = path[at++];
  for (const auto& op : response.succeeded ? r.success : r.failure) {
    if (const auto* put = std::get_if<PutRequest>(&op)) {
      response.responses.emplace_back(write_put(ctx, *put));
    } else if (const auto* del = std::get_if<DeleteRangeRequest>(&op)) {
      response.responses.emplace_back(write_delete(ctx, *del));
    } else if (const auto* read = std::get_if<RangeRequest>(&op)) {
      // Validated above, so the read cannot fail; it sees this transaction's earlier changes.
      response.responses.emplace_back(std::move(range(*read, ctx.revision, revision_).value()));
    } else {
      const auto& nested = std::get<std::shared_ptr<TxnRequest>>(op);
      response.responses.emplace_back(std::make_shared<TxnResponse>(write_txn_branch(ctx, *nested, path, at)));
    }
  }
  const int64_t revision = ctx.changed() ? ctx.revision : revision_;
  for (auto& op : response.responses) {
    std::visit(
        [&](auto& resp) {
          if constexpr (std::is_same_v<std::decay_t<decltype(resp)>, std::shared_ptr<TxnResponse>>) {
            resp->revision = revision;
          } else {
            resp.revision = revision;
          }
        },
        op);
  }
  return response;
}

// ---- replay -----------------------------------------------------------------

void MvccIndex::load_meta(int64_t revision, int64_t compact_revision) {
  revision_ = revision;
  compact_revision_ = compact_revision;
}

void MvccIndex::load_lease(int64_t id, int64_t ttl, int64_t now) {
  auto lease = std::make_unique<Lease>();
  lease->id = id;
  lease->ttl = ttl;
  lease->deadline.store(deadline_after(now, lease->ttl));
  leases_.emplace(lease->id, std::move(lease));
}

void MvccIndex::load_entry(std::string key, Entry entry) {
  revision_ = std::max(revision_, entry.mod_revision);
  index_[std::move(key)].push_back(std::move(entry));
}

void MvccIndex::finish_load() {
  for (const auto& [key, history] : index_) {
    const Entry* e = latest(history);
    if (!e || e->lease == 0) continue;
    if (auto it = leases_.find(e->lease); it != leases_.end()) it->second->keys.insert(key);
  }
}

}  // namespace zeppelin::store::embedded
