// `zeppelin version [-o table|json|yaml]`: this CLI's version, commit, build
// type and API version, and the same of the server when one answers (never
// started for this). A server whose API version differs is named, exit 1.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace zeppelin::cli {

void add_version_command(CLI::App& app, Commands& commands);

}  // namespace zeppelin::cli
