#include "cli/render_command.h"

#include <filesystem>
#include <iostream>
#include <memory>

#include "kubernetes/render.h"
#include "kubernetes/self.h"
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
  if (args.self) {
    if (!args.file.empty()) {
      std::cerr << "zeppelin: --self renders the zeppelin server itself and takes no spec file\n";
      return 2;
    }
    auto objects = kubernetes::render_self({args.ns, args.image, args.storage});
    if (!objects) {
      std::cerr << "zeppelin: " << objects.error().message << "\n";
      return 2;
    }
    std::cout << (args.format == "json" ? kubernetes::to_json(*objects) : kubernetes::to_yaml(*objects)) << std::flush;
    return std::cout ? 0 : 1;
  }
  if (args.file.empty()) {
    std::cerr << "zeppelin: render needs a spec file (or --self)\n";
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
  std::vector<std::string> warnings;
  auto out = kubernetes::render_to(
      *system, {args.ns}, args.format == "json" ? kubernetes::Format::kJson : kubernetes::Format::kYaml, &warnings);
  if (!out) {
    std::cerr << out.error().message << "\n";
    return 2;
  }
  for (const auto& w : warnings) std::cerr << "zeppelin: warning: " << w << "\n";
  std::cout << *out << std::flush;
  return std::cout ? 0 : 1;
}

void add_render_command(CLI::App& app, Commands& commands) {
  auto args = std::make_shared<RenderArgs>();
  RenderArgs& a = *args;
  auto* render = app.add_subcommand("render", "Print the system as manifests for another platform (Kubernetes)");
  render->add_option("--target", a.target, "kubernetes")->required();
  render->add_option("file", a.file, "spec file, or a directory holding zeppelin.yaml");
  render->add_flag("--self", a.self, "the zeppelin server itself, with RBAC limited to its namespace");
  a.image = std::string("zeppelin:") + ZEPPELIN_VERSION;
  render->add_option("--image", a.image, "with --self: the zeppelin image")->capture_default_str();
  render->add_option("--storage", a.storage, "with --self: size of the server's data volume")->capture_default_str();
  render->add_option("-n,--namespace", a.ns, "namespace of every object (default: none, kubectl's current)");
  render->add_option("-o,--output", a.format, "yaml or json")->capture_default_str();
  add_examples(render, {"zeppelin render --target kubernetes examples/shop > shop.yaml",
                        "zeppelin render --target kubernetes -n shop -o json",
                        "zeppelin render --target kubernetes --self -n zeppelin"});
  commands.on(render, [args] { return cmd_render(*args); });
}

}  // namespace zeppelin::cli
