// EtcdStore over a real 3-member etcd cluster on loopback, losing its leader
// to SIGKILL in the middle of a stream of writes: writes go on being
// acknowledged, a watch delivers every revision exactly once across the
// failure, and every acknowledged write is in the store at the end.
#include <gtest/gtest.h>
#include <cstdio>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "etcd_client/etcd_store.h"
#include "etcd_process.h"

namespace zeppelin::etcd_client {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The index of the member that is the raft leader, asked of every live member.
int find_leader(testing::EtcdCluster& cluster) {
  for (std::size_t i = 0; i < cluster.members().size(); ++i) {
    auto& m = cluster.members()[i];
    if (m.pid <= 0) continue;
    ConnectionOptions options;
    options.endpoints = {m.client_url()};
    auto conn = Connection::open(options);
    if (!conn) continue;
    etcdserverpb::StatusResponse resp;
    auto status = (*conn)->call(Retry::kAlways, [&](Member& member, grpc::ClientContext& ctx) {
      return member.maintenance->Status(&ctx, etcdserverpb::StatusRequest(), &resp);
    });
    if (status.ok() && resp.leader() != 0 && resp.leader() == resp.header().member_id()) return static_cast<int>(i);
  }
  return -1;
}

TEST(EtcdFailover, LeaderKilledMidStreamLosesNoAcknowledgedWriteAndNoWatchEvent) {
  testing::EtcdCluster cluster(fs::temp_directory_path() / ("zeppelin-failover-" + std::to_string(::getpid())), 3);
  auto ready = cluster.open("/failover/");
  ASSERT_TRUE(ready.ok()) << ready.error().message;
  // The store talks to the leader first, so that its death breaks both the
  // writes and the watch stream and they must move to another member.
  const int first_leader = find_leader(cluster);
  ASSERT_GE(first_leader, 0) << "no member reports being the leader";
  EtcdStoreOptions options;
  options.prefix = "/failover/";
  options.connection.endpoints.push_back(cluster.members()[first_leader].client_url());
  for (const auto& m : cluster.members()) {
    if (m.client_url() != options.connection.endpoints[0]) options.connection.endpoints.push_back(m.client_url());
  }
  auto opened = EtcdStore::open(options);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  auto& store = **opened;
  const int64_t base = store.status().revision;
  ASSERT_GT(base, 0);

  std::mutex mu;
  std::condition_variable cv;
  std::vector<store::Event> events;
  auto watch = store.watch({"k/", store::prefix_end("k/"), base + 1}, [&](store::WatchUpdate u) {
    std::lock_guard<std::mutex> lock(mu);
    events.insert(events.end(), u.events.begin(), u.events.end());
    cv.notify_all();
  });
  ASSERT_TRUE(watch.ok()) << watch.error().message;

  constexpr int kWrites = 300;
  constexpr int kKillAfter = 100;
  std::atomic<int> acknowledged{0};
  std::map<std::string, std::string> acked;  // key -> value; written by the writer thread only
  int failed_attempts = 0;
  std::thread writer([&] {
    for (int i = 0; i < kWrites; ++i) {
      char key[16];
      std::snprintf(key, sizeof key, "k/%05d", i);
      const std::string value = "v" + std::to_string(i);
      // A write that failed may or may not have been applied: the writer
      // repeats it (a put of the same value is harmless) until acknowledged.
      const auto give_up = std::chrono::steady_clock::now() + 60s;
      while (true) {
        auto r = store.put({key, value});
        if (r.ok()) break;
        ++failed_attempts;
        if (std::chrono::steady_clock::now() > give_up) return;
        std::this_thread::sleep_for(50ms);
      }
      acked[key] = value;
      acknowledged.fetch_add(1);
      cv.notify_all();
    }
  });

  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, 30s, [&] { return acknowledged.load() >= kKillAfter; });
  }
  ASSERT_GE(acknowledged.load(), kKillAfter);
  const int leader = find_leader(cluster);
  ASSERT_GE(leader, 0) << "no member reports being the leader";
  const int before_kill = acknowledged.load();
  testing::EtcdCluster::kill(cluster.members()[leader], SIGKILL);

  writer.join();
  ASSERT_EQ(acknowledged.load(), kWrites) << "writes stopped being acknowledged after the leader died";
  EXPECT_LT(before_kill, kWrites) << "the leader died after the last write: nothing was tested";

  // Every acknowledged write is there, with its value.
  auto all = store.range({"k/", store::prefix_end("k/")});
  ASSERT_TRUE(all.ok()) << all.error().message;
  std::map<std::string, std::string> present;
  for (const auto& kv : all->kvs) present[kv.key] = kv.value;
  EXPECT_EQ(present, acked);

  // The watch saw each revision from base+1 to the last exactly once, in order.
  const int64_t last = all->revision;
  std::unique_lock<std::mutex> lock(mu);
  cv.wait_for(lock, 30s, [&] { return !events.empty() && events.back().kv.mod_revision >= last; });
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(static_cast<int64_t>(events.size()), last - base);
  for (std::size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i].kv.mod_revision, base + 1 + static_cast<int64_t>(i)) << "event " << i;
  }
  std::map<std::string, std::string> watched;
  for (const auto& e : events) watched[e.kv.key] = e.kv.value;
  EXPECT_EQ(watched, acked);
  std::printf("%d writes, %d failed attempts repeated, leader m%d killed after %d\n", kWrites, failed_attempts,
              leader, before_kill);
}

}  // namespace
}  // namespace zeppelin::etcd_client
