// The command words of a command line, checked before CLI11 parses it: an
// unknown one is named, with the nearest known command suggested, as git,
// kubectl and docker do (CLI11 alone answers "A subcommand is required").
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zeppelin::cli {

// The subcommand of `app` called `name` (or aliased so), or nullptr.
const CLI::App* subcommand_named(const CLI::App& app, std::string_view name);

// The names of `app`'s subcommands, and with `aliases` their aliases too.
std::vector<std::string> subcommand_names(const CLI::App& app, bool aliases = true);

// Follows argv's command words down `app`'s subcommands. Where a command
// that needs a subcommand gets a word that names none, prints
// `zeppelin: unknown command "WORD"` (with a suggestion) on stderr and
// returns the usage exit code; otherwise nothing.
std::optional<int> check_command_words(const CLI::App& app, int argc, const char* const* argv);

}  // namespace zeppelin::cli
