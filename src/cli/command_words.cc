#include "cli/command_words.h"

#include <algorithm>
#include <iostream>

#include "cli/exit.h"

namespace zeppelin::cli {

namespace {

// Optimal string alignment distance: Levenshtein plus the swap of two
// neighbours, the commonest typo ("sclae").
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

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

std::string nearest_name(std::string_view typed, const std::vector<std::string>& known) {
  if (typed.empty()) return "";
  std::string best;
  // Beyond that many edits, no suggestion: two for a long word, one for a short one ("exec" is not "elect").
  size_t best_distance = typed.size() >= 5 ? 3 : 2;
  bool tie = false;
  for (const auto& name : known) {
    const size_t distance = name.starts_with(typed) ? 1 : edit_distance(typed, name);
    if (distance < best_distance) {
      best = name;
      best_distance = distance;
      tie = false;
    } else if (distance == best_distance && name != best) {
      tie = true;
    }
  }
  return tie ? "" : best;
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
