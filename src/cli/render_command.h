// `zeppelin render --target kubernetes FILE [-n NAMESPACE] [-o yaml|json]`, and
// `zeppelin render --target kubernetes --self -n NAMESPACE [--image IMAGE]`.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace zeppelin::cli {

struct RenderArgs {
  std::string target;  // only "kubernetes"
  std::string file;    // a spec file, or a directory holding zeppelin.yaml
  std::string ns;      // metadata.namespace; empty: none
  std::string format = "yaml";
  bool self = false;   // the zeppelin server itself instead of a system
  std::string image;   // with self: the zeppelin image
  std::string storage = "1Gi";  // with self: the data volume's size
};

// Prints the manifest on stdout and returns 0; on any problem prints nothing
// on stdout, explains on stderr and returns 2 (1 if the file cannot be read).
int cmd_render(const RenderArgs& args);

void add_render_command(CLI::App& app, Commands& commands);

}  // namespace zeppelin::cli
