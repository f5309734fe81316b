// Sends each replica to the driver for its kind: processes to one, image
// services to the other. The container driver is made on first use, so that
// systems of processes alone never need a container engine.
#pragma once

#include <functional>
#include <memory>

#include "runtime/driver.h"

namespace zeppelin::runtime {

class RoutingDriver final : public Driver {
 public:
  using Factory = std::function<Result<std::unique_ptr<Driver>>()>;
  RoutingDriver(Driver& processes, Factory make_containers)
      : processes_(processes), make_containers_(std::move(make_containers)) {}

  Status supports(const spec::Service& service) override;
  Result<std::unique_ptr<Instance>> start(const LaunchSpec& launch, InstanceEvents events) override;
  int reap_leftovers(const std::function<bool(const std::string& id)>& wanted) override;
  bool adoptable(const std::string& id) const override { return containers_ && containers_->adoptable(id); }

 private:
  // The container driver; a failure (no engine) is retried on the next call.
  Result<Driver*> containers();

  Driver& processes_;
  Factory make_containers_;
  std::unique_ptr<Driver> containers_;
};

}  // namespace zeppelin::runtime
