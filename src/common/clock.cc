#include "common/clock.h"

#include <boost/asio/steady_timer.hpp>
#include <optional>

namespace zeppelin {

namespace {

class AsioTimer final : public Timer {
 public:
  explicit AsioTimer(boost::asio::io_context& io) : timer_(io) {}

  void schedule_at(std::chrono::steady_clock::time_point when, std::function<void()> fn) override {
    // An asio timer that has already expired still runs its handler after
    // cancel(); the generation makes cancel and replace exact.
    const std::uint64_t generation = ++*generation_;
    timer_.expires_at(when);
    timer_.async_wait([current = std::weak_ptr<std::uint64_t>(generation_), generation,
                       fn = std::move(fn)](const boost::system::error_code& ec) {
      auto live = current.lock();
      if (ec || !live || *live != generation) return;
      fn();
    });
  }

  void cancel() override {
    ++*generation_;
    timer_.cancel();
  }

 private:
  boost::asio::steady_timer timer_;
  std::shared_ptr<std::uint64_t> generation_ = std::make_shared<std::uint64_t>(0);
};

}  // namespace

std::unique_ptr<Timer> SteadyClock::make_timer() { return std::make_unique<AsioTimer>(io_); }

class ManualClock::ManualTimer final : public Timer {
 public:
  explicit ManualTimer(ManualClock& clock) : clock_(clock) {}
  ~ManualTimer() override { cancel(); }

  void schedule_at(time_point when, std::function<void()> fn) override {
    cancel();
    key_ = {when, clock_.next_id_++};
    clock_.due_.emplace(*key_, std::move(fn));
  }

  void cancel() override {
    if (key_) clock_.due_.erase(*key_);
    key_.reset();
  }

 private:
  ManualClock& clock_;
  std::optional<std::pair<time_point, std::uint64_t>> key_;
};

// Starts at an arbitrary, fixed point: tests must not depend on the epoch.
ManualClock::ManualClock(boost::asio::io_context& io) : io_(io), now_(std::chrono::hours(1000)) {}

std::unique_ptr<Timer> ManualClock::make_timer() { return std::make_unique<ManualTimer>(*this); }

bool ManualClock::run_next() {
  io_.restart();
  io_.poll();
  if (due_.empty()) return false;
  auto it = due_.begin();
  now_ = std::max(now_, it->first.first);
  auto fn = std::move(it->second);
  due_.erase(it);
  fn();
  io_.restart();
  io_.poll();
  return true;
}

void ManualClock::advance(std::chrono::steady_clock::duration by) {
  const time_point until = now_ + by;
  io_.restart();
  io_.poll();
  while (!due_.empty() && due_.begin()->first.first <= until) run_next();
  now_ = until;
  io_.restart();
  io_.poll();
}

}  // namespace zeppelin
