// The "floor" of the side-by-side supervisor benchmark (bench/supervisors.py):
// the most minimal supervisor possible, with no features at all.
//
//   bench_spawn_floor N PROGRAM [ARGS...]
//
// posix_spawn()s N copies of PROGRAM in a tight loop (environment: inherited,
// plus BENCH_ID=floor/<i> for copy i), then sleeps in sigwaitinfo() with
// SIGCHLD, SIGTERM and SIGINT blocked. On SIGCHLD it reaps with
// waitpid(-1, WNOHANG) and immediately re-spawns every copy that died (same
// BENCH_ID). On SIGTERM/SIGINT it sends SIGTERM to every copy, waits for all of
// them and exits 0.
//
// No pipes, no logging, no file actions, no back-off, no health checks: what it
// takes is what this machine needs to spawn N processes one by one and to
// restart one. It prints nothing on the hot path (only errors, to stderr).
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

extern char** environ;

namespace {

constexpr char kIdVar[] = "BENCH_ID=";

struct Floor {
  char* program = nullptr;
  char** argv = nullptr;
  std::vector<char*> envp;          // inherited environment + one BENCH_ID slot + nullptr
  std::size_t id_slot = 0;          // index of the BENCH_ID slot in envp
  std::vector<std::string> ids;     // "BENCH_ID=floor/<i>"
  std::vector<pid_t> pids;          // copy i -> pid (-1: not running)
  std::unordered_map<pid_t, int> copy_of;  // pid -> copy index
  posix_spawnattr_t attr;
  std::size_t running = 0;

  // Spawns copy i; returns the posix_spawn error (0 on success).
  int spawn(int i) {
    envp[id_slot] = ids[static_cast<std::size_t>(i)].data();
    pid_t pid = -1;
    const int err = ::posix_spawn(&pid, program, nullptr, &attr, argv, envp.data());
    if (err != 0) {
      pids[static_cast<std::size_t>(i)] = -1;
      return err;
    }
    pids[static_cast<std::size_t>(i)] = pid;
    copy_of.emplace(pid, i);
    ++running;
    return 0;
  }

  // Reaps every exited child; re-spawns them unless `respawn` is false.
  void reap(bool respawn) {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;  // 0: none left that exited; -1: ECHILD
      const auto it = copy_of.find(pid);
      if (it == copy_of.end()) continue;
      const int i = it->second;
      copy_of.erase(it);
      --running;
      pids[static_cast<std::size_t>(i)] = -1;
      if (respawn) {
        if (const int err = spawn(i); err != 0) {
          std::fprintf(stderr, "bench_spawn_floor: re-spawn of copy %d failed: %s\n", i, std::strerror(err));
        }
      }
    }
  }

  // SIGTERM to every copy, then wait for all of them.
  void stop_all() {
    for (const pid_t pid : pids) {
      if (pid > 0) ::kill(pid, SIGTERM);
    }
    while (running > 0) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, 0);
      if (pid < 0) {
        if (errno == EINTR) continue;
        break;  // ECHILD: nothing left
      }
      if (const auto it = copy_of.find(pid); it != copy_of.end()) {
        pids[static_cast<std::size_t>(it->second)] = -1;
        copy_of.erase(it);
        --running;
      }
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_spawn_floor N PROGRAM [ARGS...]\n");
    return 2;
  }
  char* end = nullptr;
  const long n = std::strtol(argv[1], &end, 10);
  if (end == argv[1] || *end != '\0' || n < 1 || n > 1000000) {
    std::fprintf(stderr, "bench_spawn_floor: bad N '%s'\n", argv[1]);
    return 2;
  }

  // Block the signals we wait for before any child exists; the children get
  // an empty mask back (POSIX_SPAWN_SETSIGMASK), or SIGTERM could not end them.
  sigset_t waited;
  sigemptyset(&waited);
  sigaddset(&waited, SIGCHLD);
  sigaddset(&waited, SIGTERM);
  sigaddset(&waited, SIGINT);
  if (sigprocmask(SIG_BLOCK, &waited, nullptr) != 0) {
    std::perror("bench_spawn_floor: sigprocmask");
    return 1;
  }

  Floor f;
  f.program = argv[2];
  f.argv = argv + 2;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, kIdVar, sizeof kIdVar - 1) != 0) f.envp.push_back(*e);
  }
  f.id_slot = f.envp.size();
  f.envp.push_back(nullptr);  // BENCH_ID, set per spawn
  f.envp.push_back(nullptr);
  f.ids.reserve(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) f.ids.push_back(std::string(kIdVar) + "floor/" + std::to_string(i));
  f.pids.assign(static_cast<std::size_t>(n), -1);
  f.copy_of.reserve(static_cast<std::size_t>(n) * 2);

  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_init(&f.attr);
  posix_spawnattr_setsigmask(&f.attr, &none);
  posix_spawnattr_setflags(&f.attr, POSIX_SPAWN_SETSIGMASK);

  for (int i = 0; i < static_cast<int>(n); ++i) {
    if (const int err = f.spawn(i); err != 0) {
      std::fprintf(stderr, "bench_spawn_floor: spawn of copy %d (%s) failed: %s\n", i, f.program,
                   std::strerror(err));
      f.stop_all();
      return 1;
    }
  }

  for (;;) {
    siginfo_t info;
    const int sig = ::sigwaitinfo(&waited, &info);
    if (sig < 0) continue;  // EINTR
    if (sig == SIGCHLD) {
      f.reap(true);
    } else {  // SIGTERM or SIGINT
      f.stop_all();
      posix_spawnattr_destroy(&f.attr);
      return 0;
    }
  }
}
