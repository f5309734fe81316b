// Time as code on an event loop sees it: what time it is, and timers that run
// a function on the loop later. The server uses SteadyClock; unit tests use
// ManualClock and move time by hand, so that backoff, grace periods, health
// intervals and timeouts are tested in microseconds and without sleeping.
//
// Threading: both are used from the loop's thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>

namespace zeppelin {

class Timer {
 public:
  virtual ~Timer() = default;  // cancels
  // Runs `fn` on the loop once the clock reaches `when`, replacing whatever
  // was scheduled before. A cancelled or replaced function never runs.
  virtual void schedule_at(std::chrono::steady_clock::time_point when, std::function<void()> fn) = 0;
  virtual void cancel() = 0;
};

class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual time_point now() const = 0;
  virtual std::unique_ptr<Timer> make_timer() = 0;
};

// std::chrono::steady_clock, with timers on an io_context.
class SteadyClock final : public Clock {
 public:
  explicit SteadyClock(boost::asio::io_context& io) : io_(io) {}
  time_point now() const override { return std::chrono::steady_clock::now(); }
  std::unique_ptr<Timer> make_timer() override;

 private:
  boost::asio::io_context& io_;
};

// A clock that stands still until advance() moves it. Due timers run in the
// order of their times, each with now() at its own time, and the loop's
// ready handlers run (io.poll()) before and after each, as they would
// between timers on a real loop.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(boost::asio::io_context& io);
  time_point now() const override { return now_; }
  std::unique_ptr<Timer> make_timer() override;
  void advance(std::chrono::steady_clock::duration by);
  // Advances to the earliest pending timer and runs it; false if none is pending.
  bool run_next();
  std::size_t pending() const { return due_.size(); }

 private:
  class ManualTimer;
  boost::asio::io_context& io_;
  time_point now_;
  std::uint64_t next_id_ = 1;
  // (time, id) -> fn: ties run in the order they were scheduled.
  std::map<std::pair<time_point, std::uint64_t>, std::function<void()>> due_;
};

}  // namespace zeppelin
