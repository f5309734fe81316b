#include "cli/autostart.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>

#include "common/fs_util.h"
#include "common/home_layout.h"

extern char** environ;

namespace zeppelin::cli {

std::string socket_path(const std::string& home) { return HomeLayout(home).api_socket(); }

namespace {

std::optional<client::Remote>& remote_server() {
  static std::optional<client::Remote> remote;
  return remote;
}

std::string self_exe() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "zeppelin";
  buf[n] = '\0';
  return buf;
}

}  // namespace

void use_remote_server(client::Remote remote) { remote_server() = std::move(remote); }

client::Client server_client(const std::string& home) {
  if (remote_server()) return client::Client(*remote_server());
  return client::Client(socket_path(home));
}

std::optional<client::Client> running_server(const std::string& home) {
  if (remote_server()) return client::Client(*remote_server());
  client::Client local(socket_path(home));
  if (local.reachable()) return local;
  return std::nullopt;
}

Result<client::Client> connect_or_start(const std::string& home) {
  if (remote_server()) return client::Client(*remote_server());
  return connect_or_start_local(home);
}

Result<client::Client> connect_or_start_local(const std::string& home) {
  client::Client client(socket_path(home));
  if (client.reachable()) return client;
  if (auto s = make_dirs(home, 0700); !s) return s.error();

  // The server writes a byte to this pipe once it accepts requests.
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return make_error(Errc::kInternal, std::string("pipe: ") + std::strerror(errno));
  const std::string log_path = HomeLayout(home).server_log();
  const int log_fd = open_owner_only(log_path, O_WRONLY | O_APPEND);
  if (log_fd < 0) return make_error(Errc::kInternal, "cannot open " + log_path + ": " + std::strerror(errno));

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, log_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, log_fd, 2);
  posix_spawn_file_actions_adddup2(&actions, ready[1], 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);  // outlives the terminal that started it

  const std::string exe = self_exe();
  std::vector<std::string> args = {exe, "server", "--home", home, "--ready-fd", "3"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, exe.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(log_fd);
  ::close(ready[1]);
  if (rc != 0) {
    ::close(ready[0]);
    return make_error(Errc::kInternal, std::string("cannot start the zeppelin server: ") + std::strerror(rc));
  }
  pollfd p{ready[0], POLLIN, 0};
  const int polled = ::poll(&p, 1, 15000);
  char byte = 0;
  const bool signalled = polled == 1 && ::read(ready[0], &byte, 1) == 1;
  ::close(ready[0]);
  if (!signalled) {
    // Another CLI may have won the race to start it; that server is fine too.
    if (client.reachable()) return client;
    return make_error(Errc::kUnavailable, "the zeppelin server did not start; see " + log_path);
  }
  return client;
}

}  // namespace zeppelin::cli
