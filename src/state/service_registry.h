// Service discovery: where the supervisor announces the replicas that run.
// ServiceRegistry is the seam; StoreServiceRegistry writes
//   PREFIX services/SYSTEM/SERVICE/ORDINAL -> JSON (address, ports, replica, pid/container)
// attached to one lease that the owner keeps alive, so that the
// announcements vanish when the server dies without withdrawing them.
//
// Threading: call from one thread (the server's event loop), except
// refresh(). Writes are queued to the store without waiting for them (in order).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/result.h"
#include "store/store.h"

namespace zeppelin::state {

class ServiceRegistry {
 public:
  virtual ~ServiceRegistry() = default;
  // Announces a running replica, or replaces its announcement; `value` is JSON.
  virtual void announce(const std::string& system, const std::string& service, int ordinal, const std::string& value) = 0;
  virtual void withdraw(const std::string& system, const std::string& service, int ordinal) = 0;
  // Withdraws every announcement under `system`, whoever made it (an earlier server).
  virtual void withdraw_all(const std::string& system) = 0;
};

class StoreServiceRegistry final : public ServiceRegistry {
 public:
  // Grants the lease. `store` must outlive the registry.
  static Result<std::unique_ptr<StoreServiceRegistry>> open(store::Store& store, std::string prefix, int64_t ttl_seconds);
  ~StoreServiceRegistry() override;  // revokes the lease: every announcement goes

  void announce(const std::string& system, const std::string& service, int ordinal, const std::string& value) override;
  void withdraw(const std::string& system, const std::string& service, int ordinal) override;
  void withdraw_all(const std::string& system) override;

  // Restarts the lease's countdown; call at least every ttl/3. If the lease
  // was lost (the owner stalled past the TTL), grants a new one and announces
  // everything again. Both halves, for callers that keep the loop free of
  // network calls: refresh() may run on any thread and fails with
  // Errc::kLeaseNotFound when the lease is lost; renew() then runs on the loop.
  Status keep_alive();
  Status refresh();
  Status renew();
  int64_t lease() const { return lease_.load(); }
  int64_t ttl_seconds() const { return ttl_; }

 private:
  StoreServiceRegistry(store::Store& store, std::string prefix, int64_t ttl) : store_(store), prefix_(std::move(prefix)), ttl_(ttl) {}
  std::string key(const std::string& system, const std::string& service, int ordinal) const;
  void put(const std::string& key, const std::string& value);

  store::Store& store_;
  std::string prefix_;
  int64_t ttl_ = 0;
  std::atomic<int64_t> lease_{0};
  std::map<std::string, std::string> announced_;  // key -> value
};

}  // namespace zeppelin::state
