// Micro-benchmarks of the spec parser and of the replica environment builder.
// Run: build/bench/zeppelin_bench (see bench/README.md).
#include <benchmark/benchmark.h>

#include <map>
#include <string>

#include "spec/parser.h"
#include "supervisor/replica_env.h"

namespace {

// A spec with `services` services, each with ports, env, a health check,
// resources and (after the first) a dependency on the previous service.
std::string make_spec(int services) {
  std::string s = "name: bench\nservices:\n";
  for (int i = 0; i < services; ++i) {
    const std::string name = "svc-" + std::to_string(i);
    s += "  " + name + ":\n";
    s += "    command: [\"/usr/bin/server\", \"--port\", \"${PORT}\", \"--peers\", \"${ZEPPELIN_PEERS}\"]\n";
    s += "    replicas: 3\n";
    s += "    ports:\n";
    s += "      - {name: http, port: " + std::to_string(10000 + 2 * i) + "}\n";
    s += "      - {name: admin, port: " + std::to_string(10001 + 2 * i) + "}\n";
    s += "    env:\n";
    s += "      LOG_LEVEL: info\n";
    s += "      LISTEN: \"${ZEPPELIN_HOST}:${PORT_HTTP}\"\n";
    s += "    resources: {cpu: 500m, memory: 128Mi}\n";
    s += "    health:\n";
    s += "      http: {port: http, path: /healthz}\n";
    s += "      interval: 5s\n";
    if (i > 0) s += "    depends_on: [svc-" + std::to_string(i - 1) + "]\n";
  }
  return s;
}

void BM_ParseSpec(benchmark::State& state) {
  const std::string text = make_spec(static_cast<int>(state.range(0)));
  {
    auto check = zeppelin::spec::parse_spec(text, "bench.yaml", "/tmp");
    if (!check.ok()) {
      state.SkipWithError(("generated spec does not parse: " + check.error().message).c_str());
      return;
    }
  }
  for (auto _ : state) {
    auto system = zeppelin::spec::parse_spec(text, "bench.yaml", "/tmp");
    benchmark::DoNotOptimize(system);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(text.size()));
  state.counters["services"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_ParseSpec)->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

void BM_BuildLaunchEnv(benchmark::State& state) {
  auto parsed = zeppelin::spec::parse_spec(make_spec(2), "bench.yaml", "/tmp");
  if (!parsed.ok()) {
    state.SkipWithError(("generated spec does not parse: " + parsed.error().message).c_str());
    return;
  }
  const zeppelin::spec::System& system = *parsed;
  zeppelin::supervisor::ReplicaIdentity id;
  id.system = &system;
  id.service = &system.services[1];
  id.ordinal = 1;
  id.replicas = 3;
  id.host = "127.0.0.1";
  id.peers = "127.0.0.1:10002,127.0.0.1:10002,127.0.0.1:10002";
  id.dependencies["svc-0"] = "127.0.0.1:10000,127.0.0.1:10000,127.0.0.1:10000";
  id.home = "/tmp/zeppelin-bench";

  // A caller environment of typical size (a login shell has 30-60 variables).
  std::map<std::string, std::string> caller_env;
  for (int i = 0; i < static_cast<int>(state.range(0)); ++i) {
    caller_env["VAR_" + std::to_string(i)] = "/usr/local/bin:/usr/bin:/bin:" + std::to_string(i);
  }
  for (auto _ : state) {
    auto env = zeppelin::supervisor::build_launch_env(id, caller_env);
    benchmark::DoNotOptimize(env);
  }
  state.counters["caller_vars"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_BuildLaunchEnv)->Arg(0)->Arg(50)->Unit(benchmark::kMicrosecond);

}  // namespace
