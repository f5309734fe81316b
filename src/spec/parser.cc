#include "spec/parser.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string_view>

#include "common/utf8.h"
#include "spec/replica_contract.h"

namespace zeppelin::spec {
namespace {

namespace fs = std::filesystem;

Location location_of(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return {};
  return Location{mark.line + 1, mark.column + 1};
}

const char* kind_name(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Null: return "null";
    default: return "nothing";
  }
}

bool is_plain(const YAML::Node& node) { return node.IsScalar() && node.Tag() == "?"; }

// Splits a command line into words the way a POSIX shell does for quoting
// ('...', "...", backslash), without expansions: Compose's rule for string commands.
Result<std::vector<std::string>> split_words(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quote == '\'') {
      if (c == '\'') quote = 0;
      else word += c;
    } else if (quote == '"') {
      if (c == '"') {
        quote = 0;
      } else if (c == '\\' && i + 1 < text.size() && std::string_view("\"\\$`").find(text[i + 1]) != std::string_view::npos) {
        word += text[++i];
      } else {
        word += c;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < text.size()) {
      word += text[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (quote) return make_error(Errc::kInvalidArgument, std::string("unterminated ") + quote + " quote");
  if (in_word) words.push_back(std::move(word));
  if (words.empty()) return make_error(Errc::kInvalidArgument, "must not be empty");
  return words;
}

}  // namespace

// Checks NAME[:TAG][@DIGEST] against the shape of a Docker image reference;
// returns what is wrong, if anything.
std::optional<std::string> image_reference_problem(const std::string& ref) {
  if (ref.empty()) return "must not be empty";
  if (ref.size() > 255) return "longer than 255 characters";
  std::string name = ref;
  if (auto at = name.find('@'); at != std::string::npos) {
    const std::string digest = name.substr(at + 1);
    if (digest.find(':') == std::string::npos) return "digest \"" + digest + "\" must be ALGORITHM:HEX";
    name.resize(at);
  }
  const auto slash = name.rfind('/');
  if (auto colon = name.rfind(':'); colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    const std::string tag = name.substr(colon + 1);
    auto tag_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'; };
    if (tag.empty() || tag.size() > 128 || tag[0] == '.' || tag[0] == '-' || !std::all_of(tag.begin(), tag.end(), tag_char)) {
      return "tag \"" + tag + "\" must be 1-128 of letters, digits, '_', '.', '-', not starting with '.' or '-'";
    }
    name.resize(colon);
  }
  // The first component may be a registry host (with '.' or ':' or "localhost"),
  // which may hold capitals; the repository path must be lowercase.
  std::string path = name;
  if (auto first = name.find('/'); first != std::string::npos) {
    const std::string host = name.substr(0, first);
    if (host.find_first_of(".:") != std::string::npos || host == "localhost") path = name.substr(first + 1);
  }
  if (path.empty()) return "has no repository name";
  auto path_char = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/'; };
  if (!std::all_of(path.begin(), path.end(), path_char)) {
    return "repository name \"" + path + "\" may only hold lowercase letters, digits and . _ - /";
  }
  return std::nullopt;
}

namespace {

// Walks the YAML tree once, filling the model and collecting diagnostics.
class SpecReader {
 public:
  SpecReader(std::string base_dir, const Limits& limits, const Accounts& accounts)
      : base_dir_(std::move(base_dir)), limits_(limits), accounts_(accounts) {}

  System read(const YAML::Node& root);
  std::vector<Diagnostic>& diagnostics() { return diagnostics_; }

 private:
  void error(const YAML::Node& at, std::string message) {
    diagnostics_.push_back({location_of(at), std::move(message)});
  }
  void error(Location at, std::string message) { diagnostics_.push_back({at, std::move(message)}); }

  // Iterates a mapping's fields, reporting duplicates and fields not in `known`.
  void for_fields(const YAML::Node& map, const std::string& where, const std::vector<std::string>& known,
                  const std::function<void(const std::string&, const YAML::Node&, const YAML::Node&)>& visit);

  bool expect_map(const YAML::Node& node, const std::string& what);
  std::optional<std::string> string_of(const YAML::Node& node, const std::string& what);
  std::optional<long long> integer_of(const YAML::Node& node, const std::string& what, long long min, long long max);
  std::optional<bool> bool_of(const YAML::Node& node, const std::string& what);
  std::optional<Duration> duration_of(const YAML::Node& node, const std::string& what);
  std::vector<std::string> string_list(const YAML::Node& node, const std::string& what);
  // A list of strings, or one string split into words as a shell would (Compose's rule).
  std::vector<std::string> words_of(const YAML::Node& node, const std::string& what);
  std::string resolve_path(const std::string& path) const;

  Service read_service(const std::string& name, const YAML::Node& key, const YAML::Node& node);
  void read_command(Service& svc, const YAML::Node& node);
  void read_image(Service& svc, const YAML::Node& node);
  void read_build(Service& svc, const YAML::Node& node);
  // NAME: value pairs; with `secrets`, a value may also be {secret: NAME, key: KEY}.
  std::vector<std::pair<std::string, std::string>> read_name_values(const YAML::Node& node, const std::string& what,
                                                                    std::vector<SecretEnv>* secrets = nullptr);
  std::optional<SecretRef> read_secret_ref(const YAML::Node& node, const std::string& what);
  void read_store(System& system, const YAML::Node& node);
  void read_store_etcd(System& system, const YAML::Node& node);
  void read_env(Service& svc, const YAML::Node& node);
  void refuse_secrets_in_argv(const Service& svc, const std::vector<std::string>& argv, const YAML::Node& node,
                              const std::string& field);
  void read_ports(Service& svc, const YAML::Node& node);
  void read_volumes(Service& svc, const YAML::Node& node);
  void read_resources(Service& svc, const YAML::Node& node);
  void read_run_as(Service& svc, bool container, const std::optional<YAML::Node>& user_node,
                   const std::optional<YAML::Node>& group_node);
  void read_health(Service& svc, const YAML::Node& node, std::optional<YAML::Node>& port_ref);
  void check_dependencies(const System& system, const std::map<std::string, std::vector<YAML::Node>>& dep_nodes);

  std::string base_dir_;
  const Limits& limits_;
  const Accounts& accounts_;
  std::vector<Diagnostic> diagnostics_;
};

void SpecReader::for_fields(
    const YAML::Node& map, const std::string& where, const std::vector<std::string>& known,
    const std::function<void(const std::string&, const YAML::Node&, const YAML::Node&)>& visit) {
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      error(key, "field names in " + where + " must be strings");
      continue;
    }
    const std::string& name = key.Scalar();
    if (!seen.insert(name).second) {
      error(key, "duplicate field \"" + name + "\" in " + where);
      continue;
    }
    if (!known.empty() && std::find(known.begin(), known.end(), name) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      error(key, "unknown field \"" + name + "\" in " + where + " (expected one of: " + list + ")");
      continue;
    }
    visit(name, key, it->second);
  }
}

bool SpecReader::expect_map(const YAML::Node& node, const std::string& what) {
  if (node.IsMap()) return true;
  error(node, what + " must be a mapping, found " + kind_name(node));
  return false;
}

std::optional<std::string> SpecReader::string_of(const YAML::Node& node, const std::string& what) {
  if (!node.IsScalar()) {
    error(node, what + " must be a string, found " + kind_name(node));
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<long long> SpecReader::integer_of(const YAML::Node& node, const std::string& what, long long min,
                                                long long max) {
  if (!is_plain(node)) {
    error(node, what + " must be an integer, found " + (node.IsScalar() ? "a string" : kind_name(node)));
    return std::nullopt;
  }
  const std::string& s = node.Scalar();
  std::size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(s, &used, 10);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size()) {
    error(node, what + " must be an integer, found \"" + s + "\"");
    return std::nullopt;
  }
  if (value < min || value > max) {
    error(node, what + " must be between " + std::to_string(min) + " and " + std::to_string(max) + ", found " + s);
    return std::nullopt;
  }
  return value;
}

std::optional<bool> SpecReader::bool_of(const YAML::Node& node, const std::string& what) {
  if (is_plain(node)) {
    if (node.Scalar() == "true") return true;
    if (node.Scalar() == "false") return false;
  }
  error(node, what + " must be true or false");
  return std::nullopt;
}

std::optional<Duration> SpecReader::duration_of(const YAML::Node& node, const std::string& what) {
  auto text = string_of(node, what);
  if (!text) return std::nullopt;
  auto parsed = parse_duration(*text);
  if (!parsed) {
    error(node, what + ": " + parsed.error().message);
    return std::nullopt;
  }
  return *parsed;
}

std::vector<std::string> SpecReader::string_list(const YAML::Node& node, const std::string& what) {
  std::vector<std::string> out;
  if (!node.IsSequence()) {
    error(node, what + " must be a list of strings, found " + kind_name(node));
    return out;
  }
  for (const auto& item : node) {
    if (auto s = string_of(item, what + " item")) out.push_back(*s);
  }
  return out;
}

std::vector<std::string> SpecReader::words_of(const YAML::Node& node, const std::string& what) {
  if (!node.IsScalar()) return string_list(node, what);
  auto words = split_words(node.Scalar());
  if (!words) error(node, what + ": " + words.error().message);
  return words ? *words : std::vector<std::string>{};
}

std::string SpecReader::resolve_path(const std::string& path) const {
  fs::path p(path);
  if (p.is_relative()) p = fs::path(base_dir_) / p;
  return p.lexically_normal().string();
}

System SpecReader::read(const YAML::Node& root) {
  System system;
  if (!root.IsMap()) {
    error(root, std::string("a system spec must be a mapping with \"name\" and \"services\", found ") +
                    kind_name(root));
    return system;
  }
  std::optional<YAML::Node> name_node;
  std::optional<YAML::Node> services_node;
  std::optional<YAML::Node> store_node;
  for_fields(root, "the system", {"name", "services", "store"},
             [&](const std::string& field, const YAML::Node&, const YAML::Node& value) {
               if (field == "name") name_node = value;
               else if (field == "services") services_node = value;
               else store_node = value;
             });
  if (!name_node) {
    error(Location{1, 1}, "missing required field \"name\"");
  } else if (auto name = string_of(*name_node, "name")) {
    if (!is_dns_label(*name)) {
      error(*name_node, "invalid system name \"" + *name +
                            "\": must be a DNS-1123 label (lowercase letters, digits and '-', at most 63)");
    }
    system.name = *name;
  }
  if (store_node) read_store(system, *store_node);
  if (!services_node) {
    error(Location{1, 1}, "missing required field \"services\"");
    return system;
  }
  if (!expect_map(*services_node, "services")) return system;
  if (services_node->size() == 0) error(*services_node, "services must define at least one service");
  if (services_node->size() > static_cast<std::size_t>(limits_.max_services)) {
    // Refused before reading them: each service costs the server memory and work.
    error(*services_node, "the system has " + std::to_string(services_node->size()) + " services, over the limit of " +
                              std::to_string(limits_.max_services) +
                              " per system (zeppelin server --max-services-per-system)");
    return system;
  }

  std::map<std::string, std::vector<YAML::Node>> dep_nodes;
  long total_replicas = 0;
  std::optional<Location> over_replica_limit;  // where the total passed it
  for_fields(*services_node, "services", {}, [&](const std::string& name, const YAML::Node& key, const YAML::Node& value) {
    if (!is_dns_label(name)) {
      error(key, "invalid service name \"" + name +
                     "\": must be a DNS-1123 label (lowercase letters, digits and '-', at most 63)");
    }
    Service svc = read_service(name, key, value);
    if (value.IsMap() && value["depends_on"] && value["depends_on"].IsSequence()) {
      for (const auto& d : value["depends_on"]) dep_nodes[name].push_back(d);
    }
    total_replicas += svc.replicas;
    if (total_replicas > limits_.max_replicas_per_system && !over_replica_limit) {
      over_replica_limit = value.IsMap() && value["replicas"] ? location_of(value["replicas"]) : svc.location;
    }
    system.services.push_back(std::move(svc));
  });
  if (over_replica_limit) {
    error(*over_replica_limit, "the system wants " + std::to_string(total_replicas) +
                                   " replicas in total, over the limit of " +
                                   std::to_string(limits_.max_replicas_per_system) +
                                   " per system (zeppelin server --max-replicas-per-system)");
  }
  check_dependencies(system, dep_nodes);
  if (system.etcd && system.etcd->prefix.empty()) system.etcd->prefix = replica_env::default_etcd_prefix(system.name);
  // A service built without a named image gets a predictable tag, as Compose's PROJECT-SERVICE.
  for (auto& svc : system.services) {
    if (svc.build && svc.image.empty()) svc.image = system.name + "-" + svc.name + ":latest";
  }
  return system;
}

Service SpecReader::read_service(const std::string& name, const YAML::Node& key, const YAML::Node& node) {
  Service svc;
  svc.name = name;
  svc.location = location_of(key);
  svc.workdir = base_dir_;
  const std::string where = "service \"" + name + "\"";
  if (!expect_map(node, where)) return svc;

  // command, workdir and entrypoint mean different things for image services,
  // and `image` may come after them in the file: read them once all is seen.
  std::optional<YAML::Node> command_node;
  std::optional<YAML::Node> workdir_node;
  std::optional<YAML::Node> entrypoint_node;
  std::optional<YAML::Node> start_node;
  std::optional<YAML::Node> health_port;
  std::optional<YAML::Node> user_node;
  std::optional<YAML::Node> group_node;
  for_fields(node, where,
             {"command", "image", "entrypoint", "build", "workdir", "env", "ports", "replicas", "mode", "start",
              "resources", "volumes", "health", "restart", "stop_grace", "depends_on", "user", "group"},
             [&](const std::string& field, const YAML::Node&, const YAML::Node& value) {
               if (field == "command") {
                 command_node = value;
               } else if (field == "image") {
                 read_image(svc, value);
               } else if (field == "entrypoint") {
                 entrypoint_node = value;
               } else if (field == "build") {
                 read_build(svc, value);
               } else if (field == "workdir") {
                 workdir_node = value;
               } else if (field == "env") {
                 read_env(svc, value);
               } else if (field == "ports") {
                 read_ports(svc, value);
               } else if (field == "replicas") {
                 if (auto n = integer_of(value, "replicas", 0, 10000)) svc.replicas = static_cast<int>(*n);
               } else if (field == "mode") {
                 auto s = string_of(value, "mode");
                 if (s == "replicated") svc.mode = Mode::kReplicated;
                 else if (s == "stateful") svc.mode = Mode::kStateful;
                 else if (s) error(value, "invalid mode \"" + *s + "\" (expected replicated or stateful)");
               } else if (field == "start") {
                 start_node = value;
                 auto s = string_of(value, "start");
                 if (s == "ordered") svc.start = StartOrder::kOrdered;
                 else if (s == "parallel") svc.start = StartOrder::kParallel;
                 else if (s) error(value, "invalid start \"" + *s + "\" (expected ordered or parallel)");
               } else if (field == "resources") {
                 read_resources(svc, value);
               } else if (field == "volumes") {
                 read_volumes(svc, value);
               } else if (field == "health") {
                 read_health(svc, value, health_port);
               } else if (field == "restart") {
                 auto s = string_of(value, "restart");
                 if (s == "always") svc.restart = RestartPolicy::kAlways;
                 else if (s == "on-failure") svc.restart = RestartPolicy::kOnFailure;
                 else if (s == "never") svc.restart = RestartPolicy::kNever;
                 else if (s) error(value, "invalid restart \"" + *s + "\" (expected always, on-failure or never)");
               } else if (field == "stop_grace") {
                 if (auto d = duration_of(value, "stop_grace")) svc.stop_grace = *d;
               } else if (field == "depends_on") {
                 svc.depends_on = string_list(value, "depends_on");
               } else if (field == "user") {
                 user_node = value;
               } else if (field == "group") {
                 group_node = value;
               }
             });
  const bool container = !svc.image.empty() || svc.build;
  if (user_node || group_node) read_run_as(svc, container, user_node, group_node);
  if (command_node) {
    if (container) {
      svc.command = words_of(*command_node, "command");
    } else {
      read_command(svc, *command_node);
    }
  } else if (!container) {
    error(key, where + " is missing required field \"command\" (or \"image\")");
  }
  if (entrypoint_node) {
    if (!container) error(*entrypoint_node, "\"entrypoint\" applies only to services with an image or build");
    else svc.entrypoint = words_of(*entrypoint_node, "entrypoint");
  }
  // argv is readable by every local user (ps, /proc/PID/cmdline): a secret
  // may reach a replica through its environment, never through its arguments.
  if (!svc.shell) {
    if (command_node) refuse_secrets_in_argv(svc, svc.command, *command_node, "command");
    if (entrypoint_node && svc.entrypoint) refuse_secrets_in_argv(svc, *svc.entrypoint, *entrypoint_node, "entrypoint");
  }
  if (workdir_node) {
    if (auto s = string_of(*workdir_node, "workdir")) {
      if (!container) {
        svc.workdir = resolve_path(*s);
      } else if (s->empty() || (*s)[0] != '/') {
        error(*workdir_node, "workdir \"" + *s + "\" of an image service must be an absolute path in the container");
      } else {
        svc.workdir = *s;
      }
    }
  } else if (container) {
    svc.workdir.clear();  // the image's own
  }
  if (start_node && svc.mode != Mode::kStateful) {
    error(*start_node, "\"start\" applies only to services with mode: stateful");
  }
  // A health port given by name must name one of the service's ports.
  if (health_port && svc.health) {
    const YAML::Node& ref = *health_port;
    if (is_plain(ref) && std::all_of(ref.Scalar().begin(), ref.Scalar().end(), ::isdigit)) {
      if (auto n = integer_of(ref, "health port", 1, 65535)) svc.health->port = static_cast<int>(*n);
    } else if (ref.IsScalar()) {
      auto found = std::find_if(svc.ports.begin(), svc.ports.end(),
                                [&](const Port& p) { return p.name == ref.Scalar(); });
      if (found == svc.ports.end()) {
        error(ref, "health check port \"" + ref.Scalar() + "\" is not one of " + where + "'s ports");
      } else {
        svc.health->port = found->port;
      }
    } else {
      error(ref, "health check port must be a port name or number");
    }
  }
  return svc;
}

void SpecReader::read_run_as(Service& svc, bool container, const std::optional<YAML::Node>& user_node,
                             const std::optional<YAML::Node>& group_node) {
  if (container) {
    // An image names its users in its own /etc/passwd, and its per-replica
    // volumes would need to be owned by that uid on the host: not supported yet.
    error(user_node ? *user_node : *group_node,
          std::string("\"") + (user_node ? "user" : "group") +
              "\" applies only to process services; an image service runs as its image's USER");
    return;
  }
  if (!user_node) {
    error(*group_node, "\"group\" needs \"user\": the account the replicas run as");
    return;
  }
  auto user = string_of(*user_node, "user");
  if (!user) return;
  auto account = accounts_.find_user(*user);
  if (!account) {
    error(*user_node, "unknown user \"" + *user + "\": no such account on this host");
    return;
  }
  RunAs run_as{account->uid, account->gid, account->name, account->home};
  if (group_node) {
    auto group = string_of(*group_node, "group");
    if (!group) return;
    auto gid = accounts_.find_group(*group);
    if (!gid) {
      error(*group_node, "unknown group \"" + *group + "\": no such group on this host");
      return;
    }
    run_as.gid = *gid;
  }
  const std::uint32_t euid = accounts_.effective_uid();
  if (euid != 0) {
    // Without root, setuid/setgid to anyone else fail: say so now, not at every start.
    if (run_as.uid != euid) {
      error(*user_node, "user \"" + *user + "\" (uid " + std::to_string(run_as.uid) +
                            "): running replicas as another user needs a server running as root; this one runs as uid " +
                            std::to_string(euid));
      return;
    }
    if (run_as.gid != accounts_.effective_gid()) {
      error(group_node ? *group_node : *user_node,
            "group " + std::to_string(run_as.gid) +
                ": running replicas with another group needs a server running as root; this one runs as gid " +
                std::to_string(accounts_.effective_gid()));
      return;
    }
  }
  svc.run_as = std::move(run_as);
}

void SpecReader::read_command(Service& svc, const YAML::Node& node) {
  if (node.IsScalar()) {
    if (node.Scalar().empty()) error(node, "command must not be empty");
    svc.shell = true;
    svc.command = {"/bin/sh", "-c", node.Scalar()};
    return;
  }
  if (!node.IsSequence()) {
    error(node, std::string("command must be a list of arguments or a string, found ") + kind_name(node));
    return;
  }
  svc.command = string_list(node, "command");
  if (node.size() == 0) error(node, "command must not be empty");
}

void SpecReader::read_image(Service& svc, const YAML::Node& node) {
  auto s = string_of(node, "image");
  if (!s) return;
  if (auto problem = image_reference_problem(*s)) {
    error(node, "invalid image \"" + *s + "\": " + *problem);
    return;
  }
  svc.image = *s;
}

void SpecReader::read_build(Service& svc, const YAML::Node& node) {
  Build build;
  auto set_context = [&](const YAML::Node& value) {
    auto s = string_of(value, "build context");
    if (!s) return false;
    build.context = resolve_path(*s);
    std::error_code ec;
    if (!fs::is_directory(build.context, ec)) {
      error(value, "build context \"" + *s + "\" is not a directory (resolved to " + build.context + ")");
    }
    return true;
  };
  if (node.IsScalar()) {  // Compose's short form: build: DIR
    if (set_context(node)) svc.build = build;
    return;
  }
  if (!expect_map(node, "build")) return;
  bool has_context = false;
  for_fields(node, "build", {"context", "dockerfile", "args"},
             [&](const std::string& field, const YAML::Node&, const YAML::Node& value) {
               if (field == "context") {
                 has_context = set_context(value) || has_context;
               } else if (field == "dockerfile") {
                 auto s = string_of(value, "dockerfile");
                 if (s && (s->empty() || (*s)[0] == '/')) {
                   error(value, "dockerfile \"" + *s + "\" must be a path relative to the build context");
                 } else if (s) {
                   build.dockerfile = *s;
                 }
               } else {
                 build.args = read_name_values(value, "build args");
               }
             });
  if (!has_context) error(node, "build is missing required field \"context\"");
  svc.build = build;
}

// The variables "${NAME}" and "${NAME:-default}" of `text` refers to ("$$" is a literal '$').
std::vector<std::string> referenced_variables(const std::string& text) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] != '$') continue;
    if (text[i + 1] == '$') {
      ++i;
      continue;
    }
    if (text[i + 1] != '{') continue;
    const std::size_t end = text.find_first_of(":}", i + 2);
    if (end == std::string::npos) break;
    names.push_back(text.substr(i + 2, end - i - 2));
    i = end;
  }
  return names;
}

void SpecReader::refuse_secrets_in_argv(const Service& svc, const std::vector<std::string>& argv,
                                        const YAML::Node& node, const std::string& field) {
  for (const auto& arg : argv) {
    for (const auto& name : referenced_variables(arg)) {
      for (const auto& secret : svc.secret_env) {
        if (secret.variable != name) continue;
        error(node, field + " refers to ${" + name + "}, which holds secret " + secret.secret.name + "/" +
                        secret.secret.key +
                        ": arguments are visible to every user (ps, /proc/PID/cmdline); let the program read $" +
                        name + " from its environment instead");
      }
    }
  }
}

void SpecReader::read_env(Service& svc, const YAML::Node& node) {
  svc.env = read_name_values(node, "env", &svc.secret_env);
}

std::optional<SecretRef> SpecReader::read_secret_ref(const YAML::Node& node, const std::string& what) {
  if (!node.IsMap()) {
    error(node, what + " must be a secret reference {secret: NAME, key: KEY}, found " + kind_name(node));
    return std::nullopt;
  }
  SecretRef ref;
  bool has_secret = false;
  bool has_key = false;
  for_fields(node, what, {"secret", "key"}, [&](const std::string& field, const YAML::Node&, const YAML::Node& value) {
    auto s = string_of(value, what + " " + field);
    if (!s) return;
    if (field == "secret") {
      has_secret = true;
      if (!is_dns_label(*s)) {
        error(value, "invalid secret name \"" + *s + "\": must be a DNS-1123 label (lowercase letters, digits and '-', at most 63)");
      }
      ref.name = *s;
    } else {
      has_key = true;
      if (!is_secret_key(*s)) error(value, "invalid secret key \"" + *s + "\": " + kSecretKeyGrammar);
      ref.key = *s;
    }
  });
  if (!has_secret) error(node, what + " is missing required field \"secret\"");
  if (!has_key) error(node, what + " is missing required field \"key\"");
  if (!has_secret || !has_key) return std::nullopt;
  return ref;
}

void SpecReader::read_store(System& system, const YAML::Node& node) {
  if (!expect_map(node, "store")) return;
  std::optional<YAML::Node> user_key;
  bool has_etcd = false;
  for_fields(node, "store", {"etcd", "user"},
             [&](const std::string& field, const YAML::Node& key, const YAML::Node& value) {
               if (field == "etcd") {
                 has_etcd = true;
                 read_store_etcd(system, value);
               } else if (auto s = string_of(value, "store.user")) {
                 user_key = key;
                 if (s->empty()) error(value, "store.user must not be empty");
                 system.store_user = *s;
               }
             });
  if (user_key && has_etcd) {
    error(*user_key,
          "store.user is for the server's own store; with store.etcd, give store.etcd.user and "
          "store.etcd.password instead");
  }
}

void SpecReader::read_store_etcd(System& system, const YAML::Node& etcd_node) {
  if (!expect_map(etcd_node, "store.etcd")) return;
  EtcdStore etcd;
  bool has_endpoints = false;
  std::optional<YAML::Node> user_node;
  std::optional<YAML::Node> password_node;
  for_fields(etcd_node, "store.etcd", {"endpoints", "user", "password", "prefix"},
             [&](const std::string& field, const YAML::Node&, const YAML::Node& value) {
               if (field == "endpoints") {
                 has_endpoints = true;
                 etcd.endpoints = string_list(value, "store.etcd.endpoints");
                 if (value.IsSequence() && value.size() == 0) error(value, "store.etcd.endpoints must not be empty");
                 for (std::size_t i = 0; value.IsSequence() && i < value.size() && i < etcd.endpoints.size(); ++i) {
                   const std::string& url = etcd.endpoints[i];
                   const std::string rest = url.starts_with("http://")    ? url.substr(7)
                                            : url.starts_with("https://") ? url.substr(8)
                                                                          : std::string();
                   if (rest.empty() || rest.find_first_of(", \t/") != std::string::npos) {
                     error(value[i],
                           "invalid etcd endpoint \"" + url + "\": expected http://HOST:PORT or https://HOST:PORT");
                   }
                 }
               } else if (field == "user") {
                 user_node = value;
                 if (auto s = string_of(value, "store.etcd.user")) {
                   if (s->empty()) error(value, "store.etcd.user must not be empty");
                   etcd.user = *s;
                 }
               } else if (field == "password") {
                 password_node = value;
                 etcd.password = read_secret_ref(value, "store.etcd.password");
               } else if (auto s = string_of(value, "store.etcd.prefix")) {
                 if (s->empty() || (*s)[0] != '/') error(value, "store.etcd.prefix \"" + *s + "\" must start with '/'");
                 etcd.prefix = *s;
               }
             });
  if (!has_endpoints) error(etcd_node, "store.etcd is missing required field \"endpoints\"");
  if (user_node && !password_node) {
    error(*user_node, "store.etcd.user needs a password: {secret: NAME, key: KEY}");
  } else if (password_node && !user_node) {
    error(*password_node, "store.etcd.password needs a user");
  }
  system.etcd = std::move(etcd);
}

std::vector<std::pair<std::string, std::string>> SpecReader::read_name_values(const YAML::Node& node,
                                                                              const std::string& what,
                                                                              std::vector<SecretEnv>* secrets) {
  std::vector<std::pair<std::string, std::string>> out;
  auto valid_name = [](const std::string& n) {
    if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
    return std::all_of(n.begin(), n.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
  };
  if (node.IsSequence()) {  // Compose's list form: ["KEY=value", ...]
    for (const auto& item : node) {
      auto s = string_of(item, what + " item");
      if (!s) continue;
      const auto eq = s->find('=');
      const std::string name = s->substr(0, eq);
      if (!valid_name(name)) {
        error(item, "invalid variable name \"" + name + "\" in " + what);
        continue;
      }
      out.emplace_back(name, eq == std::string::npos ? "" : s->substr(eq + 1));
    }
    return out;
  }
  if (!node.IsMap()) {
    error(node, what + " must be a mapping of NAME: value, found " + kind_name(node));
    return out;
  }
  for_fields(node, what, {}, [&](const std::string& name, const YAML::Node& key, const YAML::Node& value) {
    if (!valid_name(name)) {
      error(key, "invalid variable name \"" + name + "\" in " + what + " (letters, digits and '_', not starting with a digit)");
      return;
    }
    if (value.IsNull()) {
      out.emplace_back(name, "");
    } else if (value.IsScalar()) {
      out.emplace_back(name, value.Scalar());
    } else if (secrets && value.IsMap()) {
      if (auto ref = read_secret_ref(value, what + " " + name)) secrets->push_back({name, *ref});
    } else {
      error(value, "value of " + name + " in " + what + " must be a scalar" +
                       (secrets ? " or a secret reference {secret: NAME, key: KEY}" : "") + ", found " + kind_name(value));
    }
  });
  return out;
}

void SpecReader::read_ports(Service& svc, const YAML::Node& node) {
  if (!node.IsSequence()) {
    error(node, std::string("ports must be a list of {name, port}, found ") + kind_name(node));
    return;
  }
  for (const auto& item : node) {
    if (!expect_map(item, "a port")) continue;
    Port port;
    bool has_name = false;
    bool has_port = false;
    for_fields(item, "port", {"name", "port"}, [&](const std::string& field, const YAML::Node&, const YAML::Node& value) {
      if (field == "name") {
        auto s = string_of(value, "port name");
        if (!s) return;
        has_name = true;
        if (!is_dns_label(*s) || s->size() > 15) {
          error(value, "invalid port name \"" + *s + "\": lowercase letters, digits and '-', at most 15 characters");
        } else if (std::any_of(svc.ports.begin(), svc.ports.end(), [&](const Port& p) { return p.name == *s; })) {
          error(value, "duplicate port name \"" + *s + "\"");
        }
        port.name = *s;
      } else {
        auto n = integer_of(value, "port", 1, 65535);
        if (!n) return;
        has_port = true;
        port.port = static_cast<int>(*n);
        if (std::any_of(svc.ports.begin(), svc.ports.end(), [&](const Port& p) { return p.port == port.port; })) {
          error(value, "duplicate port " + std::to_string(port.port));
        }
      }
    });
    if (!has_name) error(item, "port is missing required field \"name\"");
    if (!has_port) error(item, "port is missing required field \"port\"");
    if (has_name && has_port) svc.ports.push_back(port);
  }
}

void SpecReader::read_volumes(Service& svc, const YAML::Node& node) {
  if (!node.IsSequence()) {
    error(node, std::string("volumes must be a list of {name, path}, found ") + kind_name(node));
    return;
  }
  for (const auto& item : node) {
    if (!expect_map(item, "a volume")) continue;
    Volume vol;
    bool has_name = false;
    bool has_path = false;
    std::optional<YAML::Node> size_node;
    for_fields(item, "volume", {"name", "path", "source", "read_only", "size"},
               [&](const std::string& field, const YAML::Node&, const YAML::Node& value) {
                 if (field == "name") {
                   auto s = string_of(value, "volume name");
                   if (!s) return;
                   has_name = true;
                   if (!is_dns_label(*s)) {
                     error(value, "invalid volume name \"" + *s + "\": must be a DNS-1123 label");
                   } else if (std::any_of(svc.volumes.begin(), svc.volumes.end(),
                                          [&](const Volume& v) { return v.name == *s; })) {
                     error(value, "duplicate volume name \"" + *s + "\"");
                   }
                   vol.name = *s;
                 } else if (field == "path") {
                   auto s = string_of(value, "volume path");
                   if (!s) return;
                   has_path = true;
                   if (s->empty() || (*s)[0] != '/') error(value, "volume path \"" + *s + "\" must be absolute");
                   vol.path = *s;
                 } else if (field == "source") {
                   auto s = string_of(value, "volume source");
                   if (!s) return;
                   vol.source = resolve_path(*s);
                   std::error_code ec;
                   if (!fs::is_directory(*vol.source, ec)) {
                     error(value, "volume source \"" + *s + "\" is not a directory (resolved to " + *vol.source + ")");
                   }
                 } else if (field == "size") {
                   size_node = value;
                   auto s = string_of(value, "volume size");
                   if (!s) return;
                   auto bytes = parse_memory(*s);
                   if (bytes) vol.size_bytes = *bytes;
                   else error(value, "volume size: " + bytes.error().message);
                 } else if (auto b = bool_of(value, "read_only")) {
                   vol.read_only = *b;
                 }
               });
    if (size_node && vol.source && vol.read_only) {
      error(*size_node, "volume size does not apply to a read-only volume with source (it is not a claim)");
    }
    if (!has_name) error(item, "volume is missing required field \"name\"");
    if (!has_path) error(item, "volume is missing required field \"path\"");
    if (has_name && has_path) svc.volumes.push_back(vol);
  }
}

void SpecReader::read_resources(Service& svc, const YAML::Node& node) {
  if (!expect_map(node, "resources")) return;
  for_fields(node, "resources", {"cpu", "memory"}, [&](const std::string& field, const YAML::Node&, const YAML::Node& value) {
    auto s = string_of(value, field);
    if (!s) return;
    if (field == "cpu") {
      auto cpu = parse_cpu(*s);
      if (cpu) svc.resources.cpu_millis = *cpu;
      else error(value, "cpu: " + cpu.error().message);
    } else {
      auto mem = parse_memory(*s);
      if (mem) svc.resources.memory_bytes = *mem;
      else error(value, "memory: " + mem.error().message);
    }
  });
}

void SpecReader::read_health(Service& svc, const YAML::Node& node, std::optional<YAML::Node>& port_ref) {
  if (!expect_map(node, "health")) return;
  HealthCheck check;
  int kinds = 0;
  auto read_probe = [&](const YAML::Node& value, const std::string& what, bool with_path) {
    if (!expect_map(value, what)) return;
    bool has_port = false;
    std::vector<std::string> fields = {"port"};
    if (with_path) fields.push_back("path");
    for_fields(value, what, fields, [&](const std::string& field, const YAML::Node&, const YAML::Node& v) {
      if (field == "port") {
        has_port = true;
        port_ref = v;
      } else if (auto s = string_of(v, "path")) {
        if (s->empty() || (*s)[0] != '/') error(v, "health check path \"" + *s + "\" must start with '/'");
        check.path = *s;
      }
    });
    if (!has_port) error(value, what + " is missing required field \"port\"");
  };
  for_fields(node, "health", {"http", "tcp", "exec", "interval", "timeout", "retries", "start_period"},
             [&](const std::string& field, const YAML::Node& key, const YAML::Node& value) {
               if (field == "http" || field == "tcp" || field == "exec") {
                 if (++kinds > 1) error(key, "health must have exactly one of http, tcp or exec");
               }
               if (field == "http") {
                 check.kind = HealthCheck::Kind::kHttp;
                 read_probe(value, "health.http", true);
               } else if (field == "tcp") {
                 check.kind = HealthCheck::Kind::kTcp;
                 read_probe(value, "health.tcp", false);
               } else if (field == "exec") {
                 check.kind = HealthCheck::Kind::kExec;
                 if (value.IsScalar()) {
                   if (value.Scalar().empty()) error(value, "health.exec must not be empty");
                   check.exec = {"/bin/sh", "-c", value.Scalar()};
                 } else {
                   check.exec = string_list(value, "health.exec");
                   if (value.IsSequence() && check.exec.empty()) error(value, "health.exec must not be empty");
                 }
               } else if (field == "interval") {
                 if (auto d = duration_of(value, "interval")) check.interval = *d;
                 if (check.interval.count() <= 0) error(value, "interval must be positive");
               } else if (field == "timeout") {
                 if (auto d = duration_of(value, "timeout")) check.timeout = *d;
                 if (check.timeout.count() <= 0) error(value, "timeout must be positive");
               } else if (field == "retries") {
                 if (auto n = integer_of(value, "retries", 1, 1000)) check.retries = static_cast<int>(*n);
               } else if (field == "start_period") {
                 if (auto d = duration_of(value, "start_period")) check.start_period = *d;
               }
             });
  if (kinds == 0) error(node, "health must have one of http, tcp or exec");
  svc.health = check;
}

void SpecReader::check_dependencies(const System& system,
                                    const std::map<std::string, std::vector<YAML::Node>>& dep_nodes) {
  for (const auto& svc : system.services) {
    auto nodes = dep_nodes.find(svc.name);
    std::set<std::string> seen;
    for (std::size_t i = 0; i < svc.depends_on.size(); ++i) {
      const std::string& dep = svc.depends_on[i];
      const YAML::Node at = nodes != dep_nodes.end() && i < nodes->second.size() ? nodes->second[i] : YAML::Node();
      auto here = at.IsDefined() ? location_of(at) : svc.location;
      if (dep == svc.name) error(here, "service \"" + svc.name + "\" depends on itself");
      else if (!system.find(dep)) error(here, "service \"" + svc.name + "\" depends on unknown service \"" + dep + "\"");
      else if (!seen.insert(dep).second) error(here, "duplicate dependency \"" + dep + "\"");
    }
  }
  // Cycle detection by depth-first search; reports the first cycle with its path.
  std::map<std::string, int> color;  // 0 white, 1 on stack, 2 done
  std::vector<std::string> stack;
  bool reported = false;
  std::function<void(const Service&)> visit = [&](const Service& svc) {
    color[svc.name] = 1;
    stack.push_back(svc.name);
    for (const auto& dep : svc.depends_on) {
      const Service* next = system.find(dep);
      if (!next || dep == svc.name) continue;
      if (color[dep] == 1 && !reported) {
        reported = true;
        std::string path;
        auto from = std::find(stack.begin(), stack.end(), dep);
        for (auto it = from; it != stack.end(); ++it) path += *it + " -> ";
        error(next->location, "dependency cycle: " + path + dep);
      } else if (color[dep] == 0) {
        visit(*next);
      }
    }
    stack.pop_back();
    color[svc.name] = 2;
  };
  for (const auto& svc : system.services) {
    if (color[svc.name] == 0) visit(svc);
  }
}

}  // namespace

bool is_dns_label(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  auto ok = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; };
  if (!std::all_of(name.begin(), name.end(), ok)) return false;
  return name.front() != '-' && name.back() != '-';
}

bool is_secret_key(const std::string& key) {
  if (key.empty() || key.size() > 253 || key.front() == '.') return false;
  auto ok = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'; };
  return std::all_of(key.begin(), key.end(), ok);
}

std::string format_diagnostics(const std::string& file, const std::vector<Diagnostic>& diagnostics) {
  std::ostringstream out;
  for (const auto& d : diagnostics) {
    out << file << ':' << d.location.line << ':' << d.location.column << ": " << d.message << '\n';
  }
  std::string s = out.str();
  if (!s.empty()) s.pop_back();
  return s;
}

Result<System> parse_spec(const std::string& text, const std::string& file, const std::string& base_dir,
                          const Limits& limits) {
  return parse_spec(text, file, base_dir, limits, host_accounts());
}

Result<System> parse_spec(const std::string& text, const std::string& file, const std::string& base_dir,
                          const Limits& limits, const Accounts& accounts) {
  if (text.size() > limits.max_spec_bytes) {
    return make_error(Errc::kTooLarge, file + ": the spec is " + std::to_string(text.size()) +
                                           " bytes, over the limit of " + std::to_string(limits.max_spec_bytes) +
                                           " (zeppelin server --max-spec-bytes)");
  }
  // Specs travel as JSON text (the API, the store): refuse other bytes here, with their place.
  if (const auto bad = first_invalid_utf8(text)) {
    Location at{1, 1};
    for (std::size_t i = 0; i < *bad; ++i) {
      if (text[i] == '\n') {
        ++at.line;
        at.column = 1;
      } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
        ++at.column;  // columns count characters, not bytes
      }
    }
    char byte[8];
    std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(text[*bad]));
    return make_error(Errc::kInvalidArgument,
                      format_diagnostics(file, {{at, std::string("invalid UTF-8 (byte ") + byte +
                                                         "): a spec is UTF-8 text; re-save the file as UTF-8"}}));
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    Location at{e.mark.line + 1, e.mark.column + 1};
    return make_error(Errc::kInvalidArgument, format_diagnostics(file, {{at, "YAML syntax error: " + e.msg}}));
  } catch (const YAML::Exception& e) {
    return make_error(Errc::kInvalidArgument, format_diagnostics(file, {{{1, 1}, std::string("YAML error: ") + e.what()}}));
  }
  SpecReader reader(base_dir, limits, accounts);
  System system;
  try {
    system = reader.read(root);
  } catch (const YAML::Exception& e) {  // yaml-cpp throws on malformed aliases and similar
    reader.diagnostics().push_back({{e.mark.line + 1, e.mark.column + 1}, e.msg});
  }
  if (!reader.diagnostics().empty()) {
    auto& d = reader.diagnostics();
    std::stable_sort(d.begin(), d.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return std::tie(a.location.line, a.location.column) < std::tie(b.location.line, b.location.column);
    });
    return make_error(Errc::kInvalidArgument, format_diagnostics(file, d));
  }
  system.file = file;
  system.base_dir = base_dir;
  return system;
}

Result<System> load_spec_file(const std::string& path, const Limits& limits) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec).lexically_normal();
  std::ifstream in(absolute, std::ios::binary);
  if (!in) return make_error(Errc::kNotFound, path + ": cannot open spec file");
  // Read no more than one byte over the limit: parse_spec() refuses that.
  std::string text(limits.max_spec_bytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > limits.max_spec_bytes) {
    std::error_code size_ec;
    const auto bytes = fs::file_size(absolute, size_ec);
    return make_error(Errc::kTooLarge, path + ": the spec is " + (size_ec ? "more than " + std::to_string(limits.max_spec_bytes)
                                                                            : std::to_string(bytes)) +
                                           " bytes, over the limit of " + std::to_string(limits.max_spec_bytes) +
                                           " (zeppelin server --max-spec-bytes)");
  }
  auto system = parse_spec(text, path, absolute.parent_path().string(), limits);
  if (system) system->file = absolute.string();
  return system;
}

}  // namespace zeppelin::spec
