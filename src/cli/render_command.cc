#include "cli/render_command.h"

#include <filesystem>
#include <iostream>

#include "kubernetes/render.h"
#include "spec/parser.h"

namespace zeppelin::cli {

int cmd_render(const RenderArgs& args) {
  if (args.target != "kubernetes") {
    std::cerr << "zeppelin: unknown --target \"" << args.target << "\" (expected kubernetes)\n";
    return 2;
  }
  if (args.format != "yaml" && args.format != "json") {
    std::cerr << "zeppelin: -o must be yaml or json\n";
    return 2;
  }
  std::error_code ec;
  const std::string file = std::filesystem::is_directory(args.file, ec)
                               ? (std::filesystem::path(args.file) / "zeppelin.yaml").string()
                               : args.file;
  auto system = spec::load_spec_file(file);
  if (!system) {
    std::cerr << system.error().message << "\n";
    return system.error().code == Errc::kNotFound ? 1 : 2;
  }
  // Diagnostics name the file as the user wrote it, as `validate` does.
  system->file = file;
  auto manifest = kubernetes::render(*system, {args.ns});
  if (!manifest) {
    std::cerr << manifest.error().message << "\n";
    return 2;
  }
  for (const auto& w : manifest->warnings) std::cerr << "zeppelin: warning: " << w << "\n";
  const std::string out =
      args.format == "json" ? kubernetes::to_json(manifest->objects) : kubernetes::to_yaml(manifest->objects);
  std::cout << out << std::flush;
  return std::cout ? 0 : 1;
}

}  // namespace zeppelin::cli
