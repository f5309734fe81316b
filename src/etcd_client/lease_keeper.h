// Keeps a lease alive from a background thread, as long as its owner needs
// it (a held lock, a leadership): a keep-alive every third of the TTL.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "store/store.h"

namespace zeppelin::etcd_client {

class LeaseKeeper {
 public:
  // `lost` runs once, on the keeper's thread, if the lease is found gone
  // (expired or revoked); failures to reach the store are retried until then.
  LeaseKeeper(store::Store& store, int64_t lease, int64_t ttl, std::function<void()> lost);
  ~LeaseKeeper();  // stops refreshing; does not revoke
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

 private:
  void run();

  store::Store& store_;
  const int64_t lease_;
  const int64_t ttl_;
  std::function<void()> lost_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace zeppelin::etcd_client
