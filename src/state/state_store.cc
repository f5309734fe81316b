#include "state/state_store.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/fs_util.h"

namespace zeppelin::state {

using nlohmann::json;

Result<std::vector<SystemRecord>> FileStateStore::load() {
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) return std::vector<SystemRecord>{};
  auto text = read_file(path_);
  if (!text) return text.error();
  std::vector<SystemRecord> out;
  try {
    const json doc = json::parse(*text);
    for (const auto& s : doc.at("systems")) {
      SystemRecord r;
      r.name = s.at("name").get<std::string>();
      r.spec_file = s.at("spec_file").get<std::string>();
      r.spec_text = s.at("spec_text").get<std::string>();
      r.caller_env = s.at("caller_env").get<std::map<std::string, std::string>>();
      r.images = s.value("images", std::map<std::string, std::string>{});  // absent in older files
      r.running = s.at("running").get<bool>();
      r.scale = s.at("scale").get<std::map<std::string, int>>();
      for (const auto& [key, rep] : s.at("replicas").items()) {
        r.replicas[key] = ReplicaRecord{rep.at("address").get<std::string>(), rep.at("restarts").get<int>()};
      }
      out.push_back(std::move(r));
    }
  } catch (const json::exception& e) {
    return make_error(Errc::kInternal, "corrupt state file " + path_ + ": " + e.what());
  }
  return out;
}

Status StateStore::save(const std::vector<SystemRecord>& systems) {
  std::vector<const SystemRecord*> records;
  records.reserve(systems.size());
  for (const auto& r : systems) records.push_back(&r);
  return save(records);
}

Status FileStateStore::save(std::span<const SystemRecord* const> systems) {
  json doc;
  doc["version"] = 1;
  doc["systems"] = json::array();
  for (const SystemRecord* record : systems) {
    const SystemRecord& r = *record;
    json replicas = json::object();
    for (const auto& [key, rep] : r.replicas) replicas[key] = {{"address", rep.address}, {"restarts", rep.restarts}};
    doc["systems"].push_back({{"name", r.name},
                              {"spec_file", r.spec_file},
                              {"spec_text", r.spec_text},
                              {"caller_env", r.caller_env},
                              {"images", r.images},
                              {"running", r.running},
                              {"scale", r.scale},
                              {"replicas", replicas}});
  }
  return write_file_atomic(path_, doc.dump());
}

}  // namespace zeppelin::state
