// The embedded store: durable put throughput (every put fsync'd, shared by
// group commit) with 1 and 64 writers, and range throughput from memory.
// The database lives in $TMPDIR (default /tmp); run on the disk you care about.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "store/embedded_store.h"

namespace {

namespace fs = std::filesystem;
using zeppelin::store::EmbeddedStore;

std::unique_ptr<EmbeddedStore> g_store;
std::atomic<int64_t> g_counter{0};
fs::path g_dir;

void open_fresh() {
  g_dir = fs::temp_directory_path() / ("zeppelin-store-bench-" + std::to_string(::getpid()));
  fs::remove_all(g_dir);
  auto s = EmbeddedStore::open(g_dir.string());
  if (!s) {
    std::fprintf(stderr, "%s\n", s.error().message.c_str());
    std::abort();
  }
  g_store = std::move(*s);
}

void close_and_remove() {
  g_store.reset();
  fs::remove_all(g_dir);
}

void BM_DurablePut(benchmark::State& state) {
  if (state.thread_index() == 0) open_fresh();
  const std::string value(256, 'v');
  for (auto _ : state) {
    const int64_t n = g_counter.fetch_add(1);
    auto r = g_store->put({"bench/key/" + std::to_string(n % 10000), value});
    if (!r) state.SkipWithError(r.error().message.c_str());
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    const auto stats = g_store->stats();
    state.counters["writes_per_fsync"] = stats.commits ? static_cast<double>(stats.writes) / stats.commits : 0;
    close_and_remove();
  }
}
BENCHMARK(BM_DurablePut)->Threads(1)->UseRealTime();
BENCHMARK(BM_DurablePut)->Threads(64)->UseRealTime();

// Range of 10 keys out of 10,000 under a prefix, served from memory.
void BM_Range(benchmark::State& state) {
  if (state.thread_index() == 0) {
    open_fresh();
    zeppelin::store::TxnRequest load;
    for (int i = 0; i < 10000; ++i) {
      char key[32];
      std::snprintf(key, sizeof key, "bench/%05d", i);
      load.success.emplace_back(zeppelin::store::PutRequest{key, std::string(256, 'v'), 0, false, false, false});
    }
    if (!g_store->txn(load)) std::abort();
  }
  int64_t i = 0;
  for (auto _ : state) {
    char key[32], end[32];
    const int start = static_cast<int>((i++ * 7919) % 9990);
    std::snprintf(key, sizeof key, "bench/%05d", start);
    std::snprintf(end, sizeof end, "bench/%05d", start + 10);
    auto r = g_store->range({key, end, 0, 0, false, false});
    if (!r || r->kvs.size() != 10) state.SkipWithError("range returned the wrong number of keys");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) close_and_remove();
}
BENCHMARK(BM_Range)->Threads(1)->UseRealTime();
BENCHMARK(BM_Range)->Threads(2)->UseRealTime();

}  // namespace
