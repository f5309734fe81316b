#include "runtime/process/cgroups.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/fs_util.h"

namespace zeppelin::runtime {
namespace {

namespace fs = std::filesystem;
constexpr const char* kBase = "/sys/fs/cgroup";

bool write_value(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value;
  out.flush();
  return static_cast<bool>(out);
}

std::string sanitize(const std::string& id) {
  std::string out = id;
  for (char& c : out) {
    if (c == '/') c = '.';
  }
  return out;
}

}  // namespace

Cgroups Cgroups::detect(const std::string& root_name) {
  Cgroups c;
  c.root_name_ = root_name;
  std::error_code ec;
  if (fs::exists(std::string(kBase) + "/cgroup.controllers", ec)) {
    c.version_ = Version::kV2;
    write_value(std::string(kBase) + "/cgroup.subtree_control", "+cpu +memory");
    if (!make_dirs(std::string(kBase) + "/" + root_name).ok() ||
        !write_value(std::string(kBase) + "/" + root_name + "/cgroup.subtree_control", "+cpu +memory")) {
      c.version_ = Version::kNone;
    }
  } else if (fs::is_directory(std::string(kBase) + "/memory", ec) && fs::is_directory(std::string(kBase) + "/cpu", ec)) {
    c.version_ = Version::kV1;
    if (!make_dirs(std::string(kBase) + "/memory/" + root_name).ok() ||
        !make_dirs(std::string(kBase) + "/cpu/" + root_name).ok() ||
        ::access((std::string(kBase) + "/memory/" + root_name).c_str(), W_OK) != 0) {
      c.version_ = Version::kNone;
    }
  }
  return c;
}

std::string Cgroups::dir(const std::string& controller, const std::string& handle) const {
  if (version_ == Version::kV2) return std::string(kBase) + "/" + root_name_ + "/" + handle;
  return std::string(kBase) + "/" + controller + "/" + root_name_ + "/" + handle;
}

Result<std::string> Cgroups::create(const std::string& id, const spec::Resources& resources) {
  if (version_ == Version::kNone) return make_error(Errc::kUnavailable, "no writable cgroup hierarchy");
  const std::string handle = sanitize(id);
  const std::string mem = dir("memory", handle);
  const std::string cpu = dir("cpu", handle);
  if (auto s = make_dirs(mem); !s) return s.error();
  if (version_ == Version::kV1) {
    if (auto s = make_dirs(cpu); !s) return s.error();
  }
  bool ok = true;
  if (resources.memory_bytes) {
    const std::string value = std::to_string(*resources.memory_bytes);
    if (version_ == Version::kV2) {
      ok &= write_value(mem + "/memory.max", value);
      write_value(mem + "/memory.swap.max", "0");
    } else {
      ok &= write_value(mem + "/memory.limit_in_bytes", value);
    }
  }
  if (resources.cpu_millis) {
    constexpr long kPeriodUs = 100000;
    const long quota = std::max<long>(1000, *resources.cpu_millis * kPeriodUs / 1000);
    if (version_ == Version::kV2) {
      ok &= write_value(cpu + "/cpu.max", std::to_string(quota) + " " + std::to_string(kPeriodUs));
    } else {
      ok &= write_value(cpu + "/cpu.cfs_period_us", std::to_string(kPeriodUs));
      ok &= write_value(cpu + "/cpu.cfs_quota_us", std::to_string(quota));
    }
  }
  if (!ok) {
    destroy(handle);
    return make_error(Errc::kInternal, "cannot write cgroup limits under " + mem);
  }
  return handle;
}

void Cgroups::add(const std::string& handle, pid_t pid) {
  write_value(dir("memory", handle) + "/cgroup.procs", std::to_string(pid));
  if (version_ == Version::kV1) write_value(dir("cpu", handle) + "/cgroup.procs", std::to_string(pid));
}

bool Cgroups::oom_killed(const std::string& handle) const {
  const std::string file = dir("memory", handle) + (version_ == Version::kV2 ? "/memory.events" : "/memory.oom_control");
  std::ifstream in(file);
  std::string key;
  long value = 0;
  while (in >> key >> value) {
    if (key == "oom_kill" && value > 0) return true;
  }
  return false;
}

void Cgroups::destroy(const std::string& handle) {
  for (const char* controller : {"memory", "cpu"}) {
    if (version_ == Version::kV2 && std::string(controller) == "cpu") break;
    const std::string d = dir(controller, handle);
    std::ifstream procs(d + "/cgroup.procs");
    pid_t pid = 0;
    while (procs >> pid) ::kill(pid, SIGKILL);
    ::rmdir(d.c_str());
  }
}

}  // namespace zeppelin::runtime
