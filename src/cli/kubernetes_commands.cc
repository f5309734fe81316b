#include "cli/kubernetes_commands.h"


#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "cli/exit.h"
#include "common/units.h"
#include "kube_client/client.h"
#include "kube_client/kubeconfig.h"
#include "kube_client/resources.h"
#include "kubernetes/labels.h"
#include "kubernetes/render.h"
#include "spec/parser.h"

namespace zeppelin::cli {

namespace {

using nlohmann::json;
using clock = std::chrono::steady_clock;

constexpr const char* kFieldManager = "zeppelin";

// What deploy creates and stop/prune delete, in deletion order (workloads
// first, so that pods stop before their configuration goes). PVCs are kept
// unless asked for.
const char* const kOwnedKinds[] = {"Deployment", "StatefulSet", "Job", "Service", "ConfigMap"};

// Errors from the cluster are runtime failures, whatever their kind.
int fail_cluster(const Error& e) { return fail(e.message, kFailure); }

struct Session {
  kube::ClusterConfig config;
  std::unique_ptr<kube::Client> client;
  std::string ns;
};

Result<Session> connect(const KubernetesArgs& args) {
  auto config = kube::load_config(kube::options_from_environment(args.context));
  if (!config) return config.error();
  auto client = kube::Client::create(*config);
  if (!client) return client.error();
  Session s{*config, std::move(*client), args.ns.empty() ? config->ns : args.ns};
  return s;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// "deployment.apps/shop-web", as kubectl prints objects.
std::string object_name(const kube::ResourceType& type, const std::string& name) {
  const auto slash = type.group_version.find('/');
  return lower(type.kind) + (slash == std::string::npos ? "" : "." + type.group_version.substr(0, slash)) + "/" + name;
}

std::string name_of(const json& object) { return object["metadata"].value("name", ""); }

std::string label(const json& object, const char* key) {
  const json& metadata = object["metadata"];
  if (!metadata.contains("labels") || !metadata["labels"].is_object()) return "";
  return metadata["labels"].value(key, "");
}

// Deletes the objects of `kind` carrying the system's labels, except those in
// `keep`. Background propagation: the garbage collector removes their pods.
Status delete_owned(Session& s, const std::string& system, const std::string& kind, const std::set<std::string>& keep,
                    const char* why) {
  const auto type = kube::resource_type(kind);
  auto listed = s.client->request(
      "GET", type->collection_path(s.ns) + "?labelSelector=" + kube::query_value(kubernetes::system_selector(system)));
  if (!listed) return listed.error();
  if (!listed->ok()) return kube::api_error(*listed, s.config, "list", type->display() + " in namespace " + s.ns);
  const json list = json::parse(listed->body, nullptr, false);
  if (!list.is_object()) return make_error(Errc::kUnavailable, "list " + type->display() + ": the answer is not JSON");
  for (const auto& item : list.value("items", json::array())) {
    const std::string name = name_of(item);
    if (keep.contains(name)) continue;
    auto deleted = s.client->request("DELETE", type->object_path(s.ns, name) + "?propagationPolicy=Background");
    if (!deleted) return deleted.error();
    if (!deleted->ok() && deleted->status != 404) {
      return kube::api_error(*deleted, s.config, "delete", type->display() + " \"" + name + "\" in namespace " + s.ns);
    }
    std::cout << object_name(*type, name) << " deleted" << why << "\n";
  }
  return ok_status();
}

// ---- rollout -------------------------------------------------------------

struct Rollout {
  std::string kind;
  std::string service;
  long desired = 0;
  long updated = 0, ready = 0, available = 0;
  bool observed = false;  // status.observedGeneration caught up with metadata.generation
  bool done = false;
  std::string line(std::size_t width = 0) const {
    std::string text = service + ": ";
    if (text.size() < width + 2) text.append(width + 2 - text.size(), ' ');
    if (done) return text + std::to_string(ready) + "/" + std::to_string(desired) + " ready";
    if (!observed) return text + "waiting for the controller";
    return text + std::to_string(updated) + "/" + std::to_string(desired) + " updated, " + std::to_string(ready) + "/" +
           std::to_string(desired) + " ready, " + std::to_string(available) + "/" + std::to_string(desired) +
           " available";
  }
};

void update_rollout(Rollout& r, const json& object) {
  const json& status = object.value("status", json::object());
  const json& spec = object.value("spec", json::object());
  r.desired = spec.value("replicas", 1L);
  r.updated = status.value("updatedReplicas", 0L);
  r.ready = status.value("readyReplicas", 0L);
  r.available = status.value("availableReplicas", 0L);
  r.observed = status.value("observedGeneration", 0L) >= object["metadata"].value("generation", 0L);
  bool done = r.observed && r.updated >= r.desired && r.ready >= r.desired && r.available >= r.desired;
  if (r.kind == "Deployment") {
    done = done && status.value("replicas", 0L) == r.desired;  // no pods of an old version left
  } else {
    const std::string current = status.value("currentRevision", "");
    const std::string update = status.value("updateRevision", "");
    done = done && (current.empty() || update.empty() || current == update);
  }
  r.done = done;
}

// The rollout lines: on a terminal one line per service rewritten in place,
// otherwise a plain line whenever a service's line changes.
class Progress {
 public:
  Progress(std::vector<std::string> order, const std::map<std::string, Rollout>& rollouts)
      : order_(std::move(order)), tty_(::isatty(STDOUT_FILENO) == 1) {
    for (const auto& [_, r] : rollouts) width_ = std::max(width_, r.service.size());
  }

  // REQUIRES: the caller holds the lock guarding `rollouts`.
  void draw(const std::map<std::string, Rollout>& rollouts) {
    if (tty_) {
      std::string out;
      if (drawn_) out += "\033[" + std::to_string(order_.size()) + "A";
      for (const auto& name : order_) out += "\r\033[2K" + rollouts.at(name).line(width_) + "\n";
      drawn_ = true;
      std::cout << out << std::flush;
      return;
    }
    for (const auto& name : order_) {
      const std::string line = rollouts.at(name).line(width_);
      if (last_[name] != line) std::cout << line << "\n";
      last_[name] = line;
    }
    std::cout << std::flush;
  }

 private:
  std::vector<std::string> order_;
  bool tty_;
  bool drawn_ = false;
  std::size_t width_ = 0;  // of the longest service name, to align the counts
  std::map<std::string, std::string> last_;
};

// Why the pods of `system` are not ready: waiting reasons of containers
// (ImagePullBackOff, CrashLoopBackOff, ...) and unschedulable pods.
std::vector<std::string> pod_problems(Session& s, const std::string& system) {
  std::vector<std::string> problems;
  auto listed = s.client->request("GET", kube::resource_type("Pod")->collection_path(s.ns) + "?labelSelector=" +
                                             kube::query_value(kubernetes::system_selector(system)));
  if (!listed || !listed->ok()) return problems;
  const json list = json::parse(listed->body, nullptr, false);
  if (!list.is_object()) return problems;
  for (const auto& pod : list.value("items", json::array())) {
    const std::string name = name_of(pod);
    const json& status = pod.value("status", json::object());
    for (const auto& condition : status.value("conditions", json::array())) {
      if (condition.value("type", "") == "PodScheduled" && condition.value("status", "") == "False") {
        problems.push_back("pod " + name + ": " + condition.value("reason", "Unschedulable") + ": " +
                           condition.value("message", ""));
      }
    }
    for (const char* key : {"initContainerStatuses", "containerStatuses"}) {
      for (const auto& cs : status.value(key, json::array())) {
        const json& state = cs.value("state", json::object());
        if (state.contains("waiting")) {
          const std::string reason = state["waiting"].value("reason", "");
          if (reason.empty() || reason == "ContainerCreating" || reason == "PodInitializing") continue;
          std::string text = "pod " + name + " container " + cs.value("name", "") + ": " + reason;
          const std::string message = state["waiting"].value("message", "");
          if (!message.empty()) text += ": " + message;
          problems.push_back(text);
        } else if (state.contains("running") && !cs.value("ready", false)) {
          problems.push_back("pod " + name + " container " + cs.value("name", "") + ": running but not ready");
        }
      }
    }
  }
  return problems;
}

int wait_for_rollout(Session& s, const std::string& system, const std::vector<nlohmann::ordered_json>& objects,
                     std::chrono::milliseconds timeout) {
  std::mutex mu;
  std::map<std::string, Rollout> rollouts;  // by workload name; GUARDED_BY(mu)
  std::vector<std::string> order;
  for (const auto& object : objects) {
    const std::string kind = object.value("kind", "");
    if (kind != "Deployment" && kind != "StatefulSet") continue;
    const std::string name = object["metadata"].value("name", "");
    std::string service = object["metadata"]["labels"].value(kubernetes::kNameLabel, name);
    rollouts[name] = Rollout{kind, service, object["spec"].value("replicas", 1L)};
    order.push_back(name);
  }
  if (order.empty()) return kOk;
  Progress progress(order, rollouts);
  {
    std::lock_guard<std::mutex> lock(mu);
    progress.draw(rollouts);
  }
  const auto deadline = clock::now() + timeout;
  auto kind_done = [&](const std::string& kind) {
    return std::all_of(rollouts.begin(), rollouts.end(),
                       [&](const auto& kv) { return kv.second.kind != kind || kv.second.done; });
  };
  auto follow = [&](const std::string& kind) -> Status {
    // Each kind has a watch of its own, on a connection of its own.
    const auto type = kube::resource_type(kind);
    auto apply = [&](const json& object) {
      auto it = rollouts.find(name_of(object));
      if (it == rollouts.end() || it->second.kind != kind) return;
      update_rollout(it->second, object);
    };
    auto result = kube::list_and_watch(
        *s.client, type->collection_path(s.ns), kubernetes::system_selector(system), deadline,
        [&](const json& items) {
          std::lock_guard<std::mutex> lock(mu);
          for (const auto& item : items) apply(item);
          progress.draw(rollouts);
          return kind_done(kind);
        },
        [&](const std::string& type_name, const json& object) {
          std::lock_guard<std::mutex> lock(mu);
          if (type_name == "ADDED" || type_name == "MODIFIED") apply(object);
          progress.draw(rollouts);
          return kind_done(kind);
        });
    if (!result) return result.error();
    return ok_status();
  };
  std::vector<std::string> kinds;
  for (const auto& [_, r] : rollouts) {
    if (std::find(kinds.begin(), kinds.end(), r.kind) == kinds.end()) kinds.push_back(r.kind);
  }
  std::vector<Status> results(kinds.size());
  {
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < kinds.size(); ++i) threads.emplace_back([&, i] { results[i] = follow(kinds[i]); });
    for (auto& t : threads) t.join();
  }
  for (const auto& r : results) {
    if (!r) return fail_cluster(r.error());
  }
  std::vector<std::string> pending;
  for (const auto& name : order) {
    if (!rollouts[name].done) pending.push_back(rollouts[name].line());
  }
  if (pending.empty()) {
    std::cout << "system " << system << " is ready in namespace " << s.ns << "\n";
    return kOk;
  }
  std::string message = "timed out after " + format_duration(timeout) + " waiting for the rollout of " + system + ":";
  for (const auto& p : pending) message += "\n  " + p;
  const auto problems = pod_problems(s, system);
  if (!problems.empty()) message += "\npods:";
  for (const auto& p : problems) message += "\n  " + p;
  return fail(message);
}

Result<spec::System> load_system(const std::string& path) {
  std::error_code ec;
  const std::string file =
      std::filesystem::is_directory(path, ec) ? (std::filesystem::path(path) / "zeppelin.yaml").string() : path;
  auto system = spec::load_spec_file(file);
  if (!system) return system.error();
  system->file = file;
  return system;
}

// ---- pods ----------------------------------------------------------------

struct PodRow {
  std::string service;
  long replica = 0;
  json pod;
};

// The system's pods by service and replica number: a StatefulSet's ordinal,
// a Job's completion index, otherwise the position among the service's pods.
Result<std::vector<PodRow>> list_pods(Session& s, const std::string& system, const std::string& service) {
  std::string selector = kubernetes::system_selector(system);
  if (!service.empty()) selector += std::string(",") + kubernetes::kNameLabel + "=" + service;
  auto listed = s.client->request(
      "GET", kube::resource_type("Pod")->collection_path(s.ns) + "?labelSelector=" + kube::query_value(selector));
  if (!listed) return listed.error();
  if (!listed->ok()) return kube::api_error(*listed, s.config, "list", "pods in namespace " + s.ns);
  const json list = json::parse(listed->body, nullptr, false);
  if (!list.is_object()) return make_error(Errc::kUnavailable, "list pods: the answer is not JSON");
  std::vector<PodRow> rows;
  std::map<std::string, long> next;
  std::vector<json> pods = list.value("items", json::array()).get<std::vector<json>>();
  std::sort(pods.begin(), pods.end(), [](const json& a, const json& b) { return name_of(a) < name_of(b); });
  for (const auto& pod : pods) {
    PodRow row{label(pod, kubernetes::kNameLabel), -1, pod};
    for (const char* key : {"apps.kubernetes.io/pod-index", "batch.kubernetes.io/job-completion-index"}) {
      const std::string index = label(pod, key);
      if (!index.empty() && std::all_of(index.begin(), index.end(), ::isdigit)) row.replica = std::stol(index);
    }
    if (row.replica < 0) {
      for (const auto& owner : pod["metadata"].value("ownerReferences", json::array())) {
        const std::string name = name_of(pod);
        const std::string suffix = name.substr(name.rfind('-') + 1);
        if (owner.value("kind", "") == "StatefulSet" && !suffix.empty() &&
            std::all_of(suffix.begin(), suffix.end(), ::isdigit)) {
          row.replica = std::stol(suffix);
        }
      }
    }
    if (row.replica < 0) row.replica = next[row.service]++;
    rows.push_back(std::move(row));
  }
  std::sort(rows.begin(), rows.end(), [](const PodRow& a, const PodRow& b) {
    return std::tie(a.service, a.replica) < std::tie(b.service, b.replica);
  });
  return rows;
}

std::string pad(const std::string& s, std::size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

// Seconds since an RFC 3339 timestamp ("2024-05-01T10:00:00Z"); -1 if unknown.
long seconds_since(const std::string& timestamp) {
  std::tm tm{};
  if (timestamp.size() < 19 || !::strptime(timestamp.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return -1;
  const std::time_t then = ::timegm(&tm);
  return static_cast<long>(std::time(nullptr) - then);
}

struct Target {
  std::string system, service;
  long replica = -1;
};

Result<Target> parse_target(const std::string& text) {
  Target t;
  const auto first = text.find('/');
  t.system = text.substr(0, first);
  if (first != std::string::npos) {
    const std::string rest = text.substr(first + 1);
    const auto second = rest.find('/');
    t.service = rest.substr(0, second);
    if (second != std::string::npos) {
      const std::string replica = rest.substr(second + 1);
      if (replica.empty() || !std::all_of(replica.begin(), replica.end(), ::isdigit)) {
        return make_error(Errc::kInvalidArgument, "replica in " + text + " must be a number");
      }
      t.replica = std::stol(replica);
    }
  }
  if (t.system.empty())
    return make_error(Errc::kInvalidArgument, "expected SYSTEM[/SERVICE[/REPLICA]], got \"" + text + "\"");
  return t;
}

}  // namespace

int cmd_kubernetes_deploy(const KubernetesArgs& args) {
  auto timeout = parse_duration(args.timeout);
  if (!timeout) return fail("--timeout: " + timeout.error().message, kUsage);
  auto system = load_system(args.subject);
  if (!system) return fail(system.error().message, system.error().code == Errc::kNotFound ? kFailure : kUsage);
  auto session = connect(args);
  if (!session) return fail_cluster(session.error());
  Session& s = *session;
  auto manifest = kubernetes::render(*system, {s.ns});
  if (!manifest) return fail(manifest.error().message, kUsage);
  for (const auto& w : manifest->warnings) std::cerr << "zeppelin: warning: " << w << "\n";

  // Server-side apply, object by object in render's order (ConfigMaps and
  // Services before the workloads that use them).
  std::map<std::string, std::set<std::string>> applied;  // kind -> names
  const std::string query = std::string("?fieldManager=") + kFieldManager + (args.force_conflicts ? "&force=true" : "");
  for (const auto& object : manifest->objects) {
    const std::string kind = object.value("kind", "");
    const std::string name = object["metadata"].value("name", "");
    const auto type = kube::resource_type(kind);
    if (!type) return fail("render produced an object of kind " + kind + ", which deploy does not know");
    // JSON is YAML, so the apply patch can be the object as JSON.
    auto r = s.client->request("PATCH", type->object_path(s.ns, name) + query, object.dump(),
                               "application/apply-patch+yaml");
    if (!r) return fail_cluster(r.error());
    if (!r->ok()) {
      if (r->status == 404) {
        return fail("cannot apply " + object_name(*type, name) + ": namespace \"" + s.ns +
                    "\" does not exist (create it with `kubectl create namespace " + s.ns +
                    "`): " + kube::api_error(*r, s.config, "apply", type->display()).message);
      }
      return fail_cluster(
          kube::api_error(*r, s.config, "apply (patch)", type->display() + " \"" + name + "\" in namespace " + s.ns));
    }
    applied[kind].insert(name);
    std::cout << object_name(*type, name) << (r->status == 201 ? " created" : " applied") << "\n";
  }
  // Prune what an earlier deploy of this system created and the spec no longer has.
  for (const char* kind : kOwnedKinds) {
    if (auto st = delete_owned(s, system->name, kind, applied[kind], " (no longer in the spec)"); !st)
      return fail_cluster(st.error());
  }
  if (!args.wait) return kOk;
  return wait_for_rollout(s, system->name, manifest->objects, *timeout);
}

int cmd_kubernetes_ps(const KubernetesArgs& args) {
  auto target = parse_target(args.subject);
  if (!target) return fail(target.error().message, kUsage);
  auto session = connect(args);
  if (!session) return fail_cluster(session.error());
  auto rows = list_pods(*session, target->system, target->service);
  if (!rows) return fail_cluster(rows.error());
  const std::vector<std::string> headers = {"SYSTEM", "SERVICE",  "REPLICA", "STATE",  "HEALTH",
                                            "PID",    "RESTARTS", "ADDRESS", "UPTIME", "LAST EXIT"};
  std::vector<std::vector<std::string>> table;
  for (const auto& row : *rows) {
    const json& status = row.pod.value("status", json::object());
    std::string state = lower(status.value("phase", "unknown"));
    std::string health = "-";
    long restarts = 0;
    std::string last_exit = "-";
    for (const auto& condition : status.value("conditions", json::array())) {
      if (condition.value("type", "") == "Ready")
        health = condition.value("status", "") == "True" ? "healthy" : "unhealthy";
    }
    for (const auto& cs : status.value("containerStatuses", json::array())) {
      restarts += cs.value("restartCount", 0L);
      const json& st = cs.value("state", json::object());
      if (st.contains("waiting") && !st["waiting"].value("reason", "").empty())
        state = st["waiting"].value("reason", "");
      const json& last = cs.value("lastState", json::object());
      if (last.contains("terminated")) {
        last_exit = last["terminated"].value("reason", "exited") + " (" +
                    std::to_string(last["terminated"].value("exitCode", 0)) + ")";
      }
    }
    if (row.pod["metadata"].contains("deletionTimestamp")) state = "stopping";
    const long up = state == "running" ? seconds_since(status.value("startTime", "")) : -1;
    const std::string uptime = up < 0      ? "-"
                               : up < 120  ? std::to_string(up) + "s"
                               : up < 7200 ? std::to_string(up / 60) + "m"
                                           : std::to_string(up / 3600) + "h";
    table.push_back({target->system, row.service, std::to_string(row.replica), state, health, "-",
                     std::to_string(restarts), status.value("podIP", "-"), uptime, last_exit});
  }
  std::vector<std::size_t> widths;
  for (const auto& h : headers) widths.push_back(h.size());
  for (const auto& row : table) {
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  auto print_row = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (std::size_t i = 0; i < cells.size(); ++i)
      line += i + 1 == cells.size() ? cells[i] : pad(cells[i], widths[i] + 2);
    std::cout << line << "\n";
  };
  print_row(headers);
  for (const auto& row : table) print_row(row);
  return kOk;
}

int cmd_kubernetes_logs(const KubernetesArgs& args) {
  auto target = parse_target(args.subject);
  if (!target) return fail(target.error().message, kUsage);
  auto session = connect(args);
  if (!session) return fail_cluster(session.error());
  Session& s = *session;
  auto rows = list_pods(s, target->system, target->service);
  if (!rows) return fail_cluster(rows.error());
  std::erase_if(*rows, [&](const PodRow& r) { return target->replica >= 0 && r.replica != target->replica; });
  if (rows->empty()) return fail("no pods of " + args.subject + " in namespace " + s.ns);

  std::mutex out_mu;
  auto logs_of = [&](const PodRow& row) -> Status {
    const std::string pod = name_of(row.pod);
    const json containers = row.pod.value("spec", json::object()).value("containers", json::array());
    std::string query =
        "?container=" + kube::query_value(containers.empty() ? row.service : containers[0].value("name", row.service));
    if (args.tail >= 0) query += "&tailLines=" + std::to_string(args.tail);
    const std::string path = kube::resource_type("Pod")->object_path(s.ns, pod) + "/log" + query;
    const std::string prefix = pad(row.service + "/" + std::to_string(row.replica), 12) + " | ";
    std::string pending;
    auto print_lines = [&](std::string_view data, bool flush_partial) {
      pending.append(data);
      std::string out;
      std::size_t start = 0;
      for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
        out += prefix + pending.substr(start, nl - start + 1);
        start = nl + 1;
      }
      pending.erase(0, start);
      if (flush_partial && !pending.empty()) out += prefix + pending + "\n";
      std::lock_guard<std::mutex> lock(out_mu);
      std::cout << out << std::flush;
    };
    if (!args.follow) {
      auto r = s.client->request("GET", path);
      if (!r) return r.error();
      if (!r->ok()) return kube::api_error(*r, s.config, "get", "the log of pod \"" + pod + "\" in namespace " + s.ns);
      print_lines(r->body, true);
      return ok_status();
    }
    auto r = s.client->stream(
        path + "&follow=true",
        [&](std::string_view data) {
          print_lines(data, false);
          return true;
        },
        std::chrono::milliseconds(0));
    if (!r) return r.error();
    if (!r->ok()) return kube::api_error(*r, s.config, "follow", "the log of pod \"" + pod + "\" in namespace " + s.ns);
    print_lines("", true);
    return ok_status();
  };
  std::vector<Status> results(rows->size());
  if (!args.follow) {
    for (std::size_t i = 0; i < rows->size(); ++i) results[i] = logs_of((*rows)[i]);
  } else {
    // One stream per pod, each on its own connection and thread.
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < rows->size(); ++i) threads.emplace_back([&, i] { results[i] = logs_of((*rows)[i]); });
    for (auto& t : threads) t.join();
  }
  for (const auto& r : results) {
    if (!r) return fail_cluster(r.error());
  }
  return kOk;
}

int cmd_kubernetes_stop(const KubernetesArgs& args) {
  auto timeout = parse_duration(args.timeout);
  if (!timeout) return fail("--timeout: " + timeout.error().message, kUsage);
  auto target = parse_target(args.subject);
  if (!target) return fail(target.error().message, kUsage);
  if (!target->service.empty()) return fail("stop --target kubernetes takes a SYSTEM, not " + args.subject, kUsage);
  auto session = connect(args);
  if (!session) return fail_cluster(session.error());
  Session& s = *session;
  for (const char* kind : kOwnedKinds) {
    if (auto st = delete_owned(s, target->system, kind, {}, ""); !st) return fail_cluster(st.error());
  }
  if (args.volumes) {
    if (auto st = delete_owned(s, target->system, "PersistentVolumeClaim", {}, ""); !st) return fail_cluster(st.error());
  }
  // Done when the last pod is gone: follow the pods with a watch.
  std::set<std::string> pods;
  auto gone = kube::list_and_watch(
      *s.client, kube::resource_type("Pod")->collection_path(s.ns), kubernetes::system_selector(target->system),
      clock::now() + *timeout,
      [&](const json& items) {
        pods.clear();
        for (const auto& item : items) pods.insert(name_of(item));
        return pods.empty();
      },
      [&](const std::string& type, const json& object) {
        if (type == "DELETED")
          pods.erase(name_of(object));
        else if (type == "ADDED")
          pods.insert(name_of(object));
        return pods.empty();
      });
  if (!gone) return fail_cluster(gone.error());
  if (!*gone) {
    std::string names;
    for (const auto& p : pods) names += " " + p;
    return fail("timed out after " + format_duration(*timeout) + " waiting for the pods of " + target->system +
                " to go:" + names);
  }
  std::cout << "stopped " << target->system << " in namespace " << s.ns << "\n";
  return kOk;
}

int check_kubernetes_target(const std::string& target) {
  if (target == "kubernetes") return kOk;
  return fail("--target must be kubernetes" + (target.empty() ? std::string(" for deploy") : ", not \"" + target + "\""),
              kUsage);
}

void add_deploy_command(CLI::App& app, Commands& commands) {
  struct Args {
    std::string target;
    KubernetesArgs kube;
  };
  auto args = std::make_shared<Args>();
  Args& a = *args;
  auto* deploy = app.add_subcommand("deploy", "Apply the system to a cluster and wait for its rollout");
  deploy->add_option("--target", a.target, "kubernetes: act on the system in a cluster");
  deploy->add_option("-n,--namespace", a.kube.ns, "with --target kubernetes: the namespace (default: the context's)");
  deploy->add_option("--context", a.kube.context, "with --target kubernetes: the kubeconfig context");
  deploy->add_option("file", a.kube.subject, "spec file, or a directory holding zeppelin.yaml")->required();
  deploy->add_flag("--wait,!--no-wait", a.kube.wait, "follow the rollout until every service is ready (default)");
  deploy->add_option("--timeout", a.kube.timeout, "how long to wait for the rollout")->capture_default_str();
  deploy->add_flag("--force-conflicts", a.kube.force_conflicts, "take over fields another manager owns");
  add_examples(deploy, {"zeppelin deploy --target kubernetes examples/shop -n shop",
                        "zeppelin deploy --target kubernetes . --context prod --timeout 10m"});
  commands.on(deploy, [args] {
    if (check_kubernetes_target(args->target) != kOk) return kUsage;
    return cmd_kubernetes_deploy(args->kube);
  });
}

}  // namespace zeppelin::cli
