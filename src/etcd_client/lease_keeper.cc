#include "etcd_client/lease_keeper.h"

#include <algorithm>
#include <chrono>

namespace zeppelin::etcd_client {

LeaseKeeper::LeaseKeeper(store::Store& store, int64_t lease, int64_t ttl, std::function<void()> lost)
    : store_(store), lease_(lease), ttl_(ttl), lost_(std::move(lost)) {
  thread_ = std::thread([this] { run(); });
}

LeaseKeeper::~LeaseKeeper() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void LeaseKeeper::run() {
  const auto period = std::chrono::milliseconds(std::max<int64_t>(1000 * ttl_ / 3, 200));
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, period, [&] { return stopping_; })) {
    lock.unlock();
    auto ttl = store_.lease_keep_alive(lease_);
    lock.lock();
    if (!ttl && ttl.error().code == Errc::kLeaseNotFound) {
      if (lost_) lost_();
      return;
    }
  }
}

}  // namespace zeppelin::etcd_client
