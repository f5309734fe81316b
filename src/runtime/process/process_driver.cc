#include "runtime/process/process_driver.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "common/strings.h"
#include "spec/replica_contract.h"

namespace zeppelin::runtime {
namespace asio = boost::asio;

namespace {

// Finds `name` on the replica's own PATH (not the server's), in the parent:
// a failed execve per PATH entry inside the spawned child costs far more.
std::string search_path(const std::vector<std::string>& env) {
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& kv : env) {
    if (kv.rfind("PATH=", 0) == 0) path = kv.substr(5);
  }
  return path;
}

std::string resolve_executable(const std::string& name, const std::vector<std::string>& env, const std::string& workdir) {
  if (name.find('/') != std::string::npos) return name;
  const std::string path = search_path(env);
  std::size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    if (dir[0] != '/') dir = workdir + "/" + dir;
    std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return name;  // let execve report ENOENT
}

// Why `name` could not be started: for a program not found on PATH, which
// PATH, and the nearest program name on it ("pyhton3" -> "python3").
std::string not_started(const std::string& name, const std::vector<std::string>& env, const std::string& workdir,
                        int error) {
  if (error != ENOENT || name.find('/') != std::string::npos) {
    return "\"" + name + "\" in " + workdir + ": " + std::strerror(error);
  }
  const std::string path = search_path(env);
  std::vector<std::string> programs;
  std::size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::error_code ec;
    const std::string dir = path.substr(start, end - start);
    for (std::filesystem::directory_iterator it(dir.empty() ? "." : dir, ec), last; !ec && it != last; it.increment(ec)) {
      programs.push_back(it->path().filename().string());
    }
    start = end + 1;
  }
  const std::string near = nearest_name(name, programs);
  return "\"" + name + "\" is not on the replica's PATH" + (near.empty() ? "" : "; did you mean \"" + near + "\"?");
}

// What a forked child did last before it gave up, and why (its errno).
enum class ChildStep : int { kProcessGroup, kStandardFds, kGroups, kGid, kUid, kWorkdir, kExec };
struct ChildFailure {
  ChildStep step;
  int error;
};

const char* describe(ChildStep step) {
  switch (step) {
    case ChildStep::kProcessGroup: return "setpgid";
    case ChildStep::kStandardFds: return "redirecting stdin/stdout/stderr";
    case ChildStep::kGroups: return "setgroups";
    case ChildStep::kGid: return "setgid";
    case ChildStep::kUid: return "setuid";
    case ChildStep::kWorkdir: return "chdir";
    case ChildStep::kExec: return "execve";
  }
  return "?";
}

[[noreturn]] void child_gives_up(int report_fd, ChildStep step) {
  const ChildFailure failure{step, errno};
  (void)!::write(report_fd, &failure, sizeof failure);
  ::_exit(127);
}

// Makes `fd` read or write /dev/null. Async-signal-safe.
bool point_at_dev_null(int fd, int flags) {
  const int null_fd = ::open("/dev/null", flags);
  if (null_fd < 0) return false;
  if (null_fd == fd) return true;
  const bool moved = ::dup2(null_fd, fd) == fd;
  ::close(null_fd);
  return moved;
}

// posix_spawn cannot change the account, so this forks and the child does what
// spawn_process's attributes and file actions do, then takes the account's
// groups, gid and uid. Between fork and execve the child calls only
// async-signal-safe functions, and raw syscalls for the ids: the server has
// other threads, and glibc's setuid would try to signal them. The parent
// learns of a failure before exec through a close-on-exec pipe.
Result<pid_t> spawn_as_account(const std::string& executable, const std::vector<char*>& argv,
                               const std::vector<char*>& envp, const std::string& workdir, int stdout_fd,
                               int stderr_fd, const spec::RunAs& run_as) {
  // The supplementary groups initgroups would set, read here: it reads /etc/group.
  std::vector<gid_t> groups(32);
  int count = static_cast<int>(groups.size());
  if (::getgrouplist(run_as.user_name.c_str(), run_as.gid, groups.data(), &count) < 0) {
    groups.resize(static_cast<std::size_t>(count));
    if (::getgrouplist(run_as.user_name.c_str(), run_as.gid, groups.data(), &count) < 0) {
      return make_error(Errc::kInternal, "cannot list the groups of user " + run_as.user_name);
    }
  }
  groups.resize(static_cast<std::size_t>(count));
  // Not root: the spec was accepted only because this is our own account already.
  const bool switch_account = ::geteuid() == 0;
  const char* const chdir_to = workdir.empty() ? nullptr : workdir.c_str();
  sigset_t empty;
  sigemptyset(&empty);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;

  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return make_error(Errc::kInternal, std::string("pipe: ") + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int saved = errno;
    ::close(report[0]);
    ::close(report[1]);
    return make_error(Errc::kInternal, std::string("fork: ") + std::strerror(saved));
  }
  if (pid == 0) {
    const int report_fd = report[1];
    if (::setpgid(0, 0) != 0) child_gives_up(report_fd, ChildStep::kProcessGroup);
    // Default dispositions, then an empty mask (SIGKILL and SIGSTOP refuse; fine).
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &default_action, nullptr);
    ::sigprocmask(SIG_SETMASK, &empty, nullptr);
    const bool redirected = (stdout_fd >= 0 ? ::dup2(stdout_fd, 1) == 1 : point_at_dev_null(1, O_WRONLY)) &&
                            (stderr_fd >= 0 ? ::dup2(stderr_fd, 2) == 2 : point_at_dev_null(2, O_WRONLY)) &&
                            point_at_dev_null(0, O_RDONLY);
    if (!redirected) child_gives_up(report_fd, ChildStep::kStandardFds);
    // Nothing of the server but the report pipe (closed by execve itself).
    if (report_fd > 3) ::syscall(SYS_close_range, 3u, static_cast<unsigned>(report_fd - 1), 0u);
    ::syscall(SYS_close_range, static_cast<unsigned>(report_fd + 1), ~0u, 0u);
    if (switch_account) {
      if (::syscall(SYS_setgroups, groups.size(), groups.data()) != 0) child_gives_up(report_fd, ChildStep::kGroups);
      if (::syscall(SYS_setresgid, run_as.gid, run_as.gid, run_as.gid) != 0) child_gives_up(report_fd, ChildStep::kGid);
      if (::syscall(SYS_setresuid, run_as.uid, run_as.uid, run_as.uid) != 0) child_gives_up(report_fd, ChildStep::kUid);
    }
    // As the account: a directory it may not enter is refused, as for its own shell.
    if (chdir_to && ::chdir(chdir_to) != 0) child_gives_up(report_fd, ChildStep::kWorkdir);
    ::execve(executable.c_str(), argv.data(), envp.data());
    child_gives_up(report_fd, ChildStep::kExec);
  }
  ::close(report[1]);
  ChildFailure failure{};
  ssize_t n = 0;
  do {
    n = ::read(report[0], &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n != static_cast<ssize_t>(sizeof failure)) return pid;  // end of file: execve closed the pipe
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return make_error(Errc::kInvalidArgument, "\"" + std::string(argv[0]) + "\" as user " + run_as.user_name + " (uid " +
                                                std::to_string(run_as.uid) + ") in " + workdir + ": " +
                                                describe(failure.step) + ": " + std::strerror(failure.error));
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

Result<pid_t> spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                            const std::string& workdir, int stdout_fd, int stderr_fd,
                            const std::optional<spec::RunAs>& run_as) {
  if (argv.empty()) return make_error(Errc::kInvalidArgument, "empty command");
  const std::string executable = resolve_executable(argv[0], env, workdir);
  // exec's NULL-terminated arrays, pointing into argv and env.
  std::vector<char*> c_argv = c_strings(argv);
  std::vector<char*> c_env = c_strings(env);
  if (run_as) return spawn_as_account(executable, c_argv, c_env, workdir, stdout_fd, stderr_fd, *run_as);
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
  else posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  if (stderr_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2);
  else posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  if (!workdir.empty()) posix_spawn_file_actions_addchdir_np(&actions, workdir.c_str());
  // Replicas inherit nothing of the server: not its API socket, not other
  // replicas' pipes (which would keep them open after a replica exits).
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  // Own process group, default dispositions and an empty mask: the server's
  // own signal handling must not leak into replicas.
  sigset_t defaults;
  sigset_t empty;
  sigfillset(&defaults);
  sigemptyset(&empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, executable.c_str(), &actions, &attr, c_argv.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return make_error(Errc::kInvalidArgument, not_started(argv[0], env, workdir, rc));
  }
  return pid;
}

namespace {

// Shared by the instance handle and its in-flight pipe reads, which may
// outlive the handle while a pipe drains.
struct ProcessState {
  ProcessState(asio::io_context& io, pid_t pid_, int out_fd, int err_fd)
      : pid(pid_), out(io, out_fd), err(io, err_fd) {}
  pid_t pid;
  asio::posix::stream_descriptor out;
  asio::posix::stream_descriptor err;
  InstanceEvents events;
  std::string cgroup;  // empty: none
  bool exited = false;
};

// Waits for a pipe to become readable, then drains it into one buffer shared
// by all pipes (the loop is single-threaded), so an idle replica holds no
// read buffer at all.
void read_pipe(const std::shared_ptr<ProcessState>& state, bool is_stderr) {
  auto& pipe = is_stderr ? state->err : state->out;
  pipe.async_wait(asio::posix::stream_descriptor::wait_read, [state, is_stderr](const boost::system::error_code& ec) {
    auto& pipe = is_stderr ? state->err : state->out;
    if (ec) {
      pipe.close();
      return;
    }
    static std::array<char, 65536> buffer;
    for (;;) {
      const ssize_t n = ::read(pipe.native_handle(), buffer.data(), buffer.size());
      if (n > 0) {
        if (state->events.on_output) state->events.on_output(std::string_view(buffer.data(), n), is_stderr);
        if (static_cast<std::size_t>(n) < buffer.size()) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      pipe.close();  // end of file, or an error
      return;
    }
    read_pipe(state, is_stderr);
  });
}

std::vector<std::string> read_environ(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::vector<std::string> env;
  std::string var;
  while (std::getline(in, var, '\0')) env.push_back(std::move(var));
  return env;
}

class ProcessInstance final : public Instance {
 public:
  ProcessInstance(asio::io_context& io, ChildReaper& reaper, std::shared_ptr<ProcessState> state, std::string workdir,
                  std::optional<spec::RunAs> run_as)
      : io_(io), reaper_(reaper), state_(std::move(state)), workdir_(std::move(workdir)), run_as_(std::move(run_as)) {}

  int pid() const override { return state_->pid; }
  std::string describe() const override { return "pid " + std::to_string(state_->pid); }
  void terminate() override {
    if (!state_->exited) ::kill(-state_->pid, SIGTERM);
  }
  void kill() override {
    if (!state_->exited) ::kill(-state_->pid, SIGKILL);
  }

  void exec_probe(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                  std::function<void(bool)> done) override {
    // The replica's environment is read back from the kernel rather than kept
    // here: with large ZEPPELIN_PEERS lists a copy per replica adds up.
    auto pid = spawn_process(argv, read_environ(state_->pid), workdir_, -1, -1, run_as_);  // as the replica runs
    if (!pid) {
      done(false);
      return;
    }
    auto timer = std::make_shared<asio::steady_timer>(io_, timeout);
    auto timed_out = std::make_shared<bool>(false);
    const pid_t child = *pid;
    timer->async_wait([child, timed_out](const boost::system::error_code& ec) {
      if (ec) return;
      *timed_out = true;
      ::kill(-child, SIGKILL);
    });
    reaper_.watch(child, [timer, timed_out, child, done = std::move(done)](int status) {
      timer->cancel();
      ::kill(-child, SIGKILL);  // whatever the probe left behind
      done(!*timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    });
  }

 private:
  asio::io_context& io_;
  ChildReaper& reaper_;
  std::shared_ptr<ProcessState> state_;
  std::string workdir_;
  std::optional<spec::RunAs> run_as_;
};

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace

ProcessDriver::ProcessDriver(asio::io_context& io, std::string marker)
    : io_(io),
      dying_timer_(io),
      reaper_(io),
      // One subtree per data directory: servers of different homes never share a group.
      cgroups_(Cgroups::detect("zeppelin/" + std::to_string(std::hash<std::string>{}(marker) % 100000000))),
      marker_(std::move(marker)) {
  // Descendants that outlive a replica's leader are reparented to us and
  // reaped here, so "the group is empty" can be observed without zombies.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  reaper_.on_orphans_reaped([this] { check_dying_groups(); });
}

namespace {
bool group_empty(pid_t pgid) { return ::kill(-pgid, 0) != 0 && errno == ESRCH; }
}  // namespace

void ProcessDriver::check_dying_groups() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::function<void()>> finished;
  for (auto it = dying_.begin(); it != dying_.end();) {
    if (group_empty(it->pgid) || now >= it->give_up) {
      finished.push_back(std::move(it->finish));
      it = dying_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& f : finished) f();
  if (dying_.empty()) return;
  // Members that escaped to another parent send us no SIGCHLD: look again soon.
  dying_timer_.expires_after(std::chrono::milliseconds(20));
  dying_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) check_dying_groups();
  });
}

Result<std::unique_ptr<Instance>> ProcessDriver::start(const LaunchSpec& launch, InstanceEvents events) {
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return make_error(Errc::kInternal, std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return make_error(Errc::kInternal, std::string("pipe: ") + std::strerror(errno));
  }
  std::vector<std::string> env = launch.env;
  env.push_back(std::string(spec::replica_env::kSupervisor) + "=" + marker_);
  auto pid = spawn_process(launch.argv, env, launch.workdir, out[1], err[1], launch.run_as);
  ::close(out[1]);
  ::close(err[1]);
  if (!pid) {
    ::close(out[0]);
    ::close(err[0]);
    return pid.error();
  }
  auto state = std::make_shared<ProcessState>(io_, *pid, out[0], err[0]);
  state->out.non_blocking(true);
  state->err.non_blocking(true);
  state->events = std::move(events);
  if (launch.resources.cpu_millis || launch.resources.memory_bytes) {
    // The child runs briefly before it is moved into its group; anything it
    // forks in that window stays outside the limits (cgroup v1 has no
    // CLONE_INTO_CGROUP).
    if (auto group = cgroups_.create(launch.id, launch.resources)) {
      state->cgroup = *group;
      cgroups_.add(*group, *pid);
    } else if (cgroups_.version() != Cgroups::Version::kNone) {
      log::warn("{}: resource limits not applied: {}", launch.id, group.error().message);
    }
  }
  read_pipe(state, false);
  read_pipe(state, true);
  reaper_.watch(*pid, [this, state](int status) {
    state->exited = true;
    ::kill(-state->pid, SIGKILL);  // nothing of the replica outlives its leader
    ExitStatus exit;
    if (WIFSIGNALED(status)) {
      exit.signal = WTERMSIG(status);
      exit.code = 128 + exit.signal;
    } else {
      exit.code = WEXITSTATUS(status);
    }
    auto finish = [this, state, exit]() mutable {
      if (!state->cgroup.empty()) {
        exit.oom_killed = cgroups_.oom_killed(state->cgroup);
        cgroups_.destroy(state->cgroup);
      }
      if (state->events.on_exit) state->events.on_exit(exit);
    };
    if (group_empty(state->pid)) {
      finish();
      return;
    }
    dying_.push_back({state->pid, std::chrono::steady_clock::now() + std::chrono::seconds(5), std::move(finish)});
    check_dying_groups();
  });
  return std::unique_ptr<Instance>(std::make_unique<ProcessInstance>(io_, reaper_, state, launch.workdir, launch.run_as));
}

Status ProcessDriver::supports(const spec::Service& service) {
  if (service.is_container()) return make_error(Errc::kInvalidArgument, "service \"" + service.name + "\" runs an image, not a process");
  return ok_status();
}

// Processes cannot be adopted (their pipes died with the old server): all are ended.
int ProcessDriver::reap_leftovers(const std::function<bool(const std::string&)>& /*wanted*/) {
  const std::string needle = std::string(spec::replica_env::kSupervisor) + "=" + marker_;
  std::vector<int> pidfds;
  int groups = 0;
  DIR* proc = ::opendir("/proc");
  if (!proc) return 0;
  while (dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 1 || pid == ::getpid()) continue;
    std::ifstream environ("/proc/" + std::string(entry->d_name) + "/environ", std::ios::binary);
    std::string var;
    bool ours = false;
    while (std::getline(environ, var, '\0')) {
      if (var == needle) {
        ours = true;
        break;
      }
    }
    if (!ours) continue;
    const pid_t pgid = ::getpgid(static_cast<pid_t>(pid));
    if (pgid == pid) ++groups;
    const int fd = pidfd_open(static_cast<pid_t>(pid));
    if (pgid > 1) ::kill(-pgid, SIGKILL);
    ::kill(static_cast<pid_t>(pid), SIGKILL);
    if (fd >= 0) pidfds.push_back(fd);
  }
  ::closedir(proc);
  // Wait (bounded) until they are gone, so their ports and files are free.
  for (int fd : pidfds) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 5000);
    ::close(fd);
  }
  if (groups > 0) log::warn("ended {} replica(s) left behind by a previous server", groups);
  return groups;
}

}  // namespace zeppelin::runtime
