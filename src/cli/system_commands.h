// The commands that drive systems on the local server (or the one --server
// names): validate, build, run, ps, logs, stop, down, scale and restart;
// ps, logs and stop also act on a cluster with --target kubernetes
// (kubernetes_commands.h).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace zeppelin::cli {

void add_system_commands(CLI::App& app, Commands& commands);

}  // namespace zeppelin::cli
