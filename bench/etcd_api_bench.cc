// The etcd v3 API through gRPC, side by side: the same client and load against
// every endpoint named in $ETCD_BENCH_ENDPOINTS ("name=HOST:PORT,..."), e.g.
// zeppelin's --etcd-listen and a real etcd (bench/etcd_side_by_side.sh starts both).
//   BM_Put/<name>/threads:N    durable puts of 256-byte values, one channel per client thread
//   BM_Range/<name>/threads:N  single-key linearizable reads
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "rpc.grpc.pb.h"

namespace {

std::unique_ptr<etcdserverpb::KV::Stub> connect(const std::string& endpoint) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection per client, as separate processes would have
  return etcdserverpb::KV::NewStub(grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args));
}

void bench_put(benchmark::State& state, std::string endpoint) {
  auto kv = connect(endpoint);
  const std::string value(256, 'v');
  const std::string prefix = "bench/put/" + std::to_string(state.thread_index()) + "/";
  int64_t i = 0;
  for (auto _ : state) {
    grpc::ClientContext ctx;
    etcdserverpb::PutRequest req;
    req.set_key(prefix + std::to_string(i++ % 1000));
    req.set_value(value);
    etcdserverpb::PutResponse resp;
    if (auto s = kv->Put(&ctx, req, &resp); !s.ok()) {
      state.SkipWithError(s.error_message().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void bench_range(benchmark::State& state, std::string endpoint) {
  auto kv = connect(endpoint);
  {
    grpc::ClientContext ctx;
    etcdserverpb::PutRequest req;
    req.set_key("bench/range");
    req.set_value(std::string(256, 'v'));
    etcdserverpb::PutResponse resp;
    (void)kv->Put(&ctx, req, &resp);
  }
  for (auto _ : state) {
    grpc::ClientContext ctx;
    etcdserverpb::RangeRequest req;
    req.set_key("bench/range");
    etcdserverpb::RangeResponse resp;
    if (auto s = kv->Range(&ctx, req, &resp); !s.ok() || resp.kvs_size() != 1) {
      state.SkipWithError("range failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const char* spec = std::getenv("ETCD_BENCH_ENDPOINTS");
  if (!spec) {
    std::fprintf(stderr, "set ETCD_BENCH_ENDPOINTS=name=HOST:PORT[,name=HOST:PORT...]\n");
    return 2;
  }
  std::stringstream list(spec);
  std::string item;
  while (std::getline(list, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "ETCD_BENCH_ENDPOINTS: %s is not name=HOST:PORT\n", item.c_str());
      return 2;
    }
    const std::string name = item.substr(0, eq);
    const std::string endpoint = item.substr(eq + 1);
    for (int threads : {1, 64}) {
      benchmark::RegisterBenchmark(("BM_Put/" + name).c_str(), bench_put, endpoint)->Threads(threads)->UseRealTime();
    }
    for (int threads : {1, 64}) {
      benchmark::RegisterBenchmark(("BM_Range/" + name).c_str(), bench_range, endpoint)
          ->Threads(threads)
          ->UseRealTime();
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
