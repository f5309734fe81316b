// StoreStateStore: desired state and replica history in the coordination
// store, so that anyone with access to the store (etcdctl, another server
// sharing an etcd cluster) can read it, watch it and change it.
//
// Key layout under `prefix` (default "/zeppelin/"), documented in docs/store.md:
//   PREFIX systems/NAME                    the system's desired state (JSON)
//   PREFIX replicas/SYSTEM/SERVICE/ORDINAL replica history: address, restarts (JSON)
// A save() writes only the keys whose value changed, all in one transaction.
//
// Threading: load() and save() from one thread at a time (the server's event
// loop); the watch callback runs on the store's threads.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>

#include "state/state_store.h"
#include "store/store.h"

namespace zeppelin::state {

inline constexpr char kDefaultPrefix[] = "/zeppelin/";

class StoreStateStore final : public StateStore {
 public:
  // `store` must outlive this object and any watch it returns.
  explicit StoreStateStore(store::Store& store, std::string prefix = kDefaultPrefix);

  Result<std::vector<SystemRecord>> load() override;
  Status save(const std::vector<SystemRecord>& systems) override;
  Result<std::unique_ptr<StateWatch>> watch(StateChangeCallback callback) override;
  bool own_write(int64_t revision) override;

  std::string system_key(const std::string& name) const { return prefix_ + "systems/" + name; }
  std::string replica_key(const std::string& system, const std::string& service_ordinal) const {
    return prefix_ + "replicas/" + system + "/" + service_ordinal;
  }

 private:
  Status read_current();

  store::Store& store_;
  std::string prefix_;
  bool known_ = false;                        // current_ reflects the store
  std::map<std::string, std::string> current_;  // key -> value as last read or written
  int64_t loaded_revision_ = 0;
  std::set<int64_t> own_revisions_;  // saves that changed a system key, not yet reported back
};

// The JSON of a system's desired state (no replica history), as stored under
// systems/NAME, and back. parse_system names `where` in its error.
std::string system_to_json(const SystemRecord& record);
Result<SystemRecord> system_from_json(const std::string& name, const std::string& text, const std::string& where);

// Imports `state_file` (a FileStateStore document) into `to` once: only when
// the file exists and `to` holds no system; the file is then renamed to
// STATE_FILE.migrated. Returns how many systems were imported.
Result<int> migrate_state_file(const std::string& state_file, StateStore& to);

}  // namespace zeppelin::state
