#include "state/store_state_store.h"

#include <filesystem>
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

Status StoreStateStore::read_current() {
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
  current_.clear();
  for (const auto& kv : first->kvs) current_[kv.key] = kv.value;
  for (const auto& kv : second->kvs) current_[kv.key] = kv.value;
  loaded_revision_ = first->revision;
  known_ = true;
  return ok_status();
}

Result<std::vector<SystemRecord>> StoreStateStore::load() {
  if (auto s = read_current(); !s) return s.error();
  const std::string systems = prefix_ + "systems/";
  const std::string replicas = prefix_ + "replicas/";
  std::map<std::string, SystemRecord> by_name;
  for (const auto& [key, value] : current_) {
    if (!key.starts_with(systems)) continue;
    const std::string name = key.substr(systems.size());
    auto record = system_from_json(name, value, key);
    if (!record) {
      // Someone else's bad write must not stop the server: the key is left as
      // it is, and reported as unreadable so that nothing running is removed.
      log::error("ignoring {}", record.error().message);
      SystemRecord bad;
      bad.name = name;
      bad.unreadable = record.error().message;
      by_name[name] = std::move(bad);
      continue;
    }
    by_name[name] = std::move(*record);
  }
  for (const auto& [key, value] : current_) {
    if (!key.starts_with(replicas)) continue;
    // SYSTEM/SERVICE/ORDINAL
    const std::string rest = key.substr(replicas.size());
    const auto slash = rest.find('/');
    if (slash == std::string::npos) continue;
    auto it = by_name.find(rest.substr(0, slash));
    if (it == by_name.end()) continue;
    try {
      const json doc = json::parse(value);
      it->second.replicas[rest.substr(slash + 1)] =
          ReplicaRecord{doc.at("address").get<std::string>(), doc.value("restarts", 0)};
    } catch (const json::exception& e) {
      log::error("ignoring replica history {}: {}", key, e.what());
    }
  }
  std::vector<SystemRecord> out;
  for (auto& [name, record] : by_name) out.push_back(std::move(record));
  return out;
}

Status StoreStateStore::save(const std::vector<SystemRecord>& systems) {
  if (!known_) {
    if (auto s = read_current(); !s) return s;
  }
  std::map<std::string, std::string> want;
  for (const auto& r : systems) {
    want[system_key(r.name)] = system_to_json(r);
    for (const auto& [key, rep] : r.replicas) {
      want[replica_key(r.name, key)] = json{{"address", rep.address}, {"restarts", rep.restarts}}.dump();
    }
  }
  store::TxnRequest txn;
  bool touches_systems = false;
  const std::string systems_prefix = prefix_ + "systems/";
  for (const auto& [key, value] : want) {
    auto it = current_.find(key);
    if (it != current_.end() && it->second == value) continue;
    store::PutRequest put;
    put.key = key;
    put.value = value;
    txn.success.emplace_back(std::move(put));
    touches_systems = touches_systems || key.starts_with(systems_prefix);
  }
  for (const auto& [key, value] : current_) {
    if (want.count(key)) continue;
    store::DeleteRangeRequest del;
    del.key = key;
    txn.success.emplace_back(std::move(del));
    touches_systems = touches_systems || key.starts_with(systems_prefix);
  }
  if (txn.success.empty()) return ok_status();
  auto done = store_.txn(txn);
  if (!done) {
    known_ = false;  // read again before the next save
    return done.error();
  }
  if (touches_systems) own_revisions_.insert(done->revision);
  current_ = std::move(want);
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
