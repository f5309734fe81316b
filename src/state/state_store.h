// Durable desired state: the systems the user asked for, how far each service
// is scaled, and the replica history (addresses, restart counts) that must
// survive a server restart. StateStore is the seam; FileStateStore keeps it in
// one JSON document replaced atomically; StoreStateStore
// (state/store_state_store.h) keeps it in the coordination store.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"

namespace zeppelin::state {

struct ReplicaRecord {
  std::string address;  // the replica's own loopback address
  int restarts = 0;
};

struct SystemRecord {
  std::string name;
  std::string spec_file;                          // absolute path the spec came from
  std::string spec_text;                          // the spec as submitted
  std::map<std::string, std::string> caller_env;  // environment of the `zeppelin run` caller
  std::map<std::string, std::string> images;      // image service -> the image ID the caller built or pulled
  bool running = true;                            // desired: running or stopped
  std::map<std::string, int> scale;               // service -> replicas, when changed by `scale`
  std::map<std::string, ReplicaRecord> replicas;  // "service/ordinal" -> history
  // Set (to why) when the stored record of `name` exists but cannot be read:
  // a bad write by someone else, which the server logs and ignores (a
  // running system of that name is left as it is). Nothing else is set.
  std::string unreadable;
};

// A subscription to changes of desired state; destroying it ends the callbacks.
class StateWatch {
 public:
  virtual ~StateWatch() = default;
};

// Called on any thread (the store's) with the revision of a change to desired
// state; it must not block. Revision 0 means "something changed, revision unknown".
using StateChangeCallback = std::function<void(int64_t revision)>;

class StateStore {
 public:
  virtual ~StateStore() = default;
  virtual Result<std::vector<SystemRecord>> load() = 0;
  // Replaces the stored state with `systems`. Pointers, so that the server
  // need not copy every record (50,000 replicas' history) to save one change.
  virtual Status save(std::span<const SystemRecord* const> systems) = 0;
  // The same, for records at hand.
  Status save(const std::vector<SystemRecord>& systems);
  // Reports changes of desired state (not of replica history) made after the
  // last load(), including this store's own saves (see own_write). A store
  // that nobody else writes returns no watch (nullptr).
  virtual Result<std::unique_ptr<StateWatch>> watch(StateChangeCallback callback) {
    (void)callback;
    return std::unique_ptr<StateWatch>();
  }
  // Whether the change at `revision` was written by this store's save().
  // Call from the thread that saves, after the change was reported.
  virtual bool own_write(int64_t revision) {
    (void)revision;
    return false;
  }
};

class FileStateStore final : public StateStore {
 public:
  explicit FileStateStore(std::string path) : path_(std::move(path)) {}
  Result<std::vector<SystemRecord>> load() override;
  using StateStore::save;
  Status save(std::span<const SystemRecord* const> systems) override;

 private:
  std::string path_;
};

// State kept in memory only, for tests and tools that persist nothing.
class MemoryStateStore final : public StateStore {
 public:
  Result<std::vector<SystemRecord>> load() override { return systems; }
  using StateStore::save;
  Status save(std::span<const SystemRecord* const> saved) override {
    systems.clear();
    for (const auto* r : saved) systems.push_back(*r);
    ++saves;
    return ok_status();
  }
  std::vector<SystemRecord> systems;
  int saves = 0;
};

}  // namespace zeppelin::state
