// `deploy`, `ps`, `logs` and `stop` with `--target kubernetes`: the system in
// a cluster, through the Kubernetes API (kube_client). See docs/kubernetes.md.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace zeppelin::cli {

struct KubernetesArgs {
  std::string subject;           // deploy: spec file or directory; others: SYSTEM[/SERVICE[/REPLICA]]
  std::string ns;                // -n; empty: the context's namespace
  std::string context;           // --context; empty: current-context
  std::string timeout = "5m";    // --timeout
  bool wait = true;              // deploy --wait (stop always waits)
  bool force_conflicts = false;  // deploy --force-conflicts
  bool follow = false;           // logs -f
  bool volumes = false;          // stop --volumes
  long tail = -1;                // logs --tail
};

// Each returns the process exit code: 0 on success, 2 for bad input (usage,
// invalid spec), 1 for anything the cluster refused or did not do in time.
int cmd_kubernetes_deploy(const KubernetesArgs& args);
int cmd_kubernetes_ps(const KubernetesArgs& args);
int cmd_kubernetes_logs(const KubernetesArgs& args);
int cmd_kubernetes_stop(const KubernetesArgs& args);

// kOk when --target names the one target there is; else says so and returns kUsage.
int check_kubernetes_target(const std::string& target);

// `deploy --target kubernetes FILE`; ps, logs and stop take --target in system_commands.h.
void add_deploy_command(CLI::App& app, Commands& commands);

}  // namespace zeppelin::cli
