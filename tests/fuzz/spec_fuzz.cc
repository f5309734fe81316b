// Fuzz target: the spec parser and the replica environment built from what it
// accepts. Whatever the input, parsing must not crash, and an accepted spec
// must satisfy the model's invariants.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "spec/parser.h"
#include "supervisor/replica_env.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = zeppelin::spec::parse_spec(text, "fuzz.yaml", "/nonexistent");
  if (!parsed.ok()) {
    // Every diagnostic is located in the file.
    check(parsed.error().message.rfind("fuzz.yaml:", 0) == 0);
    return 0;
  }
  const auto& system = *parsed;
  check(zeppelin::spec::is_dns_label(system.name));
  check(!system.services.empty());
  check(system.dependency_order().size() == system.services.size());
  for (const auto& svc : system.services) {
    check(svc.is_container() || !svc.command.empty());  // an image service may run the image's own CMD
    check(!svc.is_container() || !svc.image.empty());
    check(svc.replicas >= 0 && svc.replicas <= 10000);
    zeppelin::supervisor::ReplicaIdentity id;
    id.system = &system;
    id.service = &svc;
    id.replicas = svc.replicas;
    id.host = "127.0.0.1";
    auto env = zeppelin::supervisor::build_launch_env(id, {{"HOME", "/root"}});
    if (env.ok()) check(!env->argv.empty());
  }
  return 0;
}
