// Where a Kubernetes API server is and how to authenticate to it, resolved
// the way kubectl does: the files of $KUBECONFIG (colon-separated, merged) or
// ~/.kube/config, their current-context (or an explicit one), and otherwise
// the in-cluster service account of a pod.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace zeppelin::kube {

// Everything needed to reach one cluster as one user. PEM material is held
// in memory whether it came from *-data fields or from files.
struct ClusterConfig {
  std::string server;   // https://HOST[:PORT][/PREFIX]
  std::string context;  // the context used ("" in cluster)
  std::string cluster;  // cluster name
  std::string user;     // user name in the kubeconfig, or the service account
  std::string ns;       // the context's namespace; "default" when it names none
  std::string ca_pem;   // empty: the system's trust store
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string token;   // bearer token (from `token` or `tokenFile`)
  std::string source;  // where this came from, for messages
};

struct LoadOptions {
  // The value of $KUBECONFIG (may be empty: then ~/.kube/config).
  std::string kubeconfig_env;
  std::string home;     // $HOME
  std::string context;  // --context; empty: current-context
  // In-cluster configuration: the service account directory and the values of
  // KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT.
  std::string service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  std::string service_host;
  std::string service_port;
};

// LoadOptions from the process environment.
LoadOptions options_from_environment(const std::string& context);

// Resolves the cluster, user and namespace. Errors (kNotFound when no
// configuration exists, kInvalidArgument for a broken one) name the files
// and fields involved.
Result<ClusterConfig> load_config(const LoadOptions& options);

// Decodes standard base64 (the *-data fields); kInvalidArgument on bad input.
Result<std::string> base64_decode(const std::string& text);

}  // namespace zeppelin::kube
