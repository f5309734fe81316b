// Benchmarks of `zeppelin render --target kubernetes`: kubernetes::render_to()
// in YAML and JSON, and render() alone, on generated systems of N services.
// Run: build/bench/zeppelin_bench --benchmark_filter=Render (see bench/README.md).
#include <benchmark/benchmark.h>

#include <optional>
#include <string>

#include "kubernetes/render.h"
#include "spec/parser.h"

namespace {

// Every third service is stateful with a sized volume; each has two ports,
// env with ${...} references and a plain value, a secret, resources, an HTTP
// health check with a start period, and (after the first) a dependency on the
// previous service.
std::string make_image_spec(int services) {
  std::string s = "name: bench\nservices:\n";
  for (int i = 0; i < services; ++i) {
    const std::string name = "svc-" + std::to_string(i);
    s += "  " + name + ":\n";
    s += "    image: registry.example/bench/" + name + ":1.0\n";
    s += "    command: [\"--listen\", \"${ZEPPELIN_HOST}:${PORT}\", \"--peers\", \"${ZEPPELIN_PEERS}\"]\n";
    s += "    replicas: 3\n";
    if (i % 3 == 0) {
      s += "    mode: stateful\n";
      s += "    volumes: [{name: data, path: /data, size: 10Gi}]\n";
    }
    s += "    ports:\n";
    s += "      - {name: http, port: " + std::to_string(10000 + 2 * i) + "}\n";
    s += "      - {name: admin, port: " + std::to_string(10001 + 2 * i) + "}\n";
    s += "    env:\n";
    s += "      LOG_LEVEL: info\n";
    s += "      LISTEN: \"${ZEPPELIN_HOST}:${PORT_HTTP}\"\n";
    s += "      TOKEN: {secret: bench, key: token}\n";
    s += "    resources: {cpu: 500m, memory: 128Mi}\n";
    s += "    health:\n";
    s += "      http: {port: http, path: /healthz}\n";
    s += "      interval: 5s\n";
    s += "      start_period: 10s\n";
    if (i > 0) s += "    depends_on: [svc-" + std::to_string(i - 1) + "]\n";
  }
  return s;
}

void run_render(benchmark::State& state, std::optional<zeppelin::kubernetes::Format> format) {
  auto parsed = zeppelin::spec::parse_spec(make_image_spec(static_cast<int>(state.range(0))), "bench.yaml", "/tmp");
  if (!parsed.ok()) {
    state.SkipWithError(("generated spec does not parse: " + parsed.error().message).c_str());
    return;
  }
  std::size_t bytes = 0;
  for (auto _ : state) {
    if (format) {
      auto out = zeppelin::kubernetes::render_to(*parsed, {"bench"}, *format);
      if (!out.ok()) {
        state.SkipWithError(out.error().message.c_str());
        return;
      }
      bytes = out->size();
      benchmark::DoNotOptimize(out);
    } else {
      auto manifest = zeppelin::kubernetes::render(*parsed, {"bench"});
      if (!manifest.ok()) {
        state.SkipWithError(manifest.error().message.c_str());
        return;
      }
      benchmark::DoNotOptimize(manifest);
    }
  }
  state.counters["services"] = static_cast<double>(state.range(0));
  if (bytes) state.counters["output_bytes"] = static_cast<double>(bytes);
}

// What `zeppelin render` does after parsing: render_to() with YAML (the default).
void BM_RenderKubernetesYaml(benchmark::State& state) { run_render(state, zeppelin::kubernetes::Format::kYaml); }
BENCHMARK(BM_RenderKubernetesYaml)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

void BM_RenderKubernetesJson(benchmark::State& state) { run_render(state, zeppelin::kubernetes::Format::kJson); }
BENCHMARK(BM_RenderKubernetesJson)->Arg(1000)->Unit(benchmark::kMillisecond);

// render() alone: every object kept in memory, as the tests use it.
void BM_RenderKubernetesObjects(benchmark::State& state) { run_render(state, std::nullopt); }
BENCHMARK(BM_RenderKubernetesObjects)->Arg(1000)->Unit(benchmark::kMillisecond);

}  // namespace
