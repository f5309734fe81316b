#include "supervisor/log_hub.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace zeppelin::supervisor {
namespace {

namespace fs = std::filesystem;

class ReplicaLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("zeppelin-log-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ReplicaLogTest, SplitsChunksIntoLinesAcrossReads) {
  ReplicaLog log((dir_ / "0.log").string(), 1 << 20, 2);
  std::vector<std::string> lines;
  auto collect = [&](std::string_view l) { lines.emplace_back(l); };
  log.append("hel", false, collect);
  log.append("lo\nwor", false, collect);
  log.append("ld\n\nlast", false, collect);
  EXPECT_EQ(lines, (std::vector<std::string>{"hello", "world", ""}));
  EXPECT_EQ(tail_lines(log.path(), 2, 10), (std::vector<std::string>{"hello", "world", "", "last"}));
}

TEST_F(ReplicaLogTest, StdoutAndStderrKeepSeparatePartialLines) {
  ReplicaLog log((dir_ / "0.log").string(), 1 << 20, 2);
  std::vector<std::string> lines;
  auto collect = [&](std::string_view l) { lines.emplace_back(l); };
  log.append("out-", false, collect);
  log.append("err\n", true, collect);
  log.append("line\n", false, collect);
  EXPECT_EQ(lines, (std::vector<std::string>{"err", "out-line"}));
}

TEST_F(ReplicaLogTest, RotatesBySizeAndKeepsOrderInTail) {
  const std::string path = (dir_ / "0.log").string();
  ReplicaLog log(path, 100, 2);
  auto ignore = [](std::string_view) {};
  for (int i = 0; i < 50; ++i) log.append("line " + std::to_string(i) + "\n", false, ignore);
  EXPECT_TRUE(fs::exists(path + ".1"));
  EXPECT_TRUE(fs::exists(path + ".2"));
  EXPECT_FALSE(fs::exists(path + ".3"));
  EXPECT_LE(fs::file_size(path), 100u);
  auto tail = tail_lines(path, 2, 3);
  EXPECT_EQ(tail, (std::vector<std::string>{"line 47", "line 48", "line 49"}));
  EXPECT_EQ(log.recent().back(), "line 49");
}

TEST(LogHub, DeliversMatchingLinesAndStopsAfterUnsubscribe) {
  LogHub hub;
  std::vector<std::string> got;
  LogFilter filter{"shop", std::string("db"), std::nullopt};
  const auto id = hub.subscribe(filter, [&](const LogLine& l) { got.push_back(l.text); });
  hub.publish({"shop", "db", 0, "stdout", "a"});
  hub.publish({"shop", "web", 0, "stdout", "b"});
  hub.publish({"other", "db", 0, "stdout", "c"});
  hub.publish({"shop", "db", 2, "stderr", "d"});
  hub.unsubscribe(id);
  hub.publish({"shop", "db", 0, "stdout", "e"});
  EXPECT_EQ(got, (std::vector<std::string>{"a", "d"}));
}

TEST(LogHub, RemovingASystemEndsItsSubscriptionsOnly) {
  LogHub hub;
  int ended = 0;
  int lines = 0;
  hub.subscribe(LogFilter{"shop", std::nullopt, std::nullopt}, [&](const LogLine&) { ++lines; }, [&] { ++ended; });
  hub.subscribe(LogFilter{"other", std::nullopt, std::nullopt}, [&](const LogLine&) { ++lines; }, [&] { ++ended; });
  hub.end_system("shop");
  EXPECT_EQ(ended, 1);
  hub.publish({"shop", "db", 0, "stdout", "after removal"});
  hub.publish({"other", "db", 0, "stdout", "still followed"});
  EXPECT_EQ(lines, 1);
}

}  // namespace
}  // namespace zeppelin::supervisor
