// Where replicas live: their loopback addresses and peer lists, their volume
// and log directories, the passages a `user:` account needs to reach them,
// and freeing them when a system goes.

#include <unistd.h>
#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <set>

#include "common/home_layout.h"
#include "common/log.h"
#include "common/traverse_acl.h"
#include "spec/parser.h"
#include "supervisor/internal.h"
#include "supervisor/replica_env.h"

namespace zeppelin::supervisor {

const std::string& Supervisor::address_list(SystemRuntime& sys, const spec::Service& svc) {
  const int want = desired_replicas(sys, svc);
  auto it = sys.address_lists.find(svc.name);
  if (it != sys.address_lists.end() && it->second.count == want) return it->second.list;
  // ensure_replica may drop the entry: make every replica first, then the list.
  for (int i = 0; i < want; ++i) ensure_replica(sys, svc, i);
  const auto& reps = sys.replicas[svc.name];
  auto& entry = sys.address_lists[svc.name];
  entry.count = want;
  entry.list = supervisor::address_list(svc, want, [&reps](int i) -> const std::string& { return reps[i]->host; });
  return entry.list;
}

const std::shared_ptr<Supervisor::Replica>& Supervisor::ensure_replica(SystemRuntime& sys, const spec::Service& svc,
                                                                      int ordinal) {
  auto& reps = sys.replicas[svc.name];
  if (static_cast<int>(reps.size()) <= ordinal) reps.resize(ordinal + 1);
  auto& r = reps[ordinal];
  if (!r) {
    sys.address_lists.erase(svc.name);
    r = std::make_shared<Replica>(clock_);
    r->system = sys.record.name;
    r->service = svc.name;
    r->ordinal = ordinal;
    r->key = replica_key(svc.name, ordinal);
    r->host = allocate_address(sys, r->key);
  }
  return r;
}

std::string Supervisor::allocate_address(SystemRuntime& sys, const std::string& key) {
  auto& rec = sys.record.replicas[key];
  if (!rec.address.empty()) return rec.address;
  // Below the cursor every address is taken: allocating n replicas costs
  // O(n log n) in all, not O(n^2).
  for (int i = address_cursor_; i < kAddressPoolSize; ++i) {
    std::string candidate =
        "127." + std::to_string(address_base_) + "." + std::to_string(i / 254) + "." + std::to_string(i % 254 + 1);
    if (used_addresses_.insert(candidate).second) {
      address_cursor_ = i + 1;
      rec.address = candidate;
      mark_dirty();
      return candidate;
    }
  }
  address_cursor_ = kAddressPoolSize;
  // apply() refuses what would not fit; a pool filled anyway (records written
  // to the store) shares the default loopback address.
  rec.address = "127.0.0.1";
  return rec.address;
}

void Supervisor::dispose(std::unique_ptr<SystemRuntime> sys) {
  // Releasing 50,000 addresses and freeing as many replicas takes tens of
  // milliseconds: a slice at a time, so that the loop keeps serving.
  constexpr std::size_t kSlice = 2048;
  std::size_t done = 0;
  auto& history = sys->record.replicas;
  while (!history.empty() && done < kSlice) {
    release_address(history.begin()->second.address);
    history.erase(history.begin());
    ++done;
  }
  for (auto it = sys->replicas.begin(); it != sys->replicas.end() && done < kSlice;) {
    auto& reps = it->second;
    while (!reps.empty() && done < kSlice) {
      reps.pop_back();
      ++done;
    }
    it = reps.empty() ? sys->replicas.erase(it) : std::next(it);
  }
  if (history.empty() && sys->replicas.empty()) return;  // the rest is small: freed here
  boost::asio::post(io_, [this, sys = std::move(sys)]() mutable { dispose(std::move(sys)); });
}

void Supervisor::release_address(const std::string& address) {
  if (used_addresses_.erase(address) == 0) return;
  const std::string block = "127." + std::to_string(address_base_) + ".";
  if (!address.starts_with(block)) return;
  unsigned third = 0, fourth = 0;
  if (std::sscanf(address.c_str() + block.size(), "%u.%u", &third, &fourth) != 2 || fourth < 1 || fourth > 254) return;
  address_cursor_ = std::min(address_cursor_, static_cast<int>(third * 254 + fourth - 1));
}

namespace {

// Names become file names under the data directory. The spec's grammar allows
// only DNS labels; checked again here, since a record can reach the store by
// other ways than the API (etcdctl, a restored snapshot).
Status check_path_name(const char* what, const std::string& name) {
  if (spec::is_dns_label(name)) return ok_status();
  return make_error(Errc::kInvalidArgument, std::string("invalid ") + what + " name \"" + name +
                                                "\": not a DNS-1123 label, so never part of a path under the data directory");
}

}  // namespace

Result<std::string> Supervisor::volume_dir(const SystemRuntime& sys, const std::string& service, int ordinal,
                                           const std::string& volume) const {
  if (auto s = check_path_name("system", sys.record.name); !s) return s.error();
  if (auto s = check_path_name("service", service); !s) return s.error();
  if (auto s = check_path_name("volume", volume); !s) return s.error();
  return HomeLayout(options_.home).volume_dir(sys.record.name, service, ordinal, volume);
}

namespace {

// A process service run as another account.
bool runs_as_other(const spec::Service& svc) { return svc.run_as && svc.run_as->uid != ::geteuid(); }

// Such a service, with a volume under the data directory, needs a way through to it.
bool needs_volume_passage(const spec::Service& svc) {
  return runs_as_other(svc) &&
         std::any_of(svc.volumes.begin(), svc.volumes.end(), [](const spec::Volume& v) { return !v.source; });
}

std::set<uid_t> passage_uids(const spec::System& system) {
  std::set<uid_t> uids;
  for (const auto& svc : system.services) {
    if (runs_as_other(svc)) uids.insert(svc.run_as->uid);
  }
  return uids;
}

}  // namespace

Status Supervisor::grant_passage(const SystemRuntime& sys, const spec::Service& svc, int ordinal) const {
  if (!runs_as_other(svc)) return ok_status();
  if (!options_.etcd_ca_file.empty() && !sys.spec.etcd) {
    // The etcd CA's public copy: search on the way, the file itself is 0644.
    for (const std::string& dir : {options_.home, HomeLayout(options_.home).public_dir()}) {
      if (auto s = grant_traverse(dir, svc.run_as->uid); !s) return s;
    }
  }
  if (!needs_volume_passage(svc)) return ok_status();
  // volume_dir checked the names; the volumes were made, so these exist.
  std::string dir = options_.home;
  for (const std::string& below : {std::string("volumes"), sys.record.name, svc.name, std::to_string(ordinal)}) {
    if (auto s = grant_traverse(dir, svc.run_as->uid); !s) return s;
    dir += "/" + below;
  }
  return grant_traverse(dir, svc.run_as->uid);
}

void Supervisor::revoke_passage(const SystemRuntime& removed) const {
  if (!spec::is_dns_label(removed.record.name)) return;  // never a path outside volumes/
  const std::set<uid_t> uids = passage_uids(removed.spec);
  std::set<uid_t> still_needed;
  for (const auto& [name, sys] : systems_) {
    if (sys.get() == &removed) continue;
    for (uid_t uid : passage_uids(sys->spec)) still_needed.insert(uid);
  }
  const std::string volumes = HomeLayout(options_.home).volumes_dir();
  const std::string own = volumes + "/" + removed.record.name;
  auto revoke = [](const std::string& dir, uid_t uid) {
    if (auto s = revoke_traverse(dir, uid); !s) log::warn("{}", s.error().message);
  };
  for (uid_t uid : uids) {
    // Kept volumes keep their directories: the account loses its way to them.
    std::error_code ec;
    for (fs::directory_iterator service(own, ec), end; !ec && service != end; service.increment(ec)) {
      std::error_code ord_ec;
      for (fs::directory_iterator ordinal(service->path(), ord_ec); !ord_ec && ordinal != end; ordinal.increment(ord_ec)) {
        revoke(ordinal->path().string(), uid);
      }
      revoke(service->path().string(), uid);
    }
    revoke(own, uid);
    if (still_needed.contains(uid)) continue;
    revoke(volumes, uid);
    revoke(HomeLayout(options_.home).public_dir(), uid);
    revoke(options_.home, uid);
  }
}

Result<std::string> Supervisor::log_dir(const std::string& system, const std::string& service) const {
  if (auto s = check_path_name("system", system); !s) return s.error();
  if (auto s = check_path_name("service", service); !s) return s.error();
  return HomeLayout(options_.home).logs_dir(system, service);
}

}  // namespace zeppelin::supervisor
