#include "spec/model.h"

#include <functional>
#include <set>

namespace zeppelin::spec {

const Service* System::find(const std::string& service) const {
  for (const auto& s : services) {
    if (s.name == service) return &s;
  }
  return nullptr;
}

std::vector<const Service*> System::dependency_order() const {
  std::vector<const Service*> order;
  std::set<std::string> placed;
  std::function<void(const Service&)> place = [&](const Service& svc) {
    if (!placed.insert(svc.name).second) return;
    for (const auto& dep : svc.depends_on) {
      if (const Service* d = find(dep)) place(*d);
    }
    order.push_back(&svc);
  };
  for (const auto& s : services) place(s);
  return order;
}

const char* to_string(Mode m) { return m == Mode::kStateful ? "stateful" : "replicated"; }
const char* to_string(StartOrder s) { return s == StartOrder::kParallel ? "parallel" : "ordered"; }
const char* to_string(RestartPolicy r) {
  switch (r) {
    case RestartPolicy::kOnFailure: return "on-failure";
    case RestartPolicy::kNever: return "never";
    default: return "always";
  }
}

}  // namespace zeppelin::spec
