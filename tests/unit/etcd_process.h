// Real etcd members (Debian's etcd-server) started by tests on free loopback
// ports, each with its own data directory; killed and reaped by the tests.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "etcd_client/etcd_store.h"

namespace zeppelin::testing {

inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline std::string etcd_binary() {
  for (const char* p : {"/usr/bin/etcd", "/usr/local/bin/etcd"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "etcd";
}

struct EtcdMember {
  std::string name;
  int client_port = 0;
  int peer_port = 0;
  pid_t pid = -1;
  std::string scheme = "http";  // "https" when the members serve clients over TLS
  std::string client_url() const { return scheme + "://127.0.0.1:" + std::to_string(client_port); }
  std::string peer_url() const { return "http://127.0.0.1:" + std::to_string(peer_port); }
};

// A cluster of `n` members under `dir`, started at once with a static --initial-cluster.
class EtcdCluster {
 public:
  // `extra_args` go to every member; with `scheme` "https" they must include the TLS flags.
  EtcdCluster(const std::filesystem::path& dir, int n, std::vector<std::string> extra_args = {},
              const std::string& scheme = "http")
      : dir_(dir), extra_args_(std::move(extra_args)) {
    std::filesystem::create_directories(dir_);
    for (int i = 0; i < n; ++i) {
      EtcdMember m;
      m.name = "m" + std::to_string(i);
      m.client_port = free_port();
      m.peer_port = free_port();
      m.scheme = scheme;
      members_.push_back(m);
    }
    std::string initial;
    for (const auto& m : members_) initial += (initial.empty() ? "" : ",") + m.name + "=" + m.peer_url();
    for (auto& m : members_) start(m, initial);
  }

  ~EtcdCluster() {
    for (auto& m : members_) kill(m, SIGTERM);
    std::filesystem::remove_all(dir_);
  }

  std::vector<EtcdMember>& members() { return members_; }

  std::string endpoints() const {
    std::string out;
    for (const auto& m : members_) out += (out.empty() ? "" : ",") + m.client_url();
    return out;
  }

  // Opens a store on every member (bounded wait until the cluster serves).
  Result<std::unique_ptr<etcd_client::EtcdStore>> open(const std::string& prefix) {
    etcd_client::EtcdStoreOptions options;
    auto endpoints = etcd_client::parse_endpoints(this->endpoints());
    if (!endpoints) return endpoints.error();
    options.connection.endpoints = *endpoints;
    options.prefix = prefix;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (true) {
      auto store = etcd_client::EtcdStore::open(options);
      // A read through the cluster proves it has a leader.
      if (store && (*store)->range({"ready-probe"}).ok()) return store;
      if (std::chrono::steady_clock::now() > deadline) {
        return make_error(Errc::kTimeout, "etcd did not start: see " + dir_.string());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  static void kill(EtcdMember& m, int sig) {
    if (m.pid <= 0) return;
    ::kill(m.pid, sig);
    int status = 0;
    ::waitpid(m.pid, &status, 0);
    m.pid = -1;
  }

 private:
  void start(EtcdMember& m, const std::string& initial) {
    const std::string data = (dir_ / (m.name + ".data")).string();
    const std::string log = (dir_ / (m.name + ".log")).string();
    std::vector<std::string> args = {etcd_binary(),
                                     "--name", m.name,
                                     "--data-dir", data,
                                     "--listen-client-urls", m.client_url(),
                                     "--advertise-client-urls", m.client_url(),
                                     "--listen-peer-urls", m.peer_url(),
                                     "--initial-advertise-peer-urls", m.peer_url(),
                                     "--initial-cluster", initial,
                                     "--initial-cluster-state", "new",
                                     "--heartbeat-interval", "50",
                                     "--election-timeout", "500"};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      FILE* f = std::fopen(log.c_str(), "w");
      if (f) {
        ::dup2(fileno(f), 1);
        ::dup2(fileno(f), 2);
      }
      ::setenv("ETCD_UNSUPPORTED_ARCH", "", 0);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    m.pid = pid;
  }

  std::filesystem::path dir_;
  std::vector<std::string> extra_args_;
  std::vector<EtcdMember> members_;
};

}  // namespace zeppelin::testing
