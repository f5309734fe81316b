// What the supervisor reports: systems, replica statuses (built a slice at a
// time) and log files.

#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <functional>

#include "spec/parser.h"
#include "supervisor/internal.h"
#include "supervisor/replica_env.h"

namespace zeppelin::supervisor {

namespace {

// How long one slice of a replica listing may hold the event loop.
constexpr milliseconds kListingSlice{5};

}  // namespace

std::vector<SystemSummary> Supervisor::systems() const {
  std::vector<SystemSummary> out;
  for (const auto& [name, sys] : systems_) {
    SystemSummary s;
    s.name = name;
    s.spec_file = sys->record.spec_file;
    s.running = sys->record.running;
    for (const auto& svc : sys->spec.services) {
      const int want = desired_replicas(*sys, svc);
      s.replicas += want;
      auto it = sys->replicas.find(svc.name);
      if (it == sys->replicas.end()) continue;
      for (int i = 0; i < want && i < static_cast<int>(it->second.size()); ++i) {
        if (it->second[i] && ready(*it->second[i])) ++s.ready;
      }
    }
    out.push_back(s);
  }
  return out;
}

ReplicaStatus Supervisor::status_of(const SystemRuntime& sys, const Replica& r) const {
  ReplicaStatus s;
  s.system = r.system;
  s.service = r.service;
  s.replica = r.ordinal;
  s.state = r.state;
  s.health = r.health;
  s.pid = r.instance ? r.instance->pid() : 0;  // live: a container's is known only once it runs
  auto rec = sys.record.replicas.find(r.key);
  s.restarts = rec == sys.record.replicas.end() ? 0 : rec->second.restarts;
  const spec::Service* svc = sys.service(r.service);
  s.address = svc ? endpoint(*svc, r.host) : r.host;
  s.last_exit = r.last_exit;
  s.detail = r.detail;
  if (r.instance) s.uptime_seconds = std::chrono::duration<double>(clock_.now() - r.started_at).count();
  return s;
}

struct Supervisor::ReplicaListing {
  struct Row {
    std::string system;
    std::string service;
    int ordinal = 0;
    std::shared_ptr<const Replica> replica;  // null: wanted but not created yet
  };
  std::vector<Row> rows;
  std::size_t next = 0;  // the first row whose status is not built yet
  std::vector<ReplicaStatus> out;
};

std::shared_ptr<Supervisor::ReplicaListing> Supervisor::plan_listing(const std::optional<std::string>& system) const {
  auto listing = std::make_shared<ReplicaListing>();
  for (const auto& [name, sys] : systems_) {
    if (system && name != *system) continue;
    std::vector<std::string> services;
    for (const auto& svc : sys->spec.services) services.push_back(svc.name);
    for (const auto& [service, reps] : sys->replicas) {
      if (!sys->service(service)) services.push_back(service);
    }
    for (const auto& service : services) {
      auto it = sys->replicas.find(service);
      const spec::Service* svc = sys->service(service);
      const int want = svc ? desired_replicas(*sys, *svc) : 0;
      const int have = it == sys->replicas.end() ? 0 : static_cast<int>(it->second.size());
      for (int i = 0; i < std::max(want, have); ++i) {
        listing->rows.push_back({name, service, i, i < have ? it->second[i] : nullptr});
      }
    }
  }
  listing->out.reserve(listing->rows.size());
  return listing;
}

bool Supervisor::build_listing(ReplicaListing& listing,
                               std::optional<std::chrono::steady_clock::time_point> deadline) const {
  const SystemRuntime* sys = nullptr;  // the system of the rows at hand, looked up once per run of rows
  const std::string* sys_name = nullptr;
  for (; listing.next < listing.rows.size(); ++listing.next) {
    if (deadline && listing.next % 256 == 0 && std::chrono::steady_clock::now() > *deadline) return false;
    const auto& row = listing.rows[listing.next];
    if (!sys_name || *sys_name != row.system) {
      sys_name = &row.system;
      sys = find(row.system);
    }
    if (row.replica && sys) {
      listing.out.push_back(status_of(*sys, *row.replica));
    } else {  // wanted but not created yet (waiting on dependencies or order), or its system went away
      ReplicaStatus s;
      s.system = row.system;
      s.service = row.service;
      s.replica = row.ordinal;
      if (row.replica) s.state = row.replica->state;
      listing.out.push_back(std::move(s));
    }
  }
  return true;
}

Result<std::vector<ReplicaStatus>> Supervisor::replicas(const std::optional<std::string>& system) const {
  if (system && !find(*system)) return make_error(Errc::kNotFound, "no system named \"" + *system + "\"");
  auto listing = plan_listing(system);
  build_listing(*listing, std::nullopt);
  return std::move(listing->out);
}

void Supervisor::replicas(const std::optional<std::string>& system,
                          std::function<void(Result<std::vector<ReplicaStatus>>)> done) {
  if (system && !find(*system)) return done(make_error(Errc::kNotFound, "no system named \"" + *system + "\""));
  auto listing = plan_listing(system);
  // A slice runs for kListingSlice, then lets the loop serve what waits.
  auto step = std::make_shared<std::function<void()>>();
  *step = [this, listing, step, done = std::move(done)]() mutable {
    if (!build_listing(*listing, std::chrono::steady_clock::now() + kListingSlice)) {
      boost::asio::post(io_, [step] { (*step)(); });
      return;
    }
    auto finish = std::move(done);
    auto rows = std::move(listing->out);
    *step = nullptr;  // ends the cycle step -> lambda -> step (and this lambda: touch no capture after)
    finish(std::move(rows));
  };
  (*step)();
}

Result<std::vector<std::pair<LogLine, std::string>>> Supervisor::log_files(const LogFilter& filter) const {
  SystemRuntime* sys = find(filter.system);
  if (!sys) return make_error(Errc::kNotFound, "no system named \"" + filter.system + "\"");
  if (filter.service && !sys->service(*filter.service)) {
    return make_error(Errc::kNotFound, "system \"" + filter.system + "\" has no service \"" + *filter.service + "\"");
  }
  std::vector<std::pair<LogLine, std::string>> out;
  for (const auto& svc : sys->spec.services) {
    if (filter.service && svc.name != *filter.service) continue;
    auto checked = log_dir(filter.system, svc.name);
    if (!checked) return checked.error();
    const std::string& dir = *checked;
    std::error_code ec;
    std::vector<int> ordinals;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string file = entry.path().filename().string();
      if (!file.ends_with(".log")) continue;
      try {
        ordinals.push_back(std::stoi(file.substr(0, file.size() - 4)));
      } catch (const std::exception&) {
      }
    }
    std::sort(ordinals.begin(), ordinals.end());
    for (int ordinal : ordinals) {
      if (filter.replica && ordinal != *filter.replica) continue;
      out.emplace_back(LogLine{filter.system, svc.name, ordinal, "stdout", ""}, dir + "/" + std::to_string(ordinal) + ".log");
    }
  }
  if (filter.service && filter.replica && out.empty()) {
    // A replica that has no log and is not wanted either: a typo, not silence.
    const int want = desired_replicas(*sys, *sys->service(*filter.service));
    if (*filter.replica < 0 || *filter.replica >= want) {
      return make_error(Errc::kNotFound, "system \"" + filter.system + "\" has no replica " + *filter.service + "/" +
                                             std::to_string(*filter.replica) + " (service " + *filter.service +
                                             " has " + std::to_string(want) + " replicas)");
    }
  }
  return out;
}

}  // namespace zeppelin::supervisor
