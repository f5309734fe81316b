// Durable desired state: the systems the user asked for, how far each service
// is scaled, and the replica history (addresses, restart counts) that must
// survive a server restart. StateStore is the seam; FileStateStore keeps it in
// one JSON document replaced atomically.
#pragma once

#include <map>
#include <memory>
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
};

class StateStore {
 public:
  virtual ~StateStore() = default;
  virtual Result<std::vector<SystemRecord>> load() = 0;
  virtual Status save(const std::vector<SystemRecord>& systems) = 0;
};

class FileStateStore final : public StateStore {
 public:
  explicit FileStateStore(std::string path) : path_(std::move(path)) {}
  Result<std::vector<SystemRecord>> load() override;
  Status save(const std::vector<SystemRecord>& systems) override;

 private:
  std::string path_;
};

}  // namespace zeppelin::state
