#include "runtime/routing_driver.h"

namespace zeppelin::runtime {

Result<Driver*> RoutingDriver::containers() {
  if (!containers_) {
    auto made = make_containers_();
    if (!made) return made.error();
    containers_ = std::move(*made);
  }
  return containers_.get();
}

Status RoutingDriver::supports(const spec::Service& service) {
  if (!service.is_container()) return processes_.supports(service);
  auto driver = containers();
  if (!driver) return make_error(driver.error().code, "service \"" + service.name + "\": " + driver.error().message);
  return (*driver)->supports(service);
}

Result<std::unique_ptr<Instance>> RoutingDriver::start(const LaunchSpec& launch, InstanceEvents events) {
  if (!launch.container) return processes_.start(launch, std::move(events));
  auto driver = containers();
  if (!driver) return driver.error();
  return (*driver)->start(launch, std::move(events));
}

int RoutingDriver::reap_leftovers(const std::function<bool(const std::string&)>& wanted) {
  int ended = processes_.reap_leftovers(wanted);
  // Without an engine there are no containers to find: nothing to report.
  if (auto driver = containers()) ended += (*driver)->reap_leftovers(wanted);
  return ended;
}

}  // namespace zeppelin::runtime
