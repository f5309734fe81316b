// REST paths of the kinds Zeppelin manages, and list+watch over them.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "kube_client/client.h"

namespace zeppelin::kube {

struct ResourceType {
  std::string kind;           // "Deployment"
  std::string group_version;  // "apps/v1", "v1"
  std::string plural;         // "deployments"
  // "deployments.apps", as kubectl names a resource in messages.
  std::string display() const;
  std::string collection_path(const std::string& ns) const;
  std::string object_path(const std::string& ns, const std::string& name) const;
};

// The kinds `render` emits, and Pod; nullopt for any other kind.
std::optional<ResourceType> resource_type(const std::string& kind);

// Percent-encodes a query value.
std::string query_value(const std::string& value);

// Lists `collection_path` (filtered by `selector`) and follows it with watch
// requests from the list's resourceVersion until `on_event` returns true or
// `deadline` passes. `on_list` gets the items after every list (the first,
// and each re-list after 410 Gone) and may end the wait by returning true.
// Returns true when done, false at the deadline.
using ListHandler = std::function<bool(const nlohmann::json& items)>;
using EventHandler = std::function<bool(const std::string& type, const nlohmann::json& object)>;
Result<bool> list_and_watch(Client& client, const std::string& collection_path, const std::string& selector,
                            std::chrono::steady_clock::time_point deadline, const ListHandler& on_list,
                            const EventHandler& on_event);

}  // namespace zeppelin::kube
