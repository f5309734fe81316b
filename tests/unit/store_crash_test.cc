// Fault injection: a child process writes to the store from several threads
// and reports every acknowledged write over a pipe; the parent kills it with
// SIGKILL at a random moment, reopens the store, and checks that every
// acknowledged write is there. Repeated, so recovery itself is crashed into.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "store/embedded_store.h"

namespace zeppelin::store {
namespace {

namespace fs = std::filesystem;

std::string value_for(const std::string& key, std::size_t size) {
  std::string v;
  while (v.size() < size) v += key + ";";
  v.resize(size);
  return v;
}

// The child: never returns. Each acknowledged put is reported as "KEY REVISION SIZE\n".
[[noreturn]] void write_until_killed(const std::string& dir, int round, int out_fd) {
  auto opened = EmbeddedStore::open(dir);
  if (!opened) {
    std::fprintf(stderr, "child: %s\n", opened.error().message.c_str());
    ::_exit(3);
  }
  auto& store = *opened;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(round * 100 + t));
      for (int i = 0;; ++i) {
        const std::string key = "crash/" + std::to_string(round) + "/" + std::to_string(t) + "/" + std::to_string(i);
        const std::size_t size = rng() % 2 ? 16 : 4096;  // big values push the WAL through checkpoints
        auto r = store->put({key, value_for(key, size)});
        if (!r) {
          std::fprintf(stderr, "child: put %s: %s\n", key.c_str(), r.error().message.c_str());
          ::_exit(4);
        }
        const std::string line = key + " " + std::to_string(r->revision) + " " + std::to_string(size) + "\n";
        if (::write(out_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) ::_exit(5);
      }
    });
  }
  for (auto& th : threads) th.join();
  ::_exit(0);
}

struct Ack {
  int64_t revision;
  std::size_t size;
};

TEST(StoreCrash, KillNineNeverLosesAnAcknowledgedWrite) {
  const fs::path dir = fs::temp_directory_path() / ("zeppelin-store-crash-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));

  std::map<std::string, Ack> acknowledged;
  for (int round = 0; round < 6; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(fds[0]);
      write_until_killed(dir.string(), round, fds[1]);
    }
    ::close(fds[1]);

    // Kill after a random number of acknowledgements: anywhere from the first
    // writes after recovery to well into WAL checkpoints.
    const std::size_t kill_after = 1 + rng() % 600;
    std::string pending;
    std::size_t acks_this_round = 0;
    bool killed = false;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) break;  // EOF: the child is gone and every report is read
      pending.append(buf, static_cast<std::size_t>(n));
      std::size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        std::istringstream line(pending.substr(0, nl));
        pending.erase(0, nl + 1);
        std::string key;
        Ack ack{};
        line >> key >> ack.revision >> ack.size;
        acknowledged[key] = ack;
        ++acks_this_round;
      }
      if (!killed && acks_this_round >= kill_after) {
        ::kill(child, SIGKILL);
        killed = true;
      }
    }
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "round " << round << ": the writer exited by itself (status " << status << ")";
    ASSERT_GE(acks_this_round, kill_after);

    // Recover and check every write ever acknowledged, from every round.
    auto reopened = EmbeddedStore::open(dir.string());
    ASSERT_TRUE(reopened.ok()) << "round " << round << ": " << reopened.error().message;
    auto& store = *reopened;
    int64_t max_acked = 0;
    for (const auto& [key, ack] : acknowledged) {
      auto r = store->range({key});
      ASSERT_TRUE(r.ok()) << r.error().message;
      ASSERT_EQ(r->kvs.size(), 1u) << "round " << round << ": acknowledged key " << key << " is missing";
      EXPECT_EQ(r->kvs[0].mod_revision, ack.revision) << key;
      EXPECT_EQ(r->kvs[0].value, value_for(key, ack.size)) << key;
      max_acked = std::max(max_acked, ack.revision);
    }
    EXPECT_GE(store->status().revision, max_acked);
    auto all = store->range({"crash/", prefix_end("crash/")});
    ASSERT_TRUE(all.ok());
    EXPECT_GE(all->count, static_cast<int64_t>(acknowledged.size()));
    // Still writable after recovery.
    auto after = store->put({"after-crash", std::to_string(round)});
    ASSERT_TRUE(after.ok()) << after.error().message;
    EXPECT_GT(after->revision, max_acked);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace zeppelin::store
