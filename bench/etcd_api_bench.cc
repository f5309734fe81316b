// The etcd v3 API through gRPC, side by side: the same client and load against
// every endpoint named in $ETCD_BENCH_ENDPOINTS ("name=HOST:PORT,..."), e.g.
// zeppelin's --etcd-listen and a real etcd (bench/etcd_side_by_side.sh starts both).
//   BM_Put/<name>/clients:N    durable puts of 256-byte values from N clients, each with its
//                              own connection and one call in flight, for $ETCD_BENCH_SECONDS (3)
//   BM_Range/<name>/clients:N  single-key linearizable reads, the same way
//   (p50_ms and p99_ms: percentiles of every call's latency; client_us_per_op: the
//   benchmark's own CPU time per call; server_us_per_op: the server's, when
//   $ETCD_BENCH_PIDS gives "name=PID,...")
//   BM_WatchFanout/<name>/watchers:N  N watchers on one key (multiplexed on 10
//                              streams over 10 connections, as etcd clients do): time from
//                              a put until every watcher got its event (median_ms, p99_ms)
//   BM_GatewayPut/<name>/threads:N, BM_GatewayRange/<name>/threads:N  the same puts and
//                              ranges through the JSON gateway, HTTP/1.1 keep-alive,
//                              one connection per client thread
#include <benchmark/benchmark.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "rpc.grpc.pb.h"

namespace {

// Each call's latency on this thread; reported as p50_ms and p99_ms, averaged
// over the benchmark's threads (each thread's own percentiles).
class Latencies {
 public:
  explicit Latencies(benchmark::State& state) : state_(state) { samples_.reserve(1 << 16); }
  ~Latencies() {
    if (samples_.empty()) return;
    std::sort(samples_.begin(), samples_.end());
    auto at = [&](std::size_t percent) {
      return samples_[std::min(samples_.size() - 1, samples_.size() * percent / 100)];
    };
    state_.counters["p50_ms"] = benchmark::Counter(at(50), benchmark::Counter::kAvgThreads);
    state_.counters["p99_ms"] = benchmark::Counter(at(99), benchmark::Counter::kAvgThreads);
  }
  // Times one call of `op`; returns what it returns.
  template <class Op>
  bool time(Op&& op) {
    const auto start = std::chrono::steady_clock::now();
    const bool ok = op();
    samples_.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    return ok;
  }

 private:
  benchmark::State& state_;
  std::vector<double> samples_;
};

// The server's CPU time (user + system, from /proc/PID/stat) per operation,
// when $ETCD_BENCH_PIDS names the server's process: what each call costs the
// server, apart from the client that shares the machine. Thread 0 reads it
// before and after the run; every thread runs the same number of iterations.
class ServerCpu {
 public:
  ServerCpu(benchmark::State& state, int pid) : state_(state), pid_(pid) {
    if (pid_ > 0 && state_.thread_index() == 0) start_ = read();
  }
  ~ServerCpu() {
    if (pid_ <= 0 || state_.thread_index() != 0 || start_ < 0) return;
    const double ops =
        ops_ > 0 ? static_cast<double>(ops_) : static_cast<double>(state_.iterations()) * state_.threads();
    if (ops > 0) state_.counters["server_us_per_op"] = (read() - start_) * 1e6 / ops;
  }
  // The operations done, where they are not the benchmark's iterations.
  void per(int64_t ops) { ops_ = ops; }

 private:
  double read() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string line;
    std::getline(in, line);
    // Fields after the command name, which is in parentheses and may hold spaces.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
    }
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
  }

  benchmark::State& state_;
  int pid_;
  double start_ = -1;
  int64_t ops_ = 0;
};

std::unique_ptr<etcdserverpb::KV::Stub> connect(const std::string& endpoint) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection per client, as separate processes would have
  return etcdserverpb::KV::NewStub(grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args));
}

// The benchmark process's own CPU time (user + system), in seconds.
double own_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// N clients, each with its own connection and one call in flight at a time
// (as etcd's own benchmark tool runs --clients N --conns N), driven for a
// fixed time from one completion-queue thread ($ETCD_BENCH_CLIENT_THREADS for
// more) rather than a thread per client: the client shares this machine's two
// cores with the server, and a thread per client spent more CPU per call than
// either server; one thread spent the least (client_us_per_op reports it).
// Every call is timed.
class ClosedLoop {
 public:
  enum class Op { kPut, kRange };

  ClosedLoop(const std::string& endpoint, Op op, int clients) : op_(op) {
    for (int i = 0; i < clients; ++i) {
      auto c = std::make_unique<Client>();
      c->kv = connect(endpoint);
      c->prefix = "bench/put/" + std::to_string(i) + "/";
      c->put.set_value(std::string(256, 'v'));
      c->range.set_key("bench/range");
      clients_.push_back(std::move(c));
    }
  }

  // Runs for `seconds`; false (with `error` set) if a call failed.
  bool run(double seconds, std::string* error) {
    const char* env_threads = std::getenv("ETCD_BENCH_CLIENT_THREADS");
    const int threads = std::clamp(env_threads ? std::atoi(env_threads) : 1, 1, static_cast<int>(clients_.size()));
    deadline_ = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
    std::vector<std::thread> workers;
    std::vector<std::string> errors(threads);
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([this, t, threads, &errors] { drive(t, threads, &errors[t]); });
    }
    for (auto& w : workers) w.join();
    for (auto& e : errors) {
      if (!e.empty()) {
        *error = e;
        return false;
      }
    }
    return true;
  }

  int64_t calls() const {
    int64_t n = 0;
    for (const auto& c : clients_) n += static_cast<int64_t>(c->latencies_ms.size());
    return n;
  }

  // The p-th percentile of every call's latency, in milliseconds.
  double percentile(std::size_t p) const {
    std::vector<double> all;
    for (const auto& c : clients_) all.insert(all.end(), c->latencies_ms.begin(), c->latencies_ms.end());
    if (all.empty()) return 0;
    const auto at = std::min(all.size() - 1, all.size() * p / 100);
    std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(at), all.end());
    return all[at];
  }

 private:
  struct Client {
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::string prefix;
    int64_t next_key = 0;
    std::unique_ptr<grpc::ClientContext> ctx;
    etcdserverpb::PutRequest put;
    etcdserverpb::PutResponse put_response;
    etcdserverpb::RangeRequest range;
    etcdserverpb::RangeResponse range_response;
    std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::PutResponse>> put_call;
    std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::RangeResponse>> range_call;
    grpc::Status status;
    std::chrono::steady_clock::time_point started;
    std::vector<double> latencies_ms;
  };

  void start(Client& c, grpc::CompletionQueue& cq) {
    c.ctx = std::make_unique<grpc::ClientContext>();
    c.started = std::chrono::steady_clock::now();
    if (op_ == Op::kPut) {
      c.put.set_key(c.prefix + std::to_string(c.next_key++ % 1000));
      c.put_call = c.kv->AsyncPut(c.ctx.get(), c.put, &cq);
      c.put_call->Finish(&c.put_response, &c.status, &c);
    } else {
      c.range_call = c.kv->AsyncRange(c.ctx.get(), c.range, &cq);
      c.range_call->Finish(&c.range_response, &c.status, &c);
    }
  }

  // Thread `t` of `threads` drives clients t, t + threads, ...
  void drive(int t, int threads, std::string* error) {
    grpc::CompletionQueue cq;
    int in_flight = 0;
    for (std::size_t i = static_cast<std::size_t>(t); i < clients_.size(); i += static_cast<std::size_t>(threads)) {
      clients_[i]->latencies_ms.reserve(1 << 16);
      start(*clients_[i], cq);
      ++in_flight;
    }
    void* tag = nullptr;
    bool ok = false;
    while (in_flight > 0 && cq.Next(&tag, &ok)) {
      auto& c = *static_cast<Client*>(tag);
      const auto now = std::chrono::steady_clock::now();
      c.latencies_ms.push_back(std::chrono::duration<double, std::milli>(now - c.started).count());
      const bool answered = op_ == Op::kPut ? true : c.range_response.kvs_size() == 1;
      if (!ok || !c.status.ok() || !answered) {
        if (error->empty()) error->assign(c.status.ok() ? "no answer" : c.status.error_message());
        deadline_ = now;  // the others stop after their call in flight
      }
      if (now < deadline_.load()) {
        start(c, cq);
      } else {
        --in_flight;
      }
    }
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
  }

  Op op_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::atomic<std::chrono::steady_clock::time_point> deadline_{};
};

// Seconds each closed-loop run lasts: $ETCD_BENCH_SECONDS, default 3.
double run_seconds() {
  const char* s = std::getenv("ETCD_BENCH_SECONDS");
  return s ? std::atof(s) : 3.0;
}

void bench_closed_loop(benchmark::State& state, std::string endpoint, int pid, ClosedLoop::Op op) {
  const int clients = static_cast<int>(state.range(0));
  if (op == ClosedLoop::Op::kRange) {
    auto kv = connect(endpoint);
    grpc::ClientContext ctx;
    etcdserverpb::PutRequest req;
    req.set_key("bench/range");
    req.set_value(std::string(256, 'v'));
    etcdserverpb::PutResponse resp;
    if (auto s = kv->Put(&ctx, req, &resp); !s.ok()) {
      state.SkipWithError(s.error_message().c_str());
      return;
    }
  }
  ClosedLoop load(endpoint, op, clients);
  int64_t calls = 0;
  double client_cpu = 0;
  for (auto _ : state) {
    ServerCpu server_cpu(state, pid);
    const double cpu_before = own_cpu_seconds();
    std::string error;
    if (!load.run(run_seconds(), &error)) {
      state.SkipWithError(error.c_str());
      return;
    }
    client_cpu += own_cpu_seconds() - cpu_before;
    calls = load.calls();
    server_cpu.per(calls);
  }
  state.SetItemsProcessed(calls);
  state.counters["p50_ms"] = load.percentile(50);
  state.counters["p99_ms"] = load.percentile(99);
  if (calls > 0) state.counters["client_us_per_op"] = client_cpu * 1e6 / static_cast<double>(calls);
}

// --- Watch fan-out -----------------------------------------------------------

void bench_watch_fanout(benchmark::State& state, std::string endpoint) {
  const int watchers = static_cast<int>(state.range(0));
  constexpr int kStreams = 10;
  constexpr int kPuts = 50;
  const std::string key = "bench/fanout";
  std::atomic<int64_t> delivered{0};
  // The reader that delivers the target-th event wakes the timing thread; the
  // others don't, so the client spends no wake-up per event.
  std::atomic<int64_t> target{INT64_MAX};
  std::mutex mu;
  std::condition_variable cv;

  struct Stream {
    std::unique_ptr<etcdserverpb::Watch::Stub> stub;
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>> rw;
    std::thread reader;
  };
  std::vector<std::unique_ptr<Stream>> streams;
  std::atomic<int> created{0};
  for (int i = 0; i < kStreams; ++i) {
    auto s = std::make_unique<Stream>();
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    s->stub =
        etcdserverpb::Watch::NewStub(grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args));
    s->rw = s->stub->Watch(&s->ctx);
    Stream* raw = s.get();
    s->reader = std::thread([raw, &delivered, &target, &created, watchers, &mu, &cv] {
      etcdserverpb::WatchResponse r;
      while (raw->rw->Read(&r)) {
        bool wake = false;
        if (r.created()) wake = created.fetch_add(1) + 1 == watchers;
        if (r.events_size() > 0) wake = delivered.fetch_add(1) + 1 == target.load();
        if (wake) {
          std::lock_guard<std::mutex> lock(mu);
          cv.notify_all();
        }
      }
    });
    streams.push_back(std::move(s));
  }
  for (int w = 0; w < watchers; ++w) {
    etcdserverpb::WatchRequest req;
    req.mutable_create_request()->set_key(key);
    streams[w % kStreams]->rw->Write(req);
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return created.load() >= watchers; });
  }
  auto kv = connect(endpoint);
  std::vector<double> latencies_ms;
  for (auto _ : state) {
    for (int i = 0; i < kPuts; ++i) {
      target.store(delivered.load() + watchers);
      const auto start = std::chrono::steady_clock::now();
      grpc::ClientContext ctx;
      etcdserverpb::PutRequest req;
      req.set_key(key);
      req.set_value(std::to_string(i));
      etcdserverpb::PutResponse resp;
      if (auto st = kv->Put(&ctx, req, &resp); !st.ok()) {
        state.SkipWithError(st.error_message().c_str());
        break;
      }
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return delivered.load() >= target.load(); });
      latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
  }
  for (auto& s : streams) {
    s->ctx.TryCancel();
    s->reader.join();
  }
  if (latencies_ms.empty()) return;
  std::sort(latencies_ms.begin(), latencies_ms.end());
  state.counters["median_ms"] = latencies_ms[latencies_ms.size() / 2];
  state.counters["p99_ms"] = latencies_ms[std::min(latencies_ms.size() - 1, latencies_ms.size() * 99 / 100)];
}

// --- The JSON gateway ----------------------------------------------------------

namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

class HttpClient {
 public:
  explicit HttpClient(const std::string& endpoint) : socket_(io_) {
    const auto colon = endpoint.rfind(':');
    host_ = endpoint.substr(0, colon);
    tcp::resolver resolver(io_);
    boost::asio::connect(socket_, resolver.resolve(host_, endpoint.substr(colon + 1)));
  }
  // POSTs `body`; false unless the answer is 200.
  bool post(const std::string& path, const std::string& body) {
    http::request<http::string_body> req(http::verb::post, path, 11);
    req.set(http::field::host, host_);
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    boost::system::error_code ec;
    http::write(socket_, req, ec);
    if (ec) return false;
    http::response<http::string_body> res;
    http::read(socket_, buffer_, res, ec);
    return !ec && res.result() == http::status::ok;
  }

 private:
  boost::asio::io_context io_;
  tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  std::string host_;
};

std::string base64(const std::string& in) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -6;
  for (unsigned char c : in) {
    val = (val << 8) + c;
    bits += 8;
    while (bits >= 0) {
      out.push_back(table[(val >> bits) & 0x3F]);
      bits -= 6;
    }
  }
  if (bits > -6) out.push_back(table[((val << 8) >> (bits + 8)) & 0x3F]);
  while (out.size() % 4) out.push_back('=');
  return out;
}

void bench_gateway_put(benchmark::State& state, std::string endpoint, int pid) {
  ServerCpu server_cpu(state, pid);
  HttpClient client(endpoint);
  const std::string value = base64(std::string(256, 'v'));
  const std::string prefix = "bench/gwput/" + std::to_string(state.thread_index()) + "/";
  int64_t i = 0;
  Latencies latencies(state);
  for (auto _ : state) {
    const std::string body =
        R"({"key":")" + base64(prefix + std::to_string(i++ % 1000)) + R"(","value":")" + value + R"("})";
    if (!latencies.time([&] { return client.post("/v3/kv/put", body); })) {
      state.SkipWithError("gateway put failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void bench_gateway_range(benchmark::State& state, std::string endpoint, int pid) {
  ServerCpu server_cpu(state, pid);
  HttpClient client(endpoint);
  const std::string key = base64("bench/gwrange");
  (void)client.post("/v3/kv/put", R"({"key":")" + key + R"(","value":")" + base64(std::string(256, 'v')) + R"("})");
  const std::string body = R"({"key":")" + key + R"("})";
  Latencies latencies(state);
  for (auto _ : state) {
    if (!latencies.time([&] { return client.post("/v3/kv/range", body); })) {
      state.SkipWithError("gateway range failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// $ETCD_BENCH_PIDS ("name=PID,..."): the server process behind each endpoint name.
int server_pid(const std::string& name) {
  const char* spec = std::getenv("ETCD_BENCH_PIDS");
  std::stringstream list(spec ? spec : "");
  std::string item;
  while (std::getline(list, item, ',')) {
    if (item.rfind(name + "=", 0) == 0) return std::atoi(item.c_str() + name.size() + 1);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // Many connections and watchers: raise the soft open-files limit to the hard one.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
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
    const int pid = server_pid(name);
    for (auto [label, op] :
         {std::pair{"BM_Put/", ClosedLoop::Op::kPut}, std::pair{"BM_Range/", ClosedLoop::Op::kRange}}) {
      benchmark::RegisterBenchmark((label + name).c_str(), bench_closed_loop, endpoint, pid, op)
          ->ArgName("clients")
          ->Arg(1)
          ->Arg(64)
          ->Iterations(1)
          ->UseRealTime();
    }
    for (int watchers : {1000, 10000}) {
      benchmark::RegisterBenchmark(("BM_WatchFanout/" + name).c_str(), bench_watch_fanout, endpoint)
          ->Arg(watchers)
          ->ArgName("watchers")
          ->Iterations(1)
          ->UseRealTime();
    }
    for (int threads : {1, 64}) {
      benchmark::RegisterBenchmark(("BM_GatewayPut/" + name).c_str(), bench_gateway_put, endpoint, pid)
          ->Threads(threads)
          ->UseRealTime();
    }
    for (int threads : {1, 64}) {
      benchmark::RegisterBenchmark(("BM_GatewayRange/" + name).c_str(), bench_gateway_range, endpoint, pid)
          ->Threads(threads)
          ->UseRealTime();
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
