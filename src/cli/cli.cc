#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "cli/autostart.h"
#include "cli/command_words.h"
#include "cli/commands.h"
#include "cli/coord_commands.h"
#include "cli/exit.h"
#include "cli/kubernetes_commands.h"
#include "cli/ns_command.h"
#include "cli/render_command.h"
#include "cli/secret_command.h"
#include "cli/server_command.h"
#include "cli/store_commands.h"
#include "cli/system_commands.h"
#include "cli/token_command.h"
#include "cli/version_command.h"
#include "client/client.h"
#include "common/fs_util.h"
#include "common/strings.h"

namespace zeppelin::cli {

int main(int argc, char** argv) {
  CLI::App app{"Zeppelin: build, run and manage replicated systems", "zeppelin"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("zeppelin ") + ZEPPELIN_VERSION);
  std::string server_url;
  std::string cacert;
  app.add_option("--server", server_url, "talk to the server at https://HOST:PORT (never starts a local one)")
      ->envname("ZEPPELIN_SERVER");
  app.add_option("--cacert", cacert, "with --server: the PEM file of the CA to trust (default: the system's)")
      ->envname("ZEPPELIN_CACERT");
  app.add_flag_callback("--no-color", [] { ::setenv("NO_COLOR", "1", 1); }, "no colours in the output (as NO_COLOR=1)");

  Commands commands;
  add_system_commands(app, commands);
  add_render_command(app, commands);
  add_deploy_command(app, commands);
  add_server_commands(app, commands);
  add_store_command(app, commands);
  auto coord = add_coord_commands(app);
  NsArgs ns_args;
  auto* ns = add_ns_command(app, ns_args);
  commands.on(ns, [&] { return cmd_ns(*ns, ns_args); });
  SecretArgs secret_args;
  auto* secret = add_secret_command(app, secret_args);
  commands.on(secret, [&] { return cmd_secret(*secret, secret_args, zeppelin_home()); });
  TokenArgs token_args;
  auto* token = add_token_command(app, token_args);
  commands.on(token, [&] { return cmd_token(*token, token_args, zeppelin_home()); });

  auto* help = app.add_subcommand("help", "Show the help of zeppelin or of a COMMAND (as COMMAND --help)");
  std::vector<std::string> help_path;
  help->add_option("command", help_path, "the command, e.g. `store snapshot`");
  add_examples(help, {"zeppelin help run", "zeppelin help store snapshot"});
  add_version_command(app, commands);
  add_examples(&app, {"zeppelin run -d                      # ./zeppelin.yaml, in the background once ready",
                      "zeppelin ps                          # every replica",
                      "zeppelin logs -f                     # follow the system of ./zeppelin.yaml"});

  if (auto code = check_command_words(app, argc, argv)) return *code;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsage;
  }

  if (*help) {
    const CLI::App* command = &app;
    std::string path = "zeppelin";  // as `COMMAND --help` names it in its usage line
    for (const auto& word : help_path) {
      const CLI::App* sub = subcommand_named(*command, word);
      if (!sub) {
        const std::string near = nearest_name(word, subcommand_names(*command, false));
        return fail("unknown command \"" + word + "\"" + (near.empty() ? "" : "; did you mean \"" + near + "\"?"), kUsage);
      }
      command = sub;
      path += " " + sub->get_name();
    }
    // (App::help() of the app would show the selected subcommand's: `help` itself.)
    std::cout << command->get_formatter()->make_help(command, path, CLI::AppFormatMode::Normal);
    return kOk;
  }
  if (!server_url.empty() && !app.got_subcommand("server")) {
    auto remote = client::parse_server_url(server_url);
    if (!remote) return fail(remote.error());
    remote->cacert = cacert;
    if (const char* token = std::getenv("ZEPPELIN_TOKEN")) remote->token = token;
    use_remote_server(std::move(*remote));
  }
  if (auto code = run_coord_command(*coord, zeppelin_home())) return *code;
  return commands.run_given().value_or(kUsage);
}

}  // namespace zeppelin::cli
