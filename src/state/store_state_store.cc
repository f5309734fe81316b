#include "state/store_state_store.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <future>
#include <optional>
#include <nlohmann/json.hpp>

#include "common/log.h"

namespace zeppelin::state {

using nlohmann::json;

std::string system_to_json(const SystemRecord& r) {
  return json{{"name", r.name},
              {"spec_file", r.spec_file},
              {"spec_text", r.spec_text},
              {"caller_env", r.caller_env},
              {"images", r.images},
              {"running", r.running},
              {"scale", r.scale}}
      .dump();
}

Result<SystemRecord> system_from_json(const std::string& name, const std::string& text, const std::string& where) {
  try {
    const json doc = json::parse(text);
    SystemRecord r;
    r.name = name;
    if (doc.contains("name") && doc.at("name").get<std::string>() != name) {
      return make_error(Errc::kInvalidArgument, where + ": \"name\" is \"" + doc.at("name").get<std::string>() +
                                                    "\" but the key names \"" + name + "\"");
    }
    // The same rules as the API's body (api/routes.cc): a record may be written by anyone.
    r.spec_file = doc.at("spec_file").get<std::string>();
    if (r.spec_file.empty() || r.spec_file[0] != '/') {
      return make_error(Errc::kInvalidArgument, where + ": spec_file must be an absolute path");
    }
    r.spec_text = doc.at("spec_text").get<std::string>();
    r.caller_env = doc.value("caller_env", std::map<std::string, std::string>{});
    r.images = doc.value("images", std::map<std::string, std::string>{});
    r.running = doc.value("running", true);
    if (auto scale = doc.find("scale"); scale != doc.end()) {
      if (!scale->is_object()) return make_error(Errc::kInvalidArgument, where + ": scale must be an object");
      for (const auto& [service, n] : scale->items()) {
        // Integers only: 1e300 or -1 are errors, never converted.
        if (!n.is_number_integer() || n.get<int64_t>() < 0 || n.get<int64_t>() > 10000) {
          return make_error(Errc::kInvalidArgument, where + ": scale of \"" + service +
                                                        "\" must be a whole number between 0 and 10000, not " + n.dump());
        }
        r.scale[service] = static_cast<int>(n.get<int64_t>());
      }
    }
    return r;
  } catch (const json::exception& e) {
    return make_error(Errc::kInvalidArgument, where + ": not a system record: " + e.what());
  }
}

StoreStateStore::StoreStateStore(store::Store& store, std::string prefix) : store_(store), prefix_(std::move(prefix)) {}

StoreStateStore::~StoreStateStore() { writer_.join(); }

void StoreStateStore::flush() {
  std::promise<void> done;
  auto idle = done.get_future();
  boost::asio::post(writer_, [&done] { done.set_value(); });
  idle.wait();
}

namespace {

bool same_desired(const SystemRecord& a, const SystemRecord& b) {
  return a.running == b.running && a.spec_file == b.spec_file && a.scale == b.scale && a.images == b.images &&
         a.caller_env == b.caller_env && a.spec_text == b.spec_text;
}

std::string replica_to_json(const ReplicaRecord& rep) {
  return json{{"address", rep.address}, {"restarts", rep.restarts}}.dump();
}

}  // namespace

Status StoreStateStore::read_current(std::vector<SystemRecord>* unreadable) {
  flush();  // what was queued is in the store before it is read
  queued_write_failed_ = false;
  const std::string systems = prefix_ + "systems/";
  const std::string replicas = prefix_ + "replicas/";
  store::RangeRequest request;
  request.key = systems;
  request.range_end = store::prefix_end(systems);
  auto first = store_.range(request);
  if (!first) return first.error();
  request.key = replicas;
  request.range_end = store::prefix_end(replicas);
  request.revision = first->revision;  // both prefixes as of one revision
  auto second = store_.range(request);
  if (!second) return second.error();
  stored_.clear();
  stray_.clear();
  for (const auto& kv : first->kvs) {
    const std::string name = kv.key.substr(systems.size());
    auto record = system_from_json(name, kv.value, kv.key);
    if (!record) {
      // Someone else's bad write must not stop the server: it is reported as
      // unreadable so that nothing running is removed.
      log::error("ignoring {}", record.error().message);
      stray_.insert(kv.key);
      if (unreadable) {
        SystemRecord bad;
        bad.name = name;
        bad.unreadable = record.error().message;
        unreadable->push_back(std::move(bad));
      }
      continue;
    }
    stored_[name] = std::move(*record);
  }
  for (const auto& kv : second->kvs) {
    // SYSTEM/SERVICE/ORDINAL
    const std::string rest = kv.key.substr(replicas.size());
    const auto slash = rest.find('/');
    auto it = slash == std::string::npos ? stored_.end() : stored_.find(rest.substr(0, slash));
    if (it == stored_.end()) {
      stray_.insert(kv.key);
      continue;
    }
    try {
      const json doc = json::parse(kv.value);
      it->second.replicas[rest.substr(slash + 1)] =
          ReplicaRecord{doc.at("address").get<std::string>(), doc.value("restarts", 0)};
    } catch (const json::exception& e) {
      log::error("ignoring replica history {}: {}", kv.key, e.what());
      stray_.insert(kv.key);
    }
  }
  loaded_revision_ = first->revision;
  known_ = true;
  return ok_status();
}

Result<std::vector<SystemRecord>> StoreStateStore::load() {
  std::vector<SystemRecord> out;
  if (auto s = read_current(&out); !s) return s.error();
  for (const auto& [name, record] : stored_) out.push_back(record);
  std::sort(out.begin(), out.end(), [](const SystemRecord& a, const SystemRecord& b) { return a.name < b.name; });
  return out;
}

Status StoreStateStore::save(std::span<const SystemRecord* const> systems) {
  if (!known_ || queued_write_failed_) {
    if (auto s = read_current(nullptr); !s) return s;
  }
  // The writes, found by comparing each record with what the store holds; the
  // comparison is cheap next to the JSON, which is made only for what changed.
  // Desired state and replica history go in two transactions: the first is
  // committed before save() returns, the second after it, in the background.
  // (A crash in between leaves history without its system, or misses some
  // history: the next save deletes the first, and history is advisory.)
  // History's keys and JSON are made on the writer thread: here, a change
  // costs a copy of its name and record.
  store::TxnRequest desired;
  struct HistoryChange {
    std::string key;                      // a whole key (a stray one), or...
    std::string system;                   // ...SYSTEM and SERVICE/ORDINAL
    std::string replica;
    std::optional<ReplicaRecord> record;  // nullopt: delete
  };
  std::vector<HistoryChange> history;
  auto put = [&](std::string key, std::string value) {
    stray_.erase(key);
    store::PutRequest request;
    request.key = std::move(key);
    request.value = std::move(value);
    desired.success.emplace_back(std::move(request));
  };
  auto del = [&](std::string key) {
    store::DeleteRangeRequest request;
    request.key = std::move(key);
    desired.success.emplace_back(std::move(request));
  };
  auto put_history = [&](const std::string& system, const std::string& replica, const ReplicaRecord& record) {
    if (!stray_.empty()) stray_.erase(replica_key(system, replica));
    history.push_back(HistoryChange{{}, system, replica, record});
  };
  auto del_history = [&](const std::string& system, const std::string& replica) {
    history.push_back(HistoryChange{{}, system, replica, std::nullopt});
  };
  std::set<std::string> present;
  for (const SystemRecord* record : systems) {
    const SystemRecord& r = *record;
    present.insert(r.name);
    auto it = stored_.find(r.name);
    if (it == stored_.end()) {
      put(system_key(r.name), system_to_json(r));
      for (const auto& [key, rep] : r.replicas) put_history(r.name, key, rep);
      stored_[r.name] = r;
      continue;
    }
    SystemRecord& was = it->second;
    if (!same_desired(was, r)) {
      put(system_key(r.name), system_to_json(r));
      auto replicas = std::move(was.replicas);
      was = r;  // the desired fields; the history is merged below
      was.replicas = std::move(replicas);
    }
    // Both maps are ordered: one merge finds what was added, changed or removed.
    auto a = was.replicas.begin();
    auto b = r.replicas.begin();
    while (a != was.replicas.end() || b != r.replicas.end()) {
      if (b == r.replicas.end() || (a != was.replicas.end() && a->first < b->first)) {
        del_history(r.name, a->first);
        a = was.replicas.erase(a);
      } else if (a == was.replicas.end() || b->first < a->first) {
        put_history(r.name, b->first, b->second);
        a = std::next(was.replicas.insert(a, *b));
        ++b;
      } else {
        if (a->second.address != b->second.address || a->second.restarts != b->second.restarts) {
          put_history(r.name, b->first, b->second);
          a->second = b->second;
        }
        ++a;
        ++b;
      }
    }
  }
  for (auto it = stored_.begin(); it != stored_.end();) {
    if (present.count(it->first)) {
      ++it;
      continue;
    }
    del(system_key(it->first));
    for (const auto& [key, rep] : it->second.replicas) del_history(it->first, key);
    it = stored_.erase(it);
  }
  for (const auto& key : stray_) {
    if (key.starts_with(prefix_ + "systems/")) {
      del(key);
    } else {
      history.push_back(HistoryChange{key, {}, {}, std::nullopt});
    }
  }
  stray_.clear();

  if (!desired.success.empty()) {
    // Durable before the caller goes on, after every write queued before it.
    std::promise<Result<store::TxnResponse>> promise;
    auto result = promise.get_future();
    boost::asio::post(writer_, [this, &desired, &promise] { promise.set_value(store_.txn(desired)); });
    auto done = result.get();
    if (!done) {
      known_ = false;  // read again before the next save
      return done.error();
    }
    own_revisions_.insert(done->revision);
  }
  if (!history.empty()) {
    boost::asio::post(writer_, [this, history = std::move(history)] {
      store::TxnRequest txn;
      txn.success.reserve(history.size());
      for (const auto& change : history) {
        std::string key = change.key.empty() ? replica_key(change.system, change.replica) : change.key;
        if (change.record) {
          store::PutRequest put;
          put.key = std::move(key);
          put.value = replica_to_json(*change.record);
          txn.success.emplace_back(std::move(put));
        } else {
          store::DeleteRangeRequest del;
          del.key = std::move(key);
          txn.success.emplace_back(std::move(del));
        }
      }
      if (auto done = store_.txn(txn); !done) {
        log::error("cannot persist replica history: {}", done.error().message);
        queued_write_failed_ = true;
      }
    });
  }
  return ok_status();
}

namespace {

class StoreStateWatch final : public StateWatch {
 public:
  explicit StoreStateWatch(std::unique_ptr<store::Watch> watch) : watch_(std::move(watch)) {}

 private:
  std::unique_ptr<store::Watch> watch_;
};

}  // namespace

Result<std::unique_ptr<StateWatch>> StoreStateStore::watch(StateChangeCallback callback) {
  const std::string systems = prefix_ + "systems/";
  store::WatchRequest request;
  request.key = systems;
  request.range_end = store::prefix_end(systems);
  request.start_revision = loaded_revision_ + 1;  // nothing between load() and now is missed
  auto w = store_.watch(request, [callback = std::move(callback)](store::WatchUpdate update) {
    if (update.compact_revision != 0) return callback(0);
    if (!update.events.empty()) callback(update.revision);
  });
  if (!w) return w.error();
  return std::unique_ptr<StateWatch>(std::make_unique<StoreStateWatch>(std::move(*w)));
}

bool StoreStateStore::own_write(int64_t revision) {
  // Changes are reported in revision order, so older entries were reported already.
  const bool own = own_revisions_.count(revision) > 0;
  own_revisions_.erase(own_revisions_.begin(), own_revisions_.upper_bound(revision));
  return own;
}

Result<int> migrate_state_file(const std::string& state_file, StateStore& to) {
  std::error_code ec;
  if (!std::filesystem::exists(state_file, ec)) return 0;
  auto present = to.load();
  if (!present) return present.error();
  if (!present->empty()) {
    log::warn("{} is left alone: the store already holds desired state", state_file);
    return 0;
  }
  FileStateStore from(state_file);
  auto records = from.load();
  if (!records) return records.error();
  if (auto s = to.save(*records); !s) return s.error();
  std::filesystem::rename(state_file, state_file + ".migrated", ec);
  if (ec) return make_error(Errc::kInternal, "cannot rename " + state_file + ": " + ec.message());
  return static_cast<int>(records->size());
}

}  // namespace zeppelin::state
