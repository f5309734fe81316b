// Runs replicas as containers through the Docker Engine API (Docker or
// Podman). A replica is one container, named SYSTEM-SERVICE-ORDINAL and
// labelled with its identity and this server's data directory, so that a
// restarted server adopts the containers it left running instead of starting
// duplicates. Containers share the host's network: each replica listens on
// its own loopback address, exactly like a process replica.
#pragma once

#include <boost/asio/io_context.hpp>
#include <map>
#include <memory>
#include <string>

#include "runtime/container/engine.h"
#include "runtime/driver.h"

namespace zeppelin::runtime::container {

// Label keys put on every container.
inline constexpr const char* kLabelHome = "io.zeppelin.home";
inline constexpr const char* kLabelId = "io.zeppelin.id";  // "system/service/ordinal"
inline constexpr const char* kLabelSystem = "io.zeppelin.system";
inline constexpr const char* kLabelService = "io.zeppelin.service";
inline constexpr const char* kLabelReplica = "io.zeppelin.replica";
inline constexpr const char* kLabelConfig = "io.zeppelin.config";  // hash of the create request

struct Removals;

class ContainerDriver final : public Driver {
 public:
  ContainerDriver(boost::asio::io_context& io, std::shared_ptr<Engine> engine, std::string home);

  Status supports(const spec::Service& service) override;
  Result<std::unique_ptr<Instance>> start(const LaunchSpec& launch, InstanceEvents events) override;
  int reap_leftovers(const std::function<bool(const std::string& id)>& wanted) override;
  bool adoptable(const std::string& id) const override { return adoptable_.count(id) > 0; }

  // The body of POST /containers/create for `launch` (exposed for tests).
  nlohmann::json create_request(const LaunchSpec& launch) const;

 private:
  boost::asio::io_context& io_;
  std::shared_ptr<Engine> engine_;
  std::string home_;
  // Running containers of a previous server, by replica id, waiting to be adopted.
  struct Leftover {
    std::string container_id;
    std::string config;
  };
  std::map<std::string, Leftover> adoptable_;
  std::shared_ptr<Removals> removals_;
};

}  // namespace zeppelin::runtime::container
