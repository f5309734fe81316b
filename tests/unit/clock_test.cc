// Timers of common/clock.h: cancel and replace are exact on both clocks, and
// the manual clock runs what is due in order, at its own time.
#include "common/clock.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <string>
#include <vector>

namespace zeppelin {
namespace {

using namespace std::chrono_literals;

TEST(SteadyClockTest, ATimerCancelledByAnotherThatExpiredWithItDoesNotRun) {
  boost::asio::io_context io;
  SteadyClock clock(io);
  auto first = clock.make_timer();
  auto second = clock.make_timer();
  std::vector<std::string> ran;
  const auto when = clock.now() + 1ms;
  // Both expire in the same pass of the loop, so both handlers are queued
  // before the first runs; a plain asio timer would still run the second.
  first->schedule_at(when, [&] {
    ran.push_back("first");
    second->cancel();
  });
  second->schedule_at(when, [&] { ran.push_back("second"); });
  io.run_for(200ms);
  EXPECT_EQ(ran, std::vector<std::string>{"first"});
}

TEST(SteadyClockTest, ReschedulingReplacesThePendingFunction) {
  boost::asio::io_context io;
  SteadyClock clock(io);
  auto timer = clock.make_timer();
  std::vector<int> ran;
  timer->schedule_at(clock.now() + 1ms, [&] { ran.push_back(1); });
  timer->schedule_at(clock.now() + 2ms, [&] { ran.push_back(2); });
  io.run_for(200ms);
  EXPECT_EQ(ran, std::vector<int>{2});
}

TEST(ManualClockTest, DueTimersRunInTimeOrderEachAtItsOwnTime) {
  boost::asio::io_context io;
  ManualClock clock(io);
  const auto start = clock.now();
  auto a = clock.make_timer();
  auto b = clock.make_timer();
  auto c = clock.make_timer();
  std::vector<std::pair<char, std::chrono::milliseconds>> ran;
  auto record = [&](char name) {
    return [&, name] { ran.emplace_back(name, std::chrono::duration_cast<std::chrono::milliseconds>(clock.now() - start)); };
  };
  a->schedule_at(start + 30ms, record('a'));
  b->schedule_at(start + 10ms, record('b'));
  c->schedule_at(start + 20ms, record('c'));
  c->cancel();
  clock.advance(25ms);
  EXPECT_EQ(ran, (std::vector<std::pair<char, std::chrono::milliseconds>>{{'b', 10ms}}));
  EXPECT_EQ(clock.now() - start, 25ms);
  a.reset();  // destroying a timer cancels it
  clock.advance(1s);
  EXPECT_EQ(ran.size(), 1u);
  EXPECT_EQ(clock.pending(), 0u);
}

TEST(ManualClockTest, WorkPostedByATimerRunsBeforeTheNextTimer) {
  boost::asio::io_context io;
  ManualClock clock(io);
  auto a = clock.make_timer();
  auto b = clock.make_timer();
  std::vector<std::string> ran;
  a->schedule_at(clock.now() + 1ms, [&] { boost::asio::post(io, [&] { ran.push_back("posted by a"); }); });
  b->schedule_at(clock.now() + 2ms, [&] { ran.push_back("b"); });
  clock.advance(5ms);
  EXPECT_EQ(ran, (std::vector<std::string>{"posted by a", "b"}));
}

}  // namespace
}  // namespace zeppelin
