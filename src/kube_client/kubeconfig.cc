#include "kube_client/kubeconfig.h"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace zeppelin::kube {

namespace fs = std::filesystem;

namespace {

Result<std::string> read_file(const fs::path& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(Errc::kNotFound, "cannot read " + what + " " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// One named entry (cluster, user or context) and the file that defined it:
// relative paths inside it are relative to that file's directory.
struct Entry {
  YAML::Node node;
  fs::path file;
};

struct Merged {
  std::map<std::string, Entry> clusters, users, contexts;
  std::string current_context;
  std::vector<std::string> files;  // the files read, in order
};

// kubectl's merge: the first file to define a name (or current-context) wins.
Status merge_file(const fs::path& path, Merged& merged) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::Exception& e) {
    return make_error(Errc::kInvalidArgument, "kubeconfig " + path.string() + ": " + e.what());
  }
  merged.files.push_back(path.string());
  if (!root.IsMap()) return ok_status();  // an empty file is an empty config
  auto take = [&](const char* section, std::map<std::string, Entry>& into, const char* inner) -> Status {
    const YAML::Node list = root[section];
    if (!list) return ok_status();
    if (!list.IsSequence()) {
      return make_error(Errc::kInvalidArgument, "kubeconfig " + path.string() + ": " + section + " must be a list");
    }
    for (const auto& item : list) {
      if (!item.IsMap() || !item["name"] || !item["name"].IsScalar()) {
        return make_error(Errc::kInvalidArgument,
                          "kubeconfig " + path.string() + ": an entry of " + section + " has no name");
      }
      const std::string name = item["name"].as<std::string>();
      YAML::Node body = item[inner];
      if (!into.contains(name)) into.emplace(name, Entry{body ? body : YAML::Node(YAML::NodeType::Map), path});
    }
    return ok_status();
  };
  if (auto s = take("clusters", merged.clusters, "cluster"); !s) return s;
  if (auto s = take("users", merged.users, "user"); !s) return s;
  if (auto s = take("contexts", merged.contexts, "context"); !s) return s;
  if (merged.current_context.empty() && root["current-context"] && root["current-context"].IsScalar()) {
    merged.current_context = root["current-context"].as<std::string>();
  }
  return ok_status();
}

std::string field(const YAML::Node& node, const char* key) {
  const YAML::Node v = node[key];
  return v && v.IsScalar() ? v.as<std::string>() : std::string();
}

fs::path resolve(const fs::path& file, const std::string& path) {
  fs::path p(path);
  return p.is_absolute() ? p : file.parent_path() / p;
}

// PEM material from FIELD-data (base64) or FIELD (a path).
Result<std::string> pem(const Entry& entry, const std::string& key, const std::string& where) {
  const std::string data = field(entry.node, (key + "-data").c_str());
  if (!data.empty()) {
    auto decoded = base64_decode(data);
    if (!decoded) {
      return make_error(Errc::kInvalidArgument, where + ": " + key + "-data is not valid base64");
    }
    return decoded;
  }
  const std::string path = field(entry.node, key.c_str());
  if (path.empty()) return std::string();
  auto text = read_file(resolve(entry.file, path), key + " of " + where + ":");
  if (!text) return make_error(Errc::kInvalidArgument, text.error().message);
  return text;
}

Result<ClusterConfig> from_kubeconfig(const Merged& merged, const LoadOptions& options) {
  std::string files;
  for (const auto& f : merged.files) files += (files.empty() ? "" : ", ") + f;
  const std::string context_name = options.context.empty() ? merged.current_context : options.context;
  if (context_name.empty()) {
    return make_error(Errc::kInvalidArgument, "no current-context in kubeconfig " + files + "; pass --context");
  }
  auto ctx = merged.contexts.find(context_name);
  if (ctx == merged.contexts.end()) {
    std::string known;
    for (const auto& [name, _] : merged.contexts) known += (known.empty() ? "" : ", ") + name;
    return make_error(Errc::kInvalidArgument,
                      "context \"" + context_name + "\" not found in kubeconfig " + files +
                          (known.empty() ? " (it defines no contexts)" : " (contexts: " + known + ")"));
  }
  ClusterConfig config;
  config.context = context_name;
  config.cluster = field(ctx->second.node, "cluster");
  config.user = field(ctx->second.node, "user");
  config.ns = field(ctx->second.node, "namespace");
  if (config.ns.empty()) config.ns = "default";
  config.source = "kubeconfig " + files + ", context \"" + context_name + "\"";

  auto cluster = merged.clusters.find(config.cluster);
  if (cluster == merged.clusters.end()) {
    return make_error(Errc::kInvalidArgument, "context \"" + context_name + "\" refers to cluster \"" + config.cluster +
                                                  "\", which kubeconfig " + files + " does not define");
  }
  const std::string cluster_where = "cluster \"" + config.cluster + "\" in " + cluster->second.file.string();
  config.server = field(cluster->second.node, "server");
  if (config.server.empty()) return make_error(Errc::kInvalidArgument, cluster_where + " has no server");
  config.insecure_skip_tls_verify = field(cluster->second.node, "insecure-skip-tls-verify") == "true";
  auto ca = pem(cluster->second, "certificate-authority", cluster_where);
  if (!ca) return ca.error();
  config.ca_pem = *ca;

  if (!config.user.empty()) {
    auto user = merged.users.find(config.user);
    if (user == merged.users.end()) {
      return make_error(Errc::kInvalidArgument, "context \"" + context_name + "\" refers to user \"" + config.user +
                                                    "\", which kubeconfig " + files + " does not define");
    }
    const std::string user_where = "user \"" + config.user + "\" in " + user->second.file.string();
    auto cert = pem(user->second, "client-certificate", user_where);
    if (!cert) return cert.error();
    auto key = pem(user->second, "client-key", user_where);
    if (!key) return key.error();
    if (cert->empty() != key->empty()) {
      return make_error(Errc::kInvalidArgument,
                        user_where + " has a client certificate without a key, or a key without a certificate");
    }
    config.client_cert_pem = *cert;
    config.client_key_pem = *key;
    config.token = field(user->second.node, "token");
    const std::string token_file = field(user->second.node, "tokenFile");
    if (config.token.empty() && !token_file.empty()) {
      auto token = read_file(resolve(user->second.file, token_file), "tokenFile of " + user_where + ":");
      if (!token) return make_error(Errc::kInvalidArgument, token.error().message);
      config.token = trim(*token);
    }
    if (user->second.node["exec"] || user->second.node["auth-provider"]) {
      if (config.token.empty() && config.client_cert_pem.empty()) {
        return make_error(Errc::kInvalidArgument, user_where +
                                                      " authenticates through an exec plugin or auth-provider, which "
                                                      "zeppelin does not run; use a token or client certificate");
      }
    }
  }
  return config;
}

Result<ClusterConfig> in_cluster(const LoadOptions& options) {
  const fs::path dir(options.service_account_dir);
  auto token = read_file(dir / "token", "service account token");
  if (!token) return token.error();
  ClusterConfig config;
  std::string host = options.service_host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";  // IPv6
  config.server = "https://" + host + ":" + options.service_port;
  config.token = trim(*token);
  if (auto ca = read_file(dir / "ca.crt", "service account CA"); ca) config.ca_pem = *ca;
  if (auto ns = read_file(dir / "namespace", "service account namespace"); ns) config.ns = trim(*ns);
  if (config.ns.empty()) config.ns = "default";
  config.user = "serviceaccount";
  config.source = "in-cluster service account " + dir.string();
  return config;
}

}  // namespace

Result<std::string> base64_decode(const std::string& text) {
  std::string in;
  for (char c : text) {
    if (!std::isspace(static_cast<unsigned char>(c))) in += c;
  }
  if (in.size() % 4 != 0) return make_error(Errc::kInvalidArgument, "bad base64 length");
  std::string out(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return make_error(Errc::kInvalidArgument, "bad base64");
  std::size_t size = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  if (!in.empty() && in.back() == '=') --size;
  if (in.size() >= 2 && in[in.size() - 2] == '=') --size;
  out.resize(size);
  return out;
}

LoadOptions options_from_environment(const std::string& context) {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
  };
  LoadOptions o;
  o.kubeconfig_env = env("KUBECONFIG");
  o.home = env("HOME");
  o.context = context;
  o.service_host = env("KUBERNETES_SERVICE_HOST");
  o.service_port = env("KUBERNETES_SERVICE_PORT");
  return o;
}

Result<ClusterConfig> load_config(const LoadOptions& options) {
  std::vector<std::string> candidates;
  if (!options.kubeconfig_env.empty()) {
    std::stringstream list(options.kubeconfig_env);
    for (std::string item; std::getline(list, item, ':');) {
      if (!item.empty()) candidates.push_back(item);
    }
  } else if (!options.home.empty()) {
    candidates.push_back((fs::path(options.home) / ".kube" / "config").string());
  }
  Merged merged;
  for (const auto& file : candidates) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) continue;  // kubectl skips missing files in the list
    if (auto s = merge_file(file, merged); !s) return s.error();
  }
  if (!merged.files.empty()) return from_kubeconfig(merged, options);

  std::string tried;
  for (const auto& f : candidates) tried += (tried.empty() ? "" : ", ") + f;
  if (candidates.empty()) tried = "none ($KUBECONFIG and $HOME are unset)";
  if (!options.service_host.empty() && !options.service_port.empty()) {
    if (!options.context.empty()) {
      return make_error(Errc::kNotFound,
                        "--context " + options.context + " given but no kubeconfig found (tried " + tried + ")");
    }
    auto config = in_cluster(options);
    if (config) return config;
    return make_error(Errc::kNotFound, "no kubeconfig found (tried " + tried + ") and " + config.error().message);
  }
  return make_error(Errc::kNotFound, "no kubeconfig found: tried " + tried +
                                         ", and not running in a pod (KUBERNETES_SERVICE_HOST is unset); set "
                                         "KUBECONFIG or create ~/.kube/config");
}

}  // namespace zeppelin::kube
