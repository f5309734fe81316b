#include "kubernetes/render.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "common/strings.h"
#include "kubernetes/labels.h"
#include "common/yaml_emitter.h"
#include "spec/parser.h"
#include "spec/replica_contract.h"

namespace zeppelin::kubernetes {
namespace {

namespace fs = std::filesystem;
// Insertion-ordered, so that objects read as kubectl prints them (apiVersion,
// kind, metadata, spec); the order is fixed by this code, hence deterministic.
using json = nlohmann::ordered_json;
using spec::Location;
using spec::Service;
namespace var = spec::replica_env;

constexpr std::int64_t kConfigMapLimit = 1024 * 1024;  // the API server's limit on a ConfigMap's data
constexpr int kEtcdMembers = 3;
constexpr int kEtcdClientPort = 2379;
constexpr int kEtcdPeerPort = 2380;
constexpr int kWorkloadNameMax = 52;  // StatefulSet pods carry a controller-revision-hash label NAME-HASH of <= 63
constexpr const char* kPodIndexLabel = "apps.kubernetes.io/pod-index";
constexpr const char* kJobIndexAnnotation = "batch.kubernetes.io/job-completion-index";
constexpr const char* kConfigHashAnnotation = "zeppelin/config-hash";

// The variables of the replica contract the kubelet expands: "$(NAME)" in
// env values, command and args; "$NAME" in the shell of an init container.
std::string kubelet_ref(const char* variable) { return std::string("$(") + variable + ")"; }
std::string shell_ref(const char* variable) { return std::string("$") + variable; }

int seconds_up(Duration d) {
  const auto ms = d.count();
  return static_cast<int>(std::max<std::int64_t>(1, (ms + 999) / 1000));
}

// FNV-1a, 64 bits: a stable fingerprint of rendered configuration.
std::string fingerprint(const std::string& text) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  static const char* hex = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<std::size_t>(i)] = hex[h & 0xf];
  return out;
}

// Text a ConfigMap's `data` can hold; anything else goes to `binaryData`.
bool valid_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t extra = 0;
    if (c < 0x80)
      extra = 0;
    else if ((c >> 5) == 0x6)
      extra = 1;
    else if ((c >> 4) == 0xe)
      extra = 2;
    else if ((c >> 3) == 0x1e)
      extra = 3;
    else
      return false;
    if (i + extra >= s.size() && extra > 0) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += extra + 1;
  }
  return true;
}

// The kubelet expands $(VAR) and "$$" in env values, command and args.
std::string escape_dollars(const std::string& text) {
  std::string out;
  for (char c : text) {
    out += c;
    if (c == '$') out += '$';
  }
  return out;
}

std::string base64(const std::string& in) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const std::uint32_t n = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                            static_cast<unsigned char>(in[i + 2]);
    out += table[(n >> 18) & 63];
    out += table[(n >> 12) & 63];
    out += table[(n >> 6) & 63];
    out += table[n & 63];
  }
  if (i < in.size()) {
    std::uint32_t n = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) n |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += table[(n >> 18) & 63];
    out += table[(n >> 12) & 63];
    out += i + 1 < in.size() ? table[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// A port name Kubernetes accepts on a container (IANA_SVC_NAME): at most 15
// of [a-z0-9-], at least one letter, no "--", not starting or ending with '-'.
bool is_iana_service_name(const std::string& name) {
  if (!spec::is_dns_label(name) || name.size() > 15) return false;
  if (name.find("--") != std::string::npos) return false;
  return std::any_of(name.begin(), name.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

// Converts a value in the spec's ${VAR} syntax to Kubernetes' $(VAR) syntax,
// which the kubelet expands in env values, command and args from variables
// defined earlier in the container's env. A variable the cluster does not
// define takes its default, or is an error.
struct Converted {
  std::string text;     // for `value`, `command`, `args`: '$' escaped as "$$"
  std::string literal;  // the value itself, when it refers to no variable
  bool has_refs = false;
};

Result<Converted> convert_value(const std::string& raw, const std::set<std::string>& defined, bool replica_defined) {
  Converted out;
  if (raw.find('$') == std::string::npos) {  // the common case
    out.text = raw;
    out.literal = raw;
    return out;
  }
  for (std::size_t i = 0; i < raw.size(); ++i) {
    auto literal = [&](char c) {
      out.literal += c;
      out.text += c;
      if (c == '$') out.text += '$';
    };
    if (raw[i] != '$' || i + 1 >= raw.size()) {
      literal(raw[i]);
      continue;
    }
    if (raw[i + 1] == '$') {
      literal('$');
      ++i;
      continue;
    }
    if (raw[i + 1] != '{') {
      literal('$');
      continue;
    }
    const auto close = raw.find('}', i + 2);
    if (close == std::string::npos) return make_error(Errc::kInvalidArgument, "unterminated \"${\" in \"" + raw + "\"");
    std::string name = raw.substr(i + 2, close - i - 2);
    std::optional<std::string> fallback;
    if (auto sep = name.find(":-"); sep != std::string::npos) {
      fallback = name.substr(sep + 2);
      name.resize(sep);
    }
    const bool valid = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
    if (!valid) return make_error(Errc::kInvalidArgument, "invalid variable reference \"${" + name + "}\"");
    if (defined.count(name)) {
      out.text += "$(" + name + ")";
      out.has_refs = true;
    } else if (fallback) {
      for (char c : *fallback) literal(c);
    } else if (name == var::kReplica && !replica_defined) {
      return make_error(Errc::kInvalidArgument, std::string("${") + var::kReplica +
                                                    "} has no value in a Deployment, whose pods have no ordinal; "
                                                    "use mode: stateful, or give a default (${" +
                                                    var::kReplica + ":-0})");
    } else {
      return make_error(Errc::kInvalidArgument, "${" + name +
                                                    "} is not defined in the cluster (only the replica contract and "
                                                    "earlier env entries are); give a default: ${" +
                                                    name + ":-VALUE}");
    }
    i = close;
  }
  return out;
}

// The objects below are built field by field, with room for their fields
// reserved: nlohmann's nested initializer lists build a temporary [key, value]
// array per field, and growing an object one field at a time reallocates it;
// allocation is most of the cost of rendering a large system.
json object_of(std::size_t fields) {
  json o = json::object();
  o.get_ref<json::object_t&>().reserve(fields);
  return o;
}

json labels_for(const std::string& system, const std::string& name, const std::string& component) {
  json labels = object_of(5);
  labels[kNameLabel] = name;
  labels[kInstanceLabel] = system;
  labels[kComponentLabel] = component;
  labels[kPartOfLabel] = system;
  labels[kManagedByLabel] = kManager;
  return labels;
}

json selector_for(const json& labels) {
  json sel = object_of(3);
  for (const char* key : {kNameLabel, kInstanceLabel, kComponentLabel}) {
    sel[key] = labels[key];
  }
  return sel;
}

// {name, valueFrom: {SOURCE: ref}}
json env_from(const std::string& name, const char* source, json ref) {
  json from = object_of(1);
  from[source] = std::move(ref);
  json entry = object_of(2);
  entry["name"] = name;
  entry["valueFrom"] = std::move(from);
  return entry;
}

json field_ref(const std::string& name, const std::string& path) {
  json ref = object_of(1);
  ref["fieldPath"] = path;
  return env_from(name, "fieldRef", std::move(ref));
}

json secret_ref(const std::string& name, const spec::SecretRef& ref) {
  json key_ref = object_of(2);
  key_ref["name"] = ref.name;
  key_ref["key"] = ref.key;
  return env_from(name, "secretKeyRef", std::move(key_ref));
}

json env_value(const std::string& name, std::string value) {
  json entry = object_of(2);
  entry["name"] = name;
  entry["value"] = std::move(value);
  return entry;
}

enum class Workload { kDeployment, kStatefulSet, kJob };

// What the renderer decided about one service, needed by the others (peers,
// dependencies).
struct Plan {
  const Service* svc = nullptr;
  Workload kind = Workload::kDeployment;
  std::string name;                  // SYSTEM-SERVICE: workload, ClusterIP Service, pod name prefix
  std::string headless;              // SYSTEM-SERVICE-headless, StatefulSets only
  std::optional<std::string> peers;  // ZEPPELIN_PEERS in Kubernetes syntax; none: no stable address
};

// Hands every object, in output order, to a sink as soon as it is complete.
using Sink = std::function<void(json&&)>;

class Renderer {
 public:
  Renderer(const spec::System& system, const RenderOptions& options, Sink sink)
      : system_(system), options_(options), sink_(std::move(sink)) {}

  // Returns the warnings; on error, what the sink received must be discarded.
  Result<std::vector<std::string>> run();

 private:
  void error(Location at, std::string message) { diagnostics_.push_back({at, std::move(message)}); }

  json metadata(const std::string& name, const json& labels) const {
    json m = object_of(3);
    m["name"] = name;
    if (!options_.ns.empty()) m["namespace"] = options_.ns;
    m["labels"] = labels;
    return m;
  }
  void check_name(const Service& svc, const std::string& name, std::size_t max) {
    if (!std::isalpha(static_cast<unsigned char>(name[0]))) {
      error(svc.location, "service \"" + svc.name + "\": Kubernetes name \"" + name +
                              "\" must start with a letter (a DNS-1035 label); rename the system or service");
    } else if (name.size() > max) {
      error(svc.location, "service \"" + svc.name + "\": Kubernetes name \"" + name + "\" is longer than " +
                              std::to_string(max) + " characters; shorten the system or service name");
    }
  }
  void add(json object, const Service* owner) {
    const std::string key = object["kind"].get<std::string>() + "/" + object["metadata"]["name"].get<std::string>();
    if (!names_.insert(key).second) {
      error(owner ? owner->location : Location{1, 1},
            "two objects would be named " + key + "; rename a service or volume");
    }
    sink_(std::move(object));
  }

  Plan plan(const Service& svc);
  void render_etcd();
  void render_service(const Plan& plan);
  json container_env(const Plan& plan, json& config_data, std::set<std::string>& defined);
  std::optional<json> wait_container(const Plan& plan);
  json probe(const Service& svc, const spec::HealthCheck& check) const;
  std::optional<json> directory_config_map(const Service& svc, const spec::Volume& vol, const std::string& name,
                                           json& items);
  std::string pod_dns(const std::string& workload, const std::string& headless, const std::string& ordinal) const {
    return workload + "-" + ordinal + "." + headless + "." + kubelet_ref(var::kNamespace) + ".svc";
  }

  const spec::System& system_;
  const RenderOptions& options_;
  std::vector<spec::Diagnostic> diagnostics_;
  std::map<std::string, Plan> plans_;
  std::set<std::string> names_;  // KIND/NAME of every object, to catch collisions
  std::string etcd_endpoints_;   // ZEPPELIN_ETCD_ENDPOINTS in Kubernetes syntax
  Sink sink_;
  std::vector<std::string> warnings_;
};

Plan Renderer::plan(const Service& svc) {
  Plan p;
  p.svc = &svc;
  p.name = system_.name + "-" + svc.name;
  const bool per_replica_storage = std::any_of(svc.volumes.begin(), svc.volumes.end(),
                                               [](const spec::Volume& v) { return !v.source && !v.read_only; });
  if (svc.mode == spec::Mode::kStateful || per_replica_storage) {
    p.kind = Workload::kStatefulSet;
    p.headless = p.name + "-headless";
  } else if (svc.restart != spec::RestartPolicy::kAlways) {
    p.kind = Workload::kJob;
  }
  if (p.kind == Workload::kStatefulSet) {
    std::vector<std::string> members;
    members.reserve(static_cast<std::size_t>(svc.replicas));
    for (int i = 0; i < svc.replicas; ++i) {
      members.push_back(var::endpoint(svc, pod_dns(p.name, p.headless, std::to_string(i))));
    }
    p.peers = var::join_list(members);
  } else if (!svc.ports.empty()) {
    p.peers = var::endpoint(svc, p.name + "." + kubelet_ref(var::kNamespace) + ".svc");
  }
  return p;
}

json Renderer::probe(const Service& svc, const spec::HealthCheck& check) const {
  json handler;
  json port = check.port;
  for (const auto& p : svc.ports) {
    if (p.port == check.port && is_iana_service_name(p.name)) port = p.name;
  }
  switch (check.kind) {
    case spec::HealthCheck::Kind::kHttp:
      handler["httpGet"] = {{"path", check.path}, {"port", port}};
      break;
    case spec::HealthCheck::Kind::kTcp:
      handler["tcpSocket"] = {{"port", port}};
      break;
    case spec::HealthCheck::Kind::kExec:
      handler["exec"] = {{"command", check.exec}};
      break;
  }
  return handler;
}

json Renderer::container_env(const Plan& plan, json& config_data, std::set<std::string>& defined) {
  const Service& svc = *plan.svc;
  json env = json::array();
  env.get_ref<json::array_t&>().reserve(16 + svc.ports.size() + svc.depends_on.size() + svc.volumes.size() +
                                        svc.env.size() + svc.secret_env.size());
  auto set = [&](json entry) {
    const std::string& name = entry.at("name").get_ref<const std::string&>();
    // A later entry of the same name replaces the earlier one (an apply
    // rejects duplicate names), as it overrides it locally.
    if (!defined.insert(name).second) {
      for (auto it = env.begin(); it != env.end(); ++it) {
        if (it->at("name").get_ref<const std::string&>() == name) {
          env.erase(it);
          break;
        }
      }
    }
    env.push_back(std::move(entry));
  };
  auto literal = [&](const std::string& name, std::string value) { set(env_value(name, std::move(value))); };

  set(field_ref(var::kNamespace, "metadata.namespace"));
  set(field_ref(var::kPod, "metadata.name"));
  set(field_ref(var::kHost, "status.podIP"));
  if (plan.kind == Workload::kStatefulSet) {
    set(field_ref(var::kReplica, std::string("metadata.labels['") + kPodIndexLabel + "']"));
  } else if (plan.kind == Workload::kJob) {
    set(field_ref(var::kReplica, std::string("metadata.annotations['") + kJobIndexAnnotation + "']"));
  }
  literal(var::kSystem, system_.name);
  literal(var::kService, svc.name);
  literal(var::kReplicas, std::to_string(svc.replicas));
  for (auto& [name, value] : var::port_variables(svc)) literal(name, std::move(value));
  if (plan.peers) literal(var::kPeers, *plan.peers);
  for (const auto& dep : svc.depends_on) {
    const Plan& d = plans_.at(dep);
    if (d.peers) {
      literal(var::dependency_variable(dep), *d.peers);
    } else {
      warnings_.push_back("service \"" + svc.name + "\": " + var::dependency_variable(dep) + " is not set: \"" + dep +
                          "\" has no ports, so no stable address in the cluster");
    }
  }
  for (const auto& v : svc.volumes) literal(var::volume_variable(v.name), escape_dollars(v.path));
  if (system_.etcd) {
    literal(var::kEtcdEndpoints, escape_dollars(var::join_list(system_.etcd->endpoints)));
    literal(var::kEtcdPrefix, escape_dollars(system_.etcd->prefix));
    if (system_.etcd->password) {
      literal(var::kEtcdUser, escape_dollars(system_.etcd->user));
      set(secret_ref(var::kEtcdPassword, *system_.etcd->password));
    }
  } else {
    literal(var::kEtcdEndpoints, etcd_endpoints_);
    literal(var::kEtcdPrefix, var::default_etcd_prefix(system_.name));
  }

  const bool replica_defined = plan.kind != Workload::kDeployment;
  for (const auto& [name, raw] : svc.env) {
    auto value = convert_value(raw, defined, replica_defined);
    if (!value) {
      error(svc.location, "service \"" + svc.name + "\": env " + name + ": " + value.error().message);
      continue;
    }
    if (value->has_refs) {
      set(env_value(name, std::move(value->text)));
    } else {
      config_data[name] = std::move(value->literal);
      json ref = object_of(2);
      ref["name"] = plan.name + "-env";
      ref["key"] = name;
      set(env_from(name, "configMapKeyRef", std::move(ref)));
    }
  }
  for (const auto& s : svc.secret_env) set(secret_ref(s.variable, s.secret));
  return env;
}

// An init container that returns once every dependency can be reached.
std::optional<json> Renderer::wait_container(const Plan& plan) {
  const Service& svc = *plan.svc;
  std::vector<std::string> steps;
  for (const auto& dep : svc.depends_on) {
    const Plan& d = plans_.at(dep);
    const Service& ds = *d.svc;
    const std::string port = ds.ports.empty() ? "" : std::to_string(ds.ports.front().port);
    if (ds.replicas == 0) continue;  // counts as ready, as locally
    if (d.kind == Workload::kStatefulSet) {
      // Every member, by its stable name: accepting connections on its first
      // port, or without ports, resolvable (the pod exists).
      const std::string host = d.name + "-$i." + d.headless + "." + shell_ref(var::kNamespace) + ".svc";
      const std::string check =
          port.empty() ? "nslookup " + host + " >/dev/null 2>&1" : "nc -z -w 2 " + host + " " + port;
      steps.push_back("for i in `seq 0 " + std::to_string(ds.replicas - 1) + "`; do until " + check +
                      "; do echo waiting for " + d.name + "-$i; sleep 2; done; done");
    } else if (!port.empty()) {
      // The ClusterIP Service forwards only to ready pods.
      steps.push_back("until nc -z -w 2 " + d.name + "." + shell_ref(var::kNamespace) + ".svc " + port +
                      "; do echo waiting for " + d.name + "; sleep 2; done");
    } else {
      warnings_.push_back("service \"" + svc.name + "\": cannot wait for \"" + dep +
                          "\" in the cluster: it has no ports and no stable pod names");
    }
  }
  if (steps.empty()) return std::nullopt;
  steps.push_back("echo dependencies ready: " + join(svc.depends_on, " "));
  return json{{"name", "wait-for-dependencies"},
              {"image", kWaitImage},
              {"command", {"sh", "-c", join(steps, "\n")}},
              {"env", json::array({field_ref(var::kNamespace, "metadata.namespace")})}};
}

std::optional<json> Renderer::directory_config_map(const Service& svc, const spec::Volume& vol, const std::string& name,
                                                   json& items) {
  const std::string where = "service \"" + svc.name + "\": volume " + vol.name + ": ";
  std::vector<fs::path> files;
  std::error_code ec;
  std::uintmax_t listed = 0;
  auto too_large = [&] {
    error(svc.location,
          where + *vol.source + " holds more than a ConfigMap can (1 MiB); put the files in the image instead");
  };
  for (fs::recursive_directory_iterator it(*vol.source, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) continue;
    if (!it->is_regular_file(ec)) {
      error(svc.location, where + it->path().string() + " is not a regular file; a ConfigMap holds only files");
      return std::nullopt;
    }
    listed += it->file_size(ec);
    if (listed > static_cast<std::uintmax_t>(kConfigMapLimit)) {  // stop early: `source` may be a large tree
      too_large();
      return std::nullopt;
    }
    files.push_back(it->path());
  }
  if (ec) {
    error(svc.location, where + "cannot read " + *vol.source + ": " + ec.message());
    return std::nullopt;
  }
  std::sort(files.begin(), files.end());
  json data = json::object();
  json binary = json::object();
  std::int64_t total = 0;
  for (const auto& file : files) {
    const std::string rel = fs::relative(file, *vol.source).generic_string();
    std::string key = rel;
    std::replace(key.begin(), key.end(), '/', '.');
    const bool key_ok = key.size() <= 253 && std::all_of(key.begin(), key.end(), [](char c) {
                          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
                        });
    if (!key_ok || data.contains(key) || binary.contains(key)) {
      error(svc.location,
            where + "file \"" + rel +
                "\" cannot be a ConfigMap key (letters, digits, '-', '_', '.'; unique once '/' becomes '.')");
      return std::nullopt;
    }
    std::ifstream in(file, std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    if (!in) {
      error(svc.location, where + "cannot read " + file.string());
      return std::nullopt;
    }
    const std::string text = content.str();
    total += static_cast<std::int64_t>(text.size());
    if (valid_utf8(text))
      data[key] = text;
    else
      binary[key] = base64(text);
    items.push_back({{"key", key}, {"path", rel}});
  }
  if (total > kConfigMapLimit) {  // the files grew since they were listed
    too_large();
    return std::nullopt;
  }
  json cm = {{"apiVersion", "v1"},
             {"kind", "ConfigMap"},
             {"metadata", metadata(name, labels_for(system_.name, svc.name, svc.name))}};
  if (!data.empty()) cm["data"] = data;
  if (!binary.empty()) cm["binaryData"] = binary;
  return cm;
}

void Renderer::render_etcd() {
  const std::string name = system_.name + "-zeppelin-etcd";
  const json labels = labels_for(system_.name, "etcd", "store");
  const json selector = selector_for(labels);
  const std::string member_dns = ".$(POD_NAMESPACE).svc";
  std::vector<std::string> cluster;
  std::vector<std::string> endpoints;
  for (int i = 0; i < kEtcdMembers; ++i) {
    const std::string member = name + "-" + std::to_string(i);
    cluster.push_back(member + "=http://" + member + "." + name + member_dns + ":" + std::to_string(kEtcdPeerPort));
    endpoints.push_back("http://" + member + "." + name + "." + kubelet_ref(var::kNamespace) +
                        ".svc:" + std::to_string(kEtcdClientPort));
  }
  etcd_endpoints_ = var::join_list(endpoints);
  if (name.size() > kWorkloadNameMax || !std::isalpha(static_cast<unsigned char>(name[0]))) {
    error(Location{1, 1}, "the etcd StatefulSet would be named \"" + name +
                              "\", which Kubernetes rejects (a DNS-1035 label of at most 52 characters); "
                              "shorten the system name or give store.etcd");
  }
  const json ports = {
      {{"name", "client"}, {"port", kEtcdClientPort}, {"targetPort", kEtcdClientPort}, {"protocol", "TCP"}},
      {{"name", "peer"}, {"port", kEtcdPeerPort}, {"targetPort", kEtcdPeerPort}, {"protocol", "TCP"}}};
  add({{"apiVersion", "v1"},
       {"kind", "Service"},
       {"metadata", metadata(name, labels)},
       {"spec", {{"clusterIP", "None"}, {"publishNotReadyAddresses", true}, {"selector", selector}, {"ports", ports}}}},
      nullptr);
  const std::string self = "$(POD_NAME)." + name + member_dns;
  json container = {
      {"name", "etcd"},
      {"image", kEtcdImage},
      {"command", json::array({"/usr/local/bin/etcd"})},
      {"args",
       {"--name=$(POD_NAME)", "--data-dir=/var/lib/etcd/data", "--listen-peer-urls=http://0.0.0.0:2380",
        "--listen-client-urls=http://0.0.0.0:2379", "--advertise-client-urls=http://" + self + ":2379",
        "--initial-advertise-peer-urls=http://" + self + ":2380", "--initial-cluster=" + join(cluster, ","),
        "--initial-cluster-state=new", "--initial-cluster-token=" + name}},
      {"env", {field_ref("POD_NAME", "metadata.name"), field_ref("POD_NAMESPACE", "metadata.namespace")}},
      {"ports",
       {{{"name", "client"}, {"containerPort", kEtcdClientPort}, {"protocol", "TCP"}},
        {{"name", "peer"}, {"containerPort", kEtcdPeerPort}, {"protocol", "TCP"}}}},
      {"readinessProbe",
       {{"httpGet", {{"path", "/health"}, {"port", "client"}}}, {"periodSeconds", 5}, {"timeoutSeconds", 2}}},
      {"livenessProbe", {{"tcpSocket", {{"port", "client"}}}, {"periodSeconds", 10}, {"failureThreshold", 3}}},
      {"volumeMounts", json::array({json{{"name", "data"}, {"mountPath", "/var/lib/etcd"}}})}};
  json claim = {{"metadata", {{"name", "data"}, {"labels", labels}}},
                {"spec",
                 {{"accessModes", json::array({"ReadWriteOnce"})},
                  {"resources", {{"requests", {{"storage", kDefaultVolumeSize}}}}}}}};
  add({{"apiVersion", "apps/v1"},
       {"kind", "StatefulSet"},
       {"metadata", metadata(name, labels)},
       {"spec",
        {{"replicas", kEtcdMembers},
         {"serviceName", name},
         {"podManagementPolicy", "Parallel"},  // members are ready only once a majority runs
         {"selector", {{"matchLabels", selector}}},
         {"template",
          {{"metadata", {{"labels", labels}}},
           {"spec",
            {{"containers", json::array({container})},
             {"terminationGracePeriodSeconds", 30},
             {"enableServiceLinks", false}}}}},
         {"volumeClaimTemplates", json::array({claim})}}}},
      nullptr);
}

void Renderer::render_service(const Plan& plan) {
  const Service& svc = *plan.svc;
  const json labels = labels_for(system_.name, svc.name, svc.name);
  const json selector = selector_for(labels);
  check_name(svc, plan.name, plan.kind == Workload::kStatefulSet ? kWorkloadNameMax : 63);
  if (!plan.headless.empty()) check_name(svc, plan.headless, 63);
  for (const auto& p : svc.ports) {
    if (!is_iana_service_name(p.name)) {
      error(svc.location, "service \"" + svc.name + "\": port name \"" + p.name +
                              "\" is not a Kubernetes port name (it needs a letter and no \"--\")");
    }
  }

  if (svc.restart != spec::RestartPolicy::kAlways && plan.kind == Workload::kStatefulSet) {
    warnings_.push_back("service \"" + svc.name + "\": restart: " + spec::to_string(svc.restart) +
                        " cannot be honoured by a StatefulSet; its pods are always restarted");
  }

  std::set<std::string> defined;
  json config_data = json::object();
  json container = {{"name", svc.name}, {"image", svc.image}};
  json env = container_env(plan, config_data, defined);
  const bool replica_defined = plan.kind != Workload::kDeployment;
  auto convert_args = [&](const std::vector<std::string>& args, const std::string& what) {
    json out = json::array();
    for (const auto& a : args) {
      auto v = convert_value(a, defined, replica_defined);
      if (!v)
        error(svc.location, "service \"" + svc.name + "\": " + what + ": " + v.error().message);
      else
        out.push_back(v->text);
    }
    return out;
  };
  if (svc.entrypoint) container["command"] = convert_args(*svc.entrypoint, "entrypoint");
  if (!svc.command.empty()) container["args"] = convert_args(svc.command, "command");
  if (!svc.workdir.empty()) container["workingDir"] = svc.workdir;
  container["env"] = std::move(env);
  if (!svc.ports.empty()) {
    json ports = json::array();
    for (const auto& p : svc.ports) ports.push_back({{"name", p.name}, {"containerPort", p.port}, {"protocol", "TCP"}});
    container["ports"] = ports;
  }
  json quantities = json::object();
  if (svc.resources.cpu_millis) quantities["cpu"] = format_millicores(*svc.resources.cpu_millis);
  if (svc.resources.memory_bytes) quantities["memory"] = format_bytes(*svc.resources.memory_bytes);
  if (!quantities.empty()) container["resources"] = {{"requests", quantities}, {"limits", quantities}};
  if (svc.health) {
    const auto& h = *svc.health;
    const json handler = probe(svc, h);
    json readiness = handler;
    readiness.update({{"periodSeconds", seconds_up(h.interval)},
                      {"timeoutSeconds", seconds_up(h.timeout)},
                      {"successThreshold", 1},
                      {"failureThreshold", 1}});
    json liveness = handler;
    liveness.update({{"periodSeconds", seconds_up(h.interval)},
                     {"timeoutSeconds", seconds_up(h.timeout)},
                     {"successThreshold", 1},
                     {"failureThreshold", h.retries}});
    container["readinessProbe"] = readiness;
    container["livenessProbe"] = liveness;
    if (h.start_period.count() > 0) {
      // Locally a replica gets start_period + retries x interval to pass its first check.
      json startup = handler;
      startup.update({{"periodSeconds", 1},
                      {"timeoutSeconds", seconds_up(h.timeout)},
                      {"successThreshold", 1},
                      {"failureThreshold", seconds_up(h.start_period + h.retries * h.interval)}});
      container["startupProbe"] = startup;
    }
  }

  json mounts = json::array();
  json volumes = json::array();
  json claims = json::array();
  std::vector<json> extra_objects;  // ConfigMaps and claims of host directories
  for (const auto& v : svc.volumes) {
    json mount = {{"name", v.name}, {"mountPath", v.path}};
    if (v.read_only) mount["readOnly"] = true;
    mounts.push_back(mount);
    const std::string size = v.size_bytes ? format_bytes(*v.size_bytes) : kDefaultVolumeSize;
    if (!v.source) {
      if (plan.kind == Workload::kStatefulSet) {
        claims.push_back(
            {{"metadata", {{"name", v.name}, {"labels", labels}}},
             {"spec",
              {{"accessModes", json::array({"ReadWriteOnce"})}, {"resources", {{"requests", {{"storage", size}}}}}}}});
      } else {
        // Read-only and per replica: nothing ever writes it, so it is always empty.
        volumes.push_back({{"name", v.name}, {"emptyDir", json::object()}});
      }
    } else if (v.read_only) {
      const std::string name = plan.name + "-" + v.name;
      check_name(svc, name, 253);
      json items = json::array();
      if (auto cm = directory_config_map(svc, v, name, items)) {
        config_data["\x1f" + v.name] = fingerprint(cm->dump());  // only for the config hash
        extra_objects.push_back(std::move(*cm));
      }
      volumes.push_back({{"name", v.name}, {"configMap", {{"name", name}, {"items", items}}}});
    } else {
      const std::string name = plan.name + "-" + v.name;
      check_name(svc, name, 253);
      warnings_.push_back("service \"" + svc.name + "\": volume " + v.name +
                          ": a writable host directory becomes an empty ReadWriteMany claim \"" + name +
                          "\"; its files are not copied");
      extra_objects.push_back(
          {{"apiVersion", "v1"},
           {"kind", "PersistentVolumeClaim"},
           {"metadata", metadata(name, labels)},
           {"spec",
            {{"accessModes", json::array({"ReadWriteMany"})}, {"resources", {{"requests", {{"storage", size}}}}}}}});
      volumes.push_back({{"name", v.name}, {"persistentVolumeClaim", {{"claimName", name}}}});
    }
  }
  if (!mounts.empty()) container["volumeMounts"] = mounts;

  json env_data = json::object();
  std::string config_text;
  for (auto& [k, v] : config_data.items()) {
    config_text += k + "=" + v.get<std::string>() + "\n";
    if (k[0] != '\x1f') env_data[k] = v;
  }
  if (!env_data.empty()) {
    add({{"apiVersion", "v1"},
         {"kind", "ConfigMap"},
         {"metadata", metadata(plan.name + "-env", labels)},
         {"data", env_data}},
        &svc);
  }
  for (auto& o : extra_objects) add(std::move(o), &svc);

  json service_ports = json::array();
  for (const auto& p : svc.ports) {
    service_ports.push_back({{"name", p.name}, {"port", p.port}, {"targetPort", p.port}, {"protocol", "TCP"}});
  }
  if (!svc.ports.empty()) {
    add({{"apiVersion", "v1"},
         {"kind", "Service"},
         {"metadata", metadata(plan.name, labels)},
         {"spec", {{"type", "ClusterIP"}, {"selector", selector}, {"ports", service_ports}}}},
        &svc);
  }
  if (plan.kind == Workload::kStatefulSet) {
    json spec = {{"clusterIP", "None"}, {"publishNotReadyAddresses", true}, {"selector", selector}};
    if (!service_ports.empty()) spec["ports"] = service_ports;
    add({{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", metadata(plan.headless, labels)}, {"spec", spec}},
        &svc);
  }

  json pod_spec = json::object();
  if (auto wait = wait_container(plan)) pod_spec["initContainers"] = json::array({*wait});
  pod_spec["containers"] = json::array({std::move(container)});
  if (!volumes.empty()) pod_spec["volumes"] = std::move(volumes);
  // Deployments and StatefulSets accept only Always; see docs/kubernetes.md for Jobs.
  pod_spec["restartPolicy"] = plan.kind != Workload::kJob                  ? "Always"
                              : svc.restart == spec::RestartPolicy::kNever ? "Never"
                                                                           : "OnFailure";
  pod_spec["terminationGracePeriodSeconds"] = (svc.stop_grace.count() + 999) / 1000;
  // No Docker-link variables (SHOP_DB_PORT=tcp://...) beside the replica contract.
  pod_spec["enableServiceLinks"] = false;
  json template_meta = {{"labels", labels}};
  if (!config_text.empty()) template_meta["annotations"] = {{kConfigHashAnnotation, fingerprint(config_text)}};

  json workload;
  json workload_spec;
  switch (plan.kind) {
    case Workload::kDeployment:
      workload["apiVersion"] = "apps/v1";
      workload["kind"] = "Deployment";
      workload_spec = {{"replicas", svc.replicas},
                       {"selector", {{"matchLabels", selector}}},
                       {"template", {{"metadata", std::move(template_meta)}, {"spec", std::move(pod_spec)}}}};
      break;
    case Workload::kStatefulSet:
      workload["apiVersion"] = "apps/v1";
      workload["kind"] = "StatefulSet";
      workload_spec = {{"replicas", svc.replicas},
                       {"serviceName", plan.headless},
                       // A replicated service with per-replica storage starts all at once, as locally.
                       {"podManagementPolicy", svc.ordered() ? "OrderedReady" : "Parallel"},
                       {"selector", {{"matchLabels", selector}}},
                       {"template", {{"metadata", std::move(template_meta)}, {"spec", std::move(pod_spec)}}}};
      if (!claims.empty()) workload_spec["volumeClaimTemplates"] = std::move(claims);
      break;
    case Workload::kJob:
      workload["apiVersion"] = "batch/v1";
      workload["kind"] = "Job";
      workload_spec = {{"completions", svc.replicas},
                       {"parallelism", svc.replicas},
                       {"completionMode", "Indexed"},
                       {"backoffLimit", svc.restart == spec::RestartPolicy::kNever ? 0 : 6},
                       {"template", {{"metadata", std::move(template_meta)}, {"spec", std::move(pod_spec)}}}};
      break;
  }
  workload["metadata"] = metadata(plan.name, labels);
  workload["spec"] = std::move(workload_spec);
  add(std::move(workload), &svc);
}

Result<std::vector<std::string>> Renderer::run() {
  for (const auto& svc : system_.services) {
    if (!svc.is_container()) {
      error(svc.location, "service \"" + svc.name +
                              "\" has no image: a service that only runs a command cannot run in a cluster; "
                              "give it an image (or build)");
    }
    plans_.emplace(svc.name, plan(svc));
  }
  if (diagnostics_.empty()) {
    if (!system_.etcd) render_etcd();
    for (const auto& svc : system_.services) render_service(plans_.at(svc.name));
  }
  if (!diagnostics_.empty()) {
    std::stable_sort(
        diagnostics_.begin(), diagnostics_.end(), [](const spec::Diagnostic& a, const spec::Diagnostic& b) {
          return std::tie(a.location.line, a.location.column) < std::tie(b.location.line, b.location.column);
        });
    return make_error(Errc::kInvalidArgument,
                      spec::format_diagnostics(system_.file.empty() ? "<spec>" : system_.file, diagnostics_));
  }
  return std::move(warnings_);
}

// --- Output ---------------------------------------------------------------

// A List as nlohmann's dump(2) writes it, one item at a time.
constexpr std::string_view kJsonListHead = "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"List\",\n  \"items\": [";

void append_json_item(std::string& out, const json& object, bool first) {
  out += first ? "\n    " : ",\n    ";
  const std::string text = object.dump(2);
  // dump() escapes newlines inside strings, so every '\n' ends a line.
  std::size_t from = 0;
  for (std::size_t nl; (nl = text.find('\n', from)) != std::string::npos; from = nl + 1) {
    out.append(text, from, nl + 1 - from);
    out += "    ";
  }
  out.append(text, from, std::string::npos);
}

void append_json_tail(std::string& out, bool empty) { out += empty ? "]\n}\n" : "\n  ]\n}\n"; }

Status check_options(const RenderOptions& options) {
  if (!options.ns.empty() && !spec::is_dns_label(options.ns)) {
    return make_error(Errc::kInvalidArgument,
                      "invalid namespace \"" + options.ns +
                          "\": must be a DNS-1123 label (lowercase letters, digits and '-', at most 63)");
  }
  return ok_status();
}

}  // namespace

Result<Manifest> render(const spec::System& system, const RenderOptions& options) {
  if (auto checked = check_options(options); !checked) return checked.error();
  Manifest manifest;
  auto warnings = Renderer(system, options, [&](json&& o) { manifest.objects.push_back(std::move(o)); }).run();
  if (!warnings) return warnings.error();
  manifest.warnings = std::move(*warnings);
  return manifest;
}

Result<std::string> render_to(const spec::System& system, const RenderOptions& options, Format format,
                              std::vector<std::string>* warnings) {
  if (auto checked = check_options(options); !checked) return checked.error();
  std::string out;
  out.reserve(8192 * (2 + system.services.size()));  // a service takes 2-8 kB
  bool first = true;
  if (format == Format::kJson) out += kJsonListHead;
  auto result = Renderer(system, options, [&](json&& o) {
                  if (format == Format::kJson)
                    append_json_item(out, o, first);
                  else
                    append_yaml_document(out, o);
                  first = false;
                }).run();
  if (!result) return result.error();
  if (format == Format::kJson) append_json_tail(out, first);
  if (warnings) *warnings = std::move(*result);
  return out;
}

std::string to_yaml(const std::vector<json>& objects) {
  std::string out;
  out.reserve(objects.size() * 4096);
  for (const auto& object : objects) append_yaml_document(out, object);
  return out;
}

std::string to_json(const std::vector<json>& objects) {
  std::string out(kJsonListHead);
  for (std::size_t i = 0; i < objects.size(); ++i) append_json_item(out, objects[i], i == 0);
  append_json_tail(out, objects.empty());
  return out;
}

std::string format_bytes(std::int64_t bytes) {
  static const std::pair<const char*, std::int64_t> units[] = {
      {"Ti", 1LL << 40},      {"Gi", 1LL << 30},   {"Mi", 1LL << 20}, {"Ki", 1LL << 10},
      {"T", 1000000000000LL}, {"G", 1000000000LL}, {"M", 1000000LL},  {"k", 1000LL}};
  // The shortest exact form; binary first on a tie.
  std::string best = std::to_string(bytes);
  std::int64_t best_count = bytes;
  for (const auto& [suffix, size] : units) {
    if (bytes % size == 0 && bytes / size < best_count) {
      best_count = bytes / size;
      best = std::to_string(best_count) + suffix;
    }
  }
  return best;
}

std::string format_millicores(std::int64_t millis) {
  if (millis % 1000 == 0) return std::to_string(millis / 1000);
  return std::to_string(millis) + "m";
}

}  // namespace zeppelin::kubernetes
