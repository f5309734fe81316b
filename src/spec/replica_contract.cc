#include "spec/replica_contract.h"

#include <cctype>

#include "common/strings.h"

namespace zeppelin::spec::replica_env {

std::string env_name(std::string_view name) {
  std::string out(name);
  for (char& c : out) c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string port_variable(std::string_view port) { return std::string(kPort) + "_" + env_name(port); }

std::string dependency_variable(std::string_view service) { return std::string(kService) + "_" + env_name(service); }

std::string volume_variable(std::string_view volume) { return "ZEPPELIN_VOLUME_" + env_name(volume); }

std::vector<std::pair<std::string, std::string>> port_variables(const Service& service) {
  std::vector<std::pair<std::string, std::string>> out;
  if (service.ports.empty()) return out;
  out.reserve(service.ports.size() + 1);
  out.emplace_back(kPort, std::to_string(service.ports.front().port));
  for (const auto& p : service.ports) out.emplace_back(port_variable(p.name), std::to_string(p.port));
  return out;
}

std::string endpoint(const Service& service, const std::string& host) {
  if (service.ports.empty()) return host;
  return host + ":" + std::to_string(service.ports.front().port);
}

std::string join_list(const std::vector<std::string>& items) { return join(items, ","); }

std::string default_etcd_prefix(const std::string& system) { return "/zeppelin/" + system + "/"; }

}  // namespace zeppelin::spec::replica_env
