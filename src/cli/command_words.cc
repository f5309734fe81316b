#include "cli/command_words.h"

#include <algorithm>
#include <iostream>

#include "cli/exit.h"
#include "common/strings.h"

namespace zeppelin::cli {

const CLI::App* subcommand_named(const CLI::App& app, std::string_view name) {
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->check_name(std::string(name))) return sub;
  }
  return nullptr;
}

std::vector<std::string> subcommand_names(const CLI::App& app, bool aliases) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    names.push_back(sub->get_name());
    if (!aliases) continue;
    for (const auto& alias : sub->get_aliases()) names.push_back(alias);
  }
  return names;
}

std::optional<int> check_command_words(const CLI::App& app, int argc, const char* const* argv) {
  const CLI::App* level = &app;
  std::string path = "zeppelin";
  for (int i = 1; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (word == "--") return std::nullopt;
    if (word.starts_with("-")) {
      // An option's value is no command word: skip it where the option takes one.
      if (word.find('=') != std::string_view::npos) continue;
      const CLI::Option* option = level->get_option_no_throw(std::string(word));
      if (option && option->get_expected_min() > 0) ++i;
      continue;
    }
    const std::vector<std::string> known = subcommand_names(*level);
    if (known.empty()) return std::nullopt;  // a command's own arguments from here on
    if (std::find(known.begin(), known.end(), word) != known.end()) {
      level = subcommand_named(*level, word);
      if (!level) return std::nullopt;
      path += " " + level->get_name();
      continue;
    }
    if (level->get_require_subcommand_min() == 0) return std::nullopt;  // a positional argument
    std::string message = "unknown command \"" + std::string(word) + "\"";
    if (level != &app) message += " for \"" + path + "\"";
    // Suggest commands by their names: an alias beside its own command would tie with it.
    const std::string near = nearest_name(word, subcommand_names(*level, false));
    if (!near.empty()) message += "; did you mean \"" + near + "\"?";
    return fail(message + "\nRun '" + path + " --help' to list the commands.", kUsage);
  }
  return std::nullopt;
}

}  // namespace zeppelin::cli
