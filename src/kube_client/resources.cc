#include "kube_client/resources.h"

#include "common/url.h"

namespace zeppelin::kube {

using nlohmann::json;

std::string ResourceType::display() const {
  const auto slash = group_version.find('/');
  return slash == std::string::npos ? plural : plural + "." + group_version.substr(0, slash);
}

std::string ResourceType::collection_path(const std::string& ns) const {
  const std::string root =
      group_version.find('/') == std::string::npos ? "/api/" + group_version : "/apis/" + group_version;
  return root + "/namespaces/" + percent_encode(ns) + "/" + plural;
}

std::string ResourceType::object_path(const std::string& ns, const std::string& name) const {
  return collection_path(ns) + "/" + percent_encode(name);
}

std::optional<ResourceType> resource_type(const std::string& kind) {
  static const ResourceType kTypes[] = {
      {"Deployment", "apps/v1", "deployments"},
      {"StatefulSet", "apps/v1", "statefulsets"},
      {"Job", "batch/v1", "jobs"},
      {"Service", "v1", "services"},
      {"ConfigMap", "v1", "configmaps"},
      {"PersistentVolumeClaim", "v1", "persistentvolumeclaims"},
      {"Pod", "v1", "pods"},
  };
  for (const auto& t : kTypes) {
    if (t.kind == kind) return t;
  }
  return std::nullopt;
}

std::string query_value(const std::string& value) { return percent_encode(value); }

Result<bool> list_and_watch(Client& client, const std::string& collection_path, const std::string& selector,
                            std::chrono::steady_clock::time_point deadline, const ListHandler& on_list,
                            const EventHandler& on_event) {
  using clock = std::chrono::steady_clock;
  const std::string filter = selector.empty() ? "" : "labelSelector=" + query_value(selector);
  const std::string resource = collection_path.substr(collection_path.rfind('/') + 1);
  while (true) {
    auto listed = client.request("GET", collection_path + (filter.empty() ? "" : "?" + filter));
    if (!listed) return listed.error();
    if (!listed->ok()) return api_error(*listed, client.config(), "list", resource);
    const json list = json::parse(listed->body, nullptr, false);
    if (!list.is_object()) return make_error(Errc::kUnavailable, "list " + resource + ": the answer is not JSON");
    if (on_list(list.value("items", json::array()))) return true;
    std::string rv = list.contains("metadata") ? list["metadata"].value("resourceVersion", "") : "";

    bool gone = false;
    while (!gone) {
      const auto now = clock::now();
      if (now >= deadline) return false;
      const auto remaining = std::chrono::duration_cast<std::chrono::seconds>(deadline - now).count() + 1;
      const std::string path = collection_path + "?" + (filter.empty() ? "" : filter + "&") +
                               "watch=1&resourceVersion=" + query_value(rv) +
                               "&timeoutSeconds=" + std::to_string(remaining);
      std::string pending;
      bool done = false;
      Status failure;
      // Watch events are JSON objects, one per line; a line may arrive in pieces.
      auto on_data = [&](std::string_view data) {
        pending.append(data);
        std::size_t start = 0;
        for (auto nl = pending.find('\n', start); nl != std::string::npos; nl = pending.find('\n', start)) {
          const std::string line = pending.substr(start, nl - start);
          start = nl + 1;
          if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
          const json event = json::parse(line, nullptr, false);
          if (!event.is_object() || !event.contains("object")) {
            failure = make_error(Errc::kUnavailable, "watch " + resource + ": malformed event: " + line.substr(0, 200));
            return false;
          }
          const std::string type = event.value("type", "");
          const json& object = event["object"];
          if (type == "ERROR") {
            if (object.value("code", 0) == 410) {
              gone = true;  // the resourceVersion is too old: list again
            } else {
              failure = make_error(Errc::kUnavailable, "watch " + resource + ": " + object.value("message", line));
            }
            return false;
          }
          if (object.contains("metadata")) rv = object["metadata"].value("resourceVersion", rv);
          if (type == "BOOKMARK") continue;
          if (on_event(type, object)) {
            done = true;
            return false;
          }
        }
        pending.erase(0, start);
        return true;
      };
      auto watched = client.stream(path, on_data, std::chrono::seconds(remaining + 5));
      if (!watched) return watched.error();
      if (!failure) return failure.error();
      if (done) return true;
      if (watched->status == 410)
        gone = true;
      else if (!watched->ok())
        return api_error(*watched, client.config(), "watch", resource);
    }
  }
}

}  // namespace zeppelin::kube
