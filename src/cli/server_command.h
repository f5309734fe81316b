// `zeppelin server` (the control plane, in the foreground or with -d in the
// background) and `zeppelin shutdown`.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace zeppelin::cli {

void add_server_commands(CLI::App& app, Commands& commands);

}  // namespace zeppelin::cli
