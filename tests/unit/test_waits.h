// Bounded waits shared by the unit tests: a broken component fails the test
// instead of hanging it.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include "store/store.h"

namespace zeppelin::testing {

// Collects a store watch's updates for the test thread to inspect.
struct WatchCollector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<store::WatchUpdate> updates;

  store::WatchCallback callback() {
    return [this](store::WatchUpdate u) {
      std::lock_guard<std::mutex> lock(mu);
      updates.push_back(std::move(u));
      cv.notify_all();
    };
  }
  std::vector<store::WatchUpdate> snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return updates;
  }
  std::vector<store::Event> events() {
    std::lock_guard<std::mutex> lock(mu);
    return events_locked();
  }
  // Waits (up to 10 s) until `n` events arrived; returns every event so far.
  std::vector<store::Event> wait_events(std::size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return events_locked().size() >= n; });
    return events_locked();
  }
  // Waits (up to 10 s) until `done` holds for the updates; returns them.
  std::vector<store::WatchUpdate> wait_updates(const std::function<bool(const std::vector<store::WatchUpdate>&)>& done) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return done(updates); });
    return updates;
  }

 private:
  std::vector<store::Event> events_locked() const {
    std::vector<store::Event> all;
    for (const auto& u : updates) all.insert(all.end(), u.events.begin(), u.events.end());
    return all;
  }
};

// Runs `io` until `pred` holds; fails the test after `limit`.
template <typename Pred>
bool run_io_until(boost::asio::io_context& io, Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "condition not reached in time";
      return false;
    }
    io.run_one_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace zeppelin::testing
