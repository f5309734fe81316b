// `zeppelin render --target kubernetes FILE [-n NAMESPACE] [-o yaml|json]`.
#pragma once

#include <string>

namespace zeppelin::cli {

struct RenderArgs {
  std::string target;  // only "kubernetes"
  std::string file;    // a spec file, or a directory holding zeppelin.yaml
  std::string ns;      // metadata.namespace; empty: none
  std::string format = "yaml";
};

// Prints the manifest on stdout and returns 0; on any problem prints nothing
// on stdout, explains on stderr and returns 2 (1 if the file cannot be read).
int cmd_render(const RenderArgs& args);

}  // namespace zeppelin::cli
