#include "cli/version_command.h"

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/autostart.h"
#include "cli/exit.h"
#include "cli/output.h"
#include "client/client.h"
#include "common/build_info.h"
#include "common/fs_util.h"

namespace zeppelin::cli {

namespace {

using nlohmann::json;

std::string describe(const json& v) {
  return "zeppelin " + v.value("version", "?") + " (commit " + v.value("commit", "?") + ", " +
         v.value("build_type", "?") + "), API " + v.value("api", "?");
}

int cmd_version(const std::string& format) {
  const BuildInfo& build = build_info();
  json out = {{"client", {{"version", build.version}, {"commit", build.commit}, {"build_type", build.build_type},
                          {"api", kApiVersion}}},
              {"server", nullptr}};
  // The server that would answer this CLI's commands, if it runs: asking
  // for a version must not start one.
  if (auto server = running_server(zeppelin_home()); server && server->reachable()) {
    auto r = server->call("GET", "/v1/version");
    if (r && r->ok() && r->body.is_object()) out["server"] = r->body;
  }
  if (!print_structured(out, format)) {
    std::cout << "client: " << describe(out["client"]) << "\n";
    std::cout << "server: " << (out["server"].is_null() ? std::string("not running") : describe(out["server"])) << "\n";
  }
  const json& s = out["server"];
  if (!s.is_null() && s.value("api", "") != kApiVersion) {
    return fail("this CLI speaks API " + std::string(kApiVersion) + " and the server API " + s.value("api", "?") +
                ": they cannot work together; use the zeppelin binary of the server's version");
  }
  return kOk;
}

}  // namespace

void add_version_command(CLI::App& app, Commands& commands) {
  auto format = std::make_shared<std::string>("table");
  auto* version = app.add_subcommand("version", "Print the versions of this CLI and of the server, if one runs")->alias("ver");
  add_output_flag(version, *format);
  add_examples(version, {"zeppelin version", "zeppelin version -o json", "zeppelin --version     # this CLI's version alone"});
  commands.on(version, [format] { return cmd_version(*format); });
}

}  // namespace zeppelin::cli
