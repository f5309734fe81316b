// How a command joins the command line: the file that implements it adds its
// subcommand (flags, help, examples) to the app and registers the action that
// runs when it is the command given (`add_*_command(app, commands)`). main()
// parses and runs that action; it knows no command by name.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <initializer_list>
#include <string>
#include <optional>
#include <utility>
#include <vector>

namespace zeppelin::cli {

class Commands {
 public:
  // `action` runs when `command` was given; it returns the exit code.
  void on(const CLI::App* command, std::function<int()> action) { actions_.emplace_back(command, std::move(action)); }

  // The exit code of the given command's action; nullopt when no registered command was given.
  std::optional<int> run_given() const {
    for (const auto& [command, action] : actions_) {
      if (command->parsed()) return action();
    }
    return std::nullopt;
  }

 private:
  std::vector<std::pair<const CLI::App*, std::function<int()>>> actions_;
};

// Ends `command`'s --help with real examples, one command line each (what it
// does after "#").
inline void add_examples(CLI::App* command, std::initializer_list<const char*> lines) {
  std::string text = "Examples:";
  for (const char* line : lines) text += std::string("\n  ") + line;
  command->footer(text);
}

}  // namespace zeppelin::cli
