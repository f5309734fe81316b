#include "state/service_registry.h"

#include "common/log.h"

namespace zeppelin::state {

Result<std::unique_ptr<StoreServiceRegistry>> StoreServiceRegistry::open(store::Store& store, std::string prefix,
                                                                          int64_t ttl_seconds) {
  std::unique_ptr<StoreServiceRegistry> registry(new StoreServiceRegistry(store, std::move(prefix), ttl_seconds));
  auto grant = store.lease_grant(0, ttl_seconds);
  if (!grant) return grant.error();
  registry->lease_ = grant->id;
  return registry;
}

StoreServiceRegistry::~StoreServiceRegistry() {
  if (auto s = store_.lease_revoke(lease_.load()); !s && s.error().code != Errc::kLeaseNotFound) {
    log::warn("cannot revoke the service registry's lease: {}", s.error().message);
  }
}

std::string StoreServiceRegistry::key(const std::string& system, const std::string& service, int ordinal) const {
  return prefix_ + "services/" + system + "/" + service + "/" + std::to_string(ordinal);
}

void StoreServiceRegistry::put(const std::string& key, const std::string& value) {
  store::PutRequest request;
  request.key = key;
  request.value = value;
  request.lease = lease_.load();
  store_.put_async(request, [key](Result<store::PutResponse> done) {
    if (!done) log::warn("cannot announce {}: {}", key, done.error().message);
  });
}

void StoreServiceRegistry::announce(const std::string& system, const std::string& service, int ordinal,
                                    const std::string& value) {
  const std::string k = key(system, service, ordinal);
  announced_[k] = value;
  put(k, value);
}

void StoreServiceRegistry::withdraw(const std::string& system, const std::string& service, int ordinal) {
  const std::string k = key(system, service, ordinal);
  announced_.erase(k);
  store::DeleteRangeRequest request;
  request.key = k;
  store_.delete_range_async(request, [k](Result<store::DeleteRangeResponse> done) {
    if (!done) log::warn("cannot withdraw {}: {}", k, done.error().message);
  });
}

void StoreServiceRegistry::withdraw_all(const std::string& system) {
  const std::string prefix = prefix_ + "services/" + system + "/";
  std::erase_if(announced_, [&](const auto& entry) { return entry.first.starts_with(prefix); });
  store::DeleteRangeRequest request;
  request.key = prefix;
  request.range_end = store::prefix_end(prefix);
  store_.delete_range_async(request, [prefix](Result<store::DeleteRangeResponse> done) {
    if (!done) log::warn("cannot withdraw {}*: {}", prefix, done.error().message);
  });
}

Status StoreServiceRegistry::keep_alive() {
  auto kept = refresh();
  if (kept || kept.error().code != Errc::kLeaseNotFound) return kept;
  return renew();
}

Status StoreServiceRegistry::refresh() {
  auto kept = store_.lease_keep_alive(lease_.load());
  if (!kept) return kept.error();
  return ok_status();
}

Status StoreServiceRegistry::renew() {
  auto grant = store_.lease_grant(0, ttl_);
  if (!grant) return grant.error();
  log::warn("the service registry's lease {} expired; announcing {} replica(s) again under lease {}", lease_.load(),
            announced_.size(), grant->id);
  lease_ = grant->id;
  for (const auto& [k, value] : announced_) put(k, value);
  return ok_status();
}

}  // namespace zeppelin::state
