// `zeppelin store snapshot save|restore FILE`: backup and restore of the
// coordination store in $ZEPPELIN_HOME/store. While a server runs, it holds
// the store open: save asks it for the snapshot (POST /v1/store/snapshot
// streams it back), restore refuses. Save writes FILE itself, created 0600
// (the snapshot holds every key) and renamed into place once complete.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace zeppelin::cli {

// Both return an exit code and print what they did or why they could not.
int cmd_store_snapshot_save(const std::string& home, const std::string& file);
int cmd_store_snapshot_restore(const std::string& home, const std::string& file);

// `store snapshot save|restore FILE` and `store env` (coord_commands.h).
void add_store_command(CLI::App& app, Commands& commands);

}  // namespace zeppelin::cli
