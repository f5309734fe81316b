#include "supervisor/replica_env.h"

#include <algorithm>
#include <cctype>

namespace zeppelin::supervisor {

Result<std::string> expand_vars(const std::string& text,
                                const std::function<std::optional<std::string>(const std::string&)>& lookup) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$' || i + 1 >= text.size()) {
      out += text[i];
      continue;
    }
    if (text[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (text[i + 1] != '{') {
      out += text[i];
      continue;
    }
    const auto close = text.find('}', i + 2);
    if (close == std::string::npos) {
      return make_error(Errc::kInvalidArgument, "unterminated \"${\" in \"" + text + "\"");
    }
    std::string inner = text.substr(i + 2, close - i - 2);
    std::optional<std::string> fallback;
    if (auto sep = inner.find(":-"); sep != std::string::npos) {
      fallback = inner.substr(sep + 2);
      inner = inner.substr(0, sep);
    }
    const bool valid = !inner.empty() && std::all_of(inner.begin(), inner.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
    if (!valid) return make_error(Errc::kInvalidArgument, "invalid variable reference \"${" + inner + "}\"");
    auto value = lookup(inner);
    // ${NAME:-default} takes the default when NAME is unset or empty.
    const bool use_default = fallback && (!value || value->empty());
    if (!use_default && !value) {
      return make_error(Errc::kInvalidArgument, "unknown variable ${" + inner + "} in \"" + text + "\"");
    }
    out += use_default ? *fallback : *value;
    i = close;
  }
  return out;
}

namespace {
// A list too long for an environment string is left out (kMaxAddressListBytes).
void set_address_list(std::map<std::string, std::string>& vars, const std::string& name, const std::string& list) {
  if (list.size() <= kMaxAddressListBytes) vars[name] = list;
}
}  // namespace

bool is_withheld_caller_variable(std::string_view name) {
  return name.starts_with("ZEPPELIN_") || name.starts_with("ETCDCTL_");
}

Result<LaunchEnv> build_launch_env(const ReplicaIdentity& id, const std::map<std::string, std::string>& caller_env) {
  namespace var = spec::replica_env;
  std::map<std::string, std::string> vars;
  const spec::Service& svc = *id.service;
  vars[var::kSystem] = id.system->name;
  vars[var::kService] = svc.name;
  vars[var::kReplica] = std::to_string(id.ordinal);
  vars[var::kReplicas] = std::to_string(id.replicas);
  vars[var::kHost] = id.host;
  vars[var::kHome] = id.home;
  set_address_list(vars, var::kPeers, id.peers);
  for (auto& [name, value] : var::port_variables(svc)) vars[name] = std::move(value);
  for (const auto& [dep, list] : id.dependencies) set_address_list(vars, var::dependency_variable(dep), list);
  for (const auto& [name, dir] : id.volumes) vars[var::volume_variable(name)] = dir;

  auto secret = [&id, &svc](const std::string& variable, const spec::SecretRef& ref) -> Result<std::string> {
    if (!id.read_secret) return std::string();
    auto value = id.read_secret(ref);
    if (!value) {
      return make_error(Errc::kInvalidArgument, "service \"" + svc.name + "\": " + variable + ": secret " + ref.name +
                                                    "/" + ref.key + ": " + value.error().message);
    }
    if (value->find('\0') != std::string::npos) {
      return make_error(Errc::kInvalidArgument, "service \"" + svc.name + "\": " + variable + ": secret " + ref.name +
                                                    "/" + ref.key + " holds a NUL byte, which an environment cannot");
    }
    return value;
  };
  if (svc.run_as) {
    // The account's own, not the caller's, unless the service's env says otherwise.
    vars["HOME"] = svc.run_as->home;
    vars["USER"] = svc.run_as->user_name;
    vars["LOGNAME"] = svc.run_as->user_name;
  }
  if (const auto& etcd = id.system->etcd) {
    vars[var::kEtcdEndpoints] = var::join_list(etcd->endpoints);
    vars[var::kEtcdPrefix] = etcd->prefix;
    if (etcd->password) {
      auto password = secret(var::kEtcdPassword, *etcd->password);
      if (!password) return password.error();
      vars[var::kEtcdUser] = etcd->user;
      vars[var::kEtcdPassword] = *password;
    }
  } else if (!id.etcd_endpoints.empty()) {
    vars[var::kEtcdEndpoints] = var::join_list(id.etcd_endpoints);
    if (!id.etcd_ca_file.empty()) {
      vars[var::kEtcdCaCert] = id.etcd_ca_file;
      vars[var::kEtcdctlCaCert] = id.etcd_ca_file;
    }
    if (!id.etcd_token.empty()) {
      vars[var::kEtcdUser] = id.etcd_user;
      vars[var::kEtcdToken] = id.etcd_token;
      // etcdctl and clients that log in by name and password: the token is the password.
      vars[var::kEtcdctlUser] = id.etcd_user + ":" + id.etcd_token;
    }
  }

  auto lookup = [&](const std::string& key) -> std::optional<std::string> {
    if (auto it = vars.find(key); it != vars.end()) return it->second;
    if (auto it = caller_env.find(key); it != caller_env.end()) return it->second;
    return std::nullopt;
  };
  // Service env may refer to the contract variables and to its own earlier entries.
  for (const auto& [name, raw] : svc.env) {
    auto value = expand_vars(raw, lookup);
    if (!value) {
      return make_error(Errc::kInvalidArgument, "service \"" + svc.name + "\": env " + name + ": " + value.error().message);
    }
    vars[name] = *value;
  }
  // Secret values are set last and never expanded, so no other value embeds them.
  for (const auto& [name, ref] : svc.secret_env) {
    auto value = secret("env " + name, ref);
    if (!value) return value.error();
    vars[name] = *value;
  }

  LaunchEnv out;
  if (svc.shell) {
    out.argv = svc.command;
  } else {
    for (const auto& arg : svc.command) {
      auto value = expand_vars(arg, lookup);
      if (!value) {
        return make_error(Errc::kInvalidArgument, "service \"" + svc.name + "\": command: " + value.error().message);
      }
      out.argv.push_back(*value);
    }
  }
  // A process inherits the caller's environment; a container gets only the
  // contract and its own env (the host's PATH would break the image's).
  if (!svc.is_container()) vars.insert(caller_env.begin(), caller_env.end());  // keeps the entries already set
  out.env.reserve(vars.size());
  for (const auto& [k, v] : vars) out.env.push_back(k + "=" + v);
  return out;
}

}  // namespace zeppelin::supervisor
