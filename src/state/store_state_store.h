// StoreStateStore: desired state and replica history in the coordination
// store, so that anyone with access to the store (etcdctl, another server
// sharing an etcd cluster) can read it, watch it and change it.
//
// Key layout under `prefix` (default "/zeppelin/"), documented in docs/store.md:
//   PREFIX systems/NAME                    the system's desired state (JSON)
//   PREFIX replicas/SYSTEM/SERVICE/ORDINAL replica history: address, restarts (JSON)
// A save() writes only the keys whose value changed, all in one transaction.
// It compares records, not their JSON, so that a save where one replica's
// restart count changed costs a comparison per replica and one small write.
// A save that changes replica history only is committed on a writer thread of
// this object's (history is written lazily anyway, and 50,000 replica keys
// take a while to commit); one that changes desired state is committed before
// save() returns, after every write queued before it. Writes land in the order
// of the saves.
//
// Threading: load() and save() from one thread at a time (the server's event
// loop); the watch callback runs on the store's threads.
#pragma once

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <map>
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
  // Waits for the writes still queued.
  ~StoreStateStore() override;
  // Waits until every save so far is in the store.
  void flush();

  Result<std::vector<SystemRecord>> load() override;
  using StateStore::save;
  Status save(std::span<const SystemRecord* const> systems) override;
  Result<std::unique_ptr<StateWatch>> watch(StateChangeCallback callback) override;
  bool own_write(int64_t revision) override;

  std::string system_key(const std::string& name) const { return prefix_ + "systems/" + name; }
  std::string replica_key(const std::string& system, const std::string& service_ordinal) const {
    return prefix_ + "replicas/" + system + "/" + service_ordinal;
  }

 private:
  // Reads what the store holds into stored_ and stray_; systems that cannot
  // be read are added to `unreadable` (when given).
  Status read_current(std::vector<SystemRecord>* unreadable);

  store::Store& store_;
  std::string prefix_;
  bool known_ = false;  // stored_ and stray_ reflect the store (and the writes queued)
  // The records the store holds, as last read or written: desired state and
  // replica history of each system that could be read.
  std::map<std::string, SystemRecord> stored_;
  // Keys read that no record in stored_ accounts for (unreadable systems,
  // history of no system): deleted by the next save unless written by it.
  std::set<std::string> stray_;
  int64_t loaded_revision_ = 0;
  std::set<int64_t> own_revisions_;  // saves that changed a system key, not yet reported back
  boost::asio::thread_pool writer_{1};        // commits history-only saves, in order
  std::atomic<bool> queued_write_failed_{false};  // then stored_ is read again before the next save
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
