#include "cli/coord_commands.h"

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/autostart.h"
#include "cli/commands.h"
#include "cli/exit.h"
#include "common/fs_util.h"
#include "common/home_layout.h"
#include "common/units.h"
#include "etcd_client/etcd_store.h"
#include "etcd_client/lease_keeper.h"
#include "spec/replica_contract.h"

namespace zeppelin::cli {

namespace var = spec::replica_env;

using json = nlohmann::json;

struct CoordArgs {
  CLI::App* kv = nullptr;
  CLI::App* get = nullptr;
  CLI::App* put = nullptr;
  CLI::App* del = nullptr;
  CLI::App* ls = nullptr;
  CLI::App* watch = nullptr;
  CLI::App* lock = nullptr;
  CLI::App* elect = nullptr;
  std::string endpoints;
  std::string key;
  std::string value;
  std::string output = "simple";
  bool prefix = false;
  int64_t revision = 0;
  int64_t ttl = 10;
  bool listen = false;
  std::vector<std::string> command;
};

namespace {

// The local server's store: its endpoints from the API (over the owner-only
// socket, so they are the server's own), and root's password from
// $ZEPPELIN_HOME when the store is the embedded one. An external etcd
// (--store etcd) is never sent that password.
Result<StoreTarget> local_store(const std::string& home) {
  auto c = connect_or_start_local(home);
  if (!c) return c.error();
  auto r = c->call("GET", "/v1/etcd");
  if (!r) return r.error();
  if (!r->ok()) return make_error(Errc::kUnavailable, "GET /v1/etcd: " + r->error_message());
  StoreTarget target;
  for (const auto& e : r->body.value("endpoints", json::array())) target.endpoints.push_back(e.get<std::string>());
  target.ca_file = r->body.value("cacert", "");
  if (target.endpoints.empty()) {
    return make_error(Errc::kUnavailable, std::string("the local server serves no etcd API: give --endpoints, set ") +
                                              var::kEtcdEndpoints + ", or start the server with --etcd-listen");
  }
  if (r->body.value("backend", "") == "embedded" && r->body.value("auth", true)) {
    if (auto password = read_file(HomeLayout(home).store_root_credentials()); password) {
      while (!password->empty() && (password->back() == '\n' || password->back() == '\r')) password->pop_back();
      target.user = "root";
      target.password = *password;
    }
  }
  return target;
}

}  // namespace

Result<StoreTarget> find_store(const std::string& flag, const std::string& home) {
  StoreTarget target;
  if (!flag.empty()) {
    auto parsed = etcd_client::parse_endpoints(flag);
    if (!parsed) return make_error(Errc::kInvalidArgument, "--endpoints: " + parsed.error().message);
    target.endpoints = *parsed;
  } else if (const char* env = std::getenv(var::kEtcdEndpoints); env && *env) {
    auto parsed = etcd_client::parse_endpoints(env);
    if (!parsed) return make_error(Errc::kInvalidArgument, var::kEtcdEndpoints + (": " + parsed.error().message));
    target.endpoints = *parsed;
  }
  if (!target.endpoints.empty()) {
    if (const char* ca = std::getenv(var::kEtcdCaCert); ca && *ca) target.ca_file = ca;
  }
  // Who to be, first match: a user with its password (store.etcd, `zeppelin
  // store env`), a token (a replica's), root of the local server's store.
  const char* user = std::getenv(var::kEtcdUser);
  const char* password = std::getenv(var::kEtcdPassword);
  const char* token = std::getenv(var::kEtcdToken);
  if (user && *user && (password || !token || !*token)) {
    target.user = user;
    if (password) target.password = password;
  } else if (token && *token) {
    target.token = token;
  }
  if (!target.endpoints.empty()) return target;
  auto local = local_store(home);
  if (!local) return local.error();
  if (target.user.empty() && target.token.empty()) return local;
  target.endpoints = local->endpoints;
  target.ca_file = local->ca_file;
  return target;
}

namespace {

Result<std::unique_ptr<etcd_client::EtcdStore>> open_store(const StoreTarget& target) {
  etcd_client::EtcdStoreOptions options;
  options.connection.endpoints = target.endpoints;
  options.connection.user = target.user;
  options.connection.password = target.password;
  options.connection.token = target.token;
  options.connection.ca_file = target.ca_file;
  return etcd_client::EtcdStore::open(options);
}

// Blocks SIGINT and SIGTERM in this thread and every thread started after,
// so that one thread can take them with sigwait.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Where to stop waiting: the first signal, or an event of our own.
class StopSignal {
 public:
  void notify(int code) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!code_) code_ = code;
    cv_.notify_all();
  }
  int wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return code_.has_value(); });
    return *code_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<int> code_;
};

// A thread that turns SIGINT/SIGTERM into `on_signal(signo)` calls.
class SignalThread {
 public:
  SignalThread(sigset_t set, std::function<void(int)> on_signal) : set_(set) {
    thread_ = std::thread([this, fn = std::move(on_signal)] {
      while (true) {
        int sig = 0;
        if (sigwait(&set_, &sig) != 0) continue;
        if (done_.load()) return;
        fn(sig);
      }
    });
  }
  ~SignalThread() {
    done_.store(true);
    pthread_kill(thread_.native_handle(), SIGTERM);
    thread_.join();
  }

 private:
  sigset_t set_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

json kv_json(const store::KeyValue& kv) {
  return {{"key", kv.key},         {"value", kv.value},     {"create_revision", kv.create_revision},
          {"mod_revision", kv.mod_revision}, {"version", kv.version}, {"lease", kv.lease}};
}

void print_json(const json& j) {
  std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
}

std::string range_end_for(const std::string& key, bool prefix) {
  if (!prefix) return "";
  return key.empty() ? std::string(1, '\0') : store::prefix_end(key);
}

int kv_get(store::Store& s, const CoordArgs& a) {
  std::string key = a.key;
  if (key.empty() && a.prefix) key = std::string(1, '\0');
  auto r = s.range({key, range_end_for(a.key, a.prefix)});
  if (!r) return fail(r.error());
  if (a.output == "json") {
    json kvs = json::array();
    for (const auto& kv : r->kvs) kvs.push_back(kv_json(kv));
    print_json({{"revision", r->revision}, {"count", r->count}, {"kvs", kvs}});
  } else {
    for (const auto& kv : r->kvs) std::cout << kv.key << "\n" << kv.value << "\n";
  }
  return r->kvs.empty() && !a.prefix ? kFailure : kOk;
}

int kv_put(store::Store& s, const CoordArgs& a) {
  std::string value = a.value;
  if (value == "-") value.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  auto r = s.put({a.key, value});
  if (!r) return fail(r.error());
  std::cout << "OK\n";
  return kOk;
}

int kv_del(store::Store& s, const CoordArgs& a) {
  std::string key = a.key;
  if (key.empty() && a.prefix) key = std::string(1, '\0');
  auto r = s.delete_range({key, range_end_for(a.key, a.prefix)});
  if (!r) return fail(r.error());
  std::cout << r->deleted << "\n";
  return kOk;
}

int kv_ls(store::Store& s, const CoordArgs& a) {
  store::RangeRequest req{a.key.empty() ? std::string(1, '\0') : a.key, range_end_for(a.key, true)};
  req.keys_only = true;
  auto r = s.range(req);
  if (!r) return fail(r.error());
  if (a.output == "json") {
    json keys = json::array();
    for (const auto& kv : r->kvs) keys.push_back(kv.key);
    print_json({{"revision", r->revision}, {"keys", keys}});
  } else {
    for (const auto& kv : r->kvs) std::cout << kv.key << "\n";
  }
  return kOk;
}

int kv_watch(store::Store& s, const CoordArgs& a, sigset_t signals) {
  StopSignal stop;
  std::mutex out_mu;
  store::WatchRequest req;
  req.key = a.key.empty() && a.prefix ? std::string(1, '\0') : a.key;
  req.range_end = range_end_for(a.key, a.prefix);
  req.start_revision = a.revision;
  auto w = s.watch(req, [&](store::WatchUpdate u) {
    std::lock_guard<std::mutex> lock(out_mu);
    if (u.compact_revision) {
      std::cerr << "zeppelin: watch: revision " << a.revision << " was compacted (oldest is "
                << u.compact_revision << ")\n";
      stop.notify(kFailure);
      return;
    }
    for (const auto& e : u.events) {
      if (a.output == "json") {
        print_json({{"type", e.type == store::Event::Type::kPut ? "PUT" : "DELETE"}, {"kv", kv_json(e.kv)}});
      } else {
        std::cout << (e.type == store::Event::Type::kPut ? "PUT" : "DELETE") << "\n"
                  << e.kv.key << "\n"
                  << e.kv.value << "\n";
      }
    }
    std::cout.flush();
  });
  if (!w) return fail(w.error());
  SignalThread signal_thread(signals, [&](int) { stop.notify(kOk); });
  return stop.wait();
}

// Runs argv as a child with the default signal mask; returns its pid.
pid_t spawn(const std::vector<std::string>& argv) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, nullptr);
    std::vector<char*> args;
    for (const auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::cerr << "zeppelin: lock: cannot run '" << argv[0] << "': " << std::strerror(errno) << "\n";
    ::_exit(127);
  }
  return pid;
}

// A blocking call (Lock, Campaign) that a signal can cancel: interrupt()
// cancels the call in flight, or the next one before it starts.
class CancellableCall {
 public:
  template <typename Call>
  grpc::Status run(grpc::ClientContext& ctx, Call&& call) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (interrupted_) return grpc::Status(grpc::StatusCode::CANCELLED, "interrupted");
      waiting_ = &ctx;
    }
    grpc::Status status = call();
    std::lock_guard<std::mutex> lock(mu_);
    waiting_ = nullptr;
    return status;
  }
  void interrupt() {
    std::lock_guard<std::mutex> lock(mu_);
    interrupted_ = true;
    if (waiting_) waiting_->TryCancel();
  }
  bool interrupted() {
    std::lock_guard<std::mutex> lock(mu_);
    return interrupted_;
  }

 private:
  std::mutex mu_;
  grpc::ClientContext* waiting_ = nullptr;
  bool interrupted_ = false;
};

int cmd_lock(etcd_client::EtcdStore& s, const CoordArgs& a, sigset_t signals) {
  if (a.command.empty()) return fail("lock: give the command to run after --, e.g. zeppelin lock NAME -- CMD", kUsage);
  auto lease = s.lease_grant(0, a.ttl);
  if (!lease) return fail(lease.error());
  std::atomic<pid_t> child{0};
  CancellableCall lock_call;  // the Lock call in flight, cancelled by a signal
  SignalThread signal_thread(signals, [&](int sig) {
    lock_call.interrupt();
    if (const pid_t pid = child.load(); pid > 0) ::kill(pid, sig);
  });
  etcd_client::LeaseKeeper keeper(s, lease->id, lease->ttl, [&] {
    std::cerr << "zeppelin: lock: lease lost, the lock is no longer held: stopping the command\n";
    if (const pid_t pid = child.load(); pid > 0) ::kill(pid, SIGTERM);
  });

  auto conn = s.connection();
  v3lockpb::LockRequest req;
  req.set_name(a.key);
  req.set_lease(lease->id);
  v3lockpb::LockResponse resp;
  auto status = conn->call(
      etcd_client::Retry::kUnsent,
      [&](etcd_client::Member& m, grpc::ClientContext& ctx) {
        return lock_call.run(ctx, [&] { return m.lock->Lock(&ctx, req, &resp); });
      },
      std::chrono::milliseconds(0));
  if (!status.ok()) {
    (void)s.lease_revoke(lease->id);
    if (lock_call.interrupted()) return 128 + SIGINT;
    return fail(etcd_client::to_error(status, "lock " + a.key));
  }

  const pid_t pid = spawn(a.command);
  child.store(pid);
  if (lock_call.interrupted()) ::kill(pid, SIGTERM);  // a signal came between the lock and the fork
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  child.store(-1);

  v3lockpb::UnlockRequest unlock;
  unlock.set_key(resp.key());
  v3lockpb::UnlockResponse unlocked;
  (void)conn->call(etcd_client::Retry::kAlways, [&](etcd_client::Member& m, grpc::ClientContext& ctx) {
    return m.lock->Unlock(&ctx, unlock, &unlocked);
  });
  (void)s.lease_revoke(lease->id);
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return kFailure;
}

int cmd_elect_listen(etcd_client::EtcdStore& s, const CoordArgs& a, sigset_t signals) {
  auto conn = s.connection();
  std::mutex mu;
  bool stopping = false;
  grpc::ClientContext* current = nullptr;
  SignalThread signal_thread(signals, [&](int) {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
    if (current) current->TryCancel();
  });
  std::string last_key;
  int64_t last_rev = -1;
  int failures = 0;
  while (true) {
    const std::size_t member = conn->current();
    auto ctx = conn->context(std::chrono::milliseconds(0));
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopping) return kOk;
      current = ctx.get();
    }
    v3electionpb::LeaderRequest req;
    req.set_name(a.key);
    auto reader = conn->member(member).election->Observe(ctx.get(), req);
    v3electionpb::LeaderResponse resp;
    while (reader->Read(&resp)) {
      failures = 0;
      if (resp.kv().key() == last_key && resp.kv().mod_revision() == last_rev) continue;
      last_key = resp.kv().key();
      last_rev = resp.kv().mod_revision();
      std::cout << resp.kv().value() << std::endl;
    }
    const auto status = reader->Finish();
    {
      std::lock_guard<std::mutex> lock(mu);
      current = nullptr;
      if (stopping) return kOk;
    }
    if (!conn->should_fail_over(member, status) || ++failures > static_cast<int>(3 * conn->size())) {
      return fail(etcd_client::to_error(status, "elect --listen " + a.key));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int cmd_elect(etcd_client::EtcdStore& s, const CoordArgs& a, sigset_t signals) {
  if (a.listen) return cmd_elect_listen(s, a, signals);
  if (a.value.empty()) return fail("elect: give NAME and VALUE (or --listen NAME)", kUsage);
  auto lease = s.lease_grant(0, a.ttl);
  if (!lease) return fail(lease.error());
  StopSignal stop;
  CancellableCall campaign;
  SignalThread signal_thread(signals, [&](int) {
    campaign.interrupt();
    stop.notify(kOk);
  });
  etcd_client::LeaseKeeper keeper(s, lease->id, lease->ttl, [&] {
    std::cerr << "zeppelin: elect: lease lost, leadership is gone\n";
    stop.notify(kFailure);
  });

  auto conn = s.connection();
  v3electionpb::CampaignRequest req;
  req.set_name(a.key);
  req.set_lease(lease->id);
  req.set_value(a.value);
  v3electionpb::CampaignResponse resp;
  auto status = conn->call(
      etcd_client::Retry::kUnsent,
      [&](etcd_client::Member& m, grpc::ClientContext& ctx) {
        return campaign.run(ctx, [&] { return m.election->Campaign(&ctx, req, &resp); });
      },
      std::chrono::milliseconds(0));
  if (!status.ok()) {
    (void)s.lease_revoke(lease->id);
    if (campaign.interrupted()) return 128 + SIGINT;
    return fail(etcd_client::to_error(status, "elect " + a.key));
  }
  std::cout << a.value << std::endl;
  const int code = stop.wait();
  v3electionpb::ResignRequest resign;
  *resign.mutable_leader() = resp.leader();
  v3electionpb::ResignResponse resigned;
  (void)conn->call(etcd_client::Retry::kAlways, [&](etcd_client::Member& m, grpc::ClientContext& ctx) {
    return m.election->Resign(&ctx, resign, &resigned);
  });
  (void)s.lease_revoke(lease->id);
  return code;
}

}  // namespace

std::shared_ptr<CoordArgs> add_coord_commands(CLI::App& app) {
  auto a = std::make_shared<CoordArgs>();
  auto endpoints = [&](CLI::App* cmd) {
    cmd->add_option(
        "--endpoints", a->endpoints,
        std::string("etcd endpoints URL[,URL...] (default $") + var::kEtcdEndpoints + ", then the local server's)");
  };
  // -o as everywhere in zeppelin, -w as etcdctl spells it.
  auto output_flag = [&a](CLI::App* cmd) {
    cmd->add_option("-o,-w,--output,--write-out", a->output, "simple or json")->check(CLI::IsMember({"simple", "json"}));
  };
  a->kv = app.add_subcommand("kv", "Keys and values in the coordination store (etcd v3)");
  a->kv->require_subcommand(1);
  endpoints(a->kv);
  a->get = a->kv->add_subcommand("get", "Print KEY and its value (with --prefix: every key starting with KEY); exits 1 if KEY is absent");
  a->get->add_option("key", a->key, "key")->required();
  a->get->add_flag("--prefix", a->prefix, "every key starting with KEY");
  output_flag(a->get);
  a->put = a->kv->add_subcommand("put", "Set KEY to VALUE (- reads the value from stdin)");
  a->put->add_option("key", a->key, "key")->required();
  a->put->add_option("value", a->value, "value, or - for stdin")->required();
  a->del = a->kv->add_subcommand("del", "Delete KEY (with --prefix: every key starting with KEY); prints the count");
  a->del->add_option("key", a->key, "key")->required();
  a->del->add_flag("--prefix", a->prefix, "every key starting with KEY");
  a->ls = a->kv->add_subcommand("ls", "List the keys starting with PREFIX (default: every key)");
  a->ls->add_option("prefix", a->key, "key prefix");
  output_flag(a->ls);
  a->watch = a->kv->add_subcommand("watch", "Print changes to KEY until interrupted");
  a->watch->add_option("key", a->key, "key")->required();
  a->watch->add_flag("--prefix", a->prefix, "every key starting with KEY");
  a->watch->add_option("--rev", a->revision, "start at this past revision");
  output_flag(a->watch);
  for (auto* cmd : {a->get, a->put, a->del, a->ls, a->watch}) endpoints(cmd);
  add_examples(a->kv, {"zeppelin kv put /app/config '{\"debug\": true}'", "zeppelin kv get --prefix /app/ -w json"});
  add_examples(a->get, {"zeppelin kv get /app/config", "zeppelin kv get --prefix /app/ -w json"});
  add_examples(a->put, {"zeppelin kv put /app/mode blue", "echo hello | zeppelin kv put /app/greeting -"});
  add_examples(a->del, {"zeppelin kv del /app/mode", "zeppelin kv del --prefix /app/"});
  add_examples(a->ls, {"zeppelin kv ls", "zeppelin kv ls /zeppelin/services/"});
  add_examples(a->watch, {"zeppelin kv watch --prefix /zeppelin/services/shop/", "zeppelin kv watch /app/mode -w json"});

  a->lock = app.add_subcommand("lock", "Run CMD while holding the lock NAME (etcd's v3lock); exits with CMD's code");
  a->lock->add_option("name", a->key, "lock name")->required();
  a->lock->add_option("command", a->command, "-- CMD ARGS...");
  a->lock->add_option("--ttl", a->ttl, "seconds the lock outlives this process if it dies")->capture_default_str();
  endpoints(a->lock);
  add_examples(a->lock, {"zeppelin lock migrations -- ./migrate.sh", "zeppelin lock --ttl 30 backup -- tar czf /backup/db.tgz /data"});

  a->elect = app.add_subcommand("elect", "Campaign for leadership of NAME with VALUE; hold it until interrupted");
  a->elect->add_option("name", a->key, "election name")->required();
  a->elect->add_option("value", a->value, "this candidate's value, printed when elected");
  a->elect->add_flag("--listen", a->listen, "print each new leader's value instead of campaigning");
  a->elect->add_option("--ttl", a->ttl, "seconds leadership outlives this process if it dies")->capture_default_str();
  endpoints(a->elect);
  add_examples(a->elect, {"zeppelin elect scheduler \"$ZEPPELIN_HOST\"      # campaign; hold until interrupted",
                          "zeppelin elect scheduler --listen             # print each new leader"});
  return a;
}

std::optional<int> run_coord_command(CoordArgs& a, const std::string& home) {
  if (!*a.kv && !*a.lock && !*a.elect) return std::nullopt;
  if (a.ttl < 1) return fail("--ttl: must be at least 1 second", kUsage);
  // First, as it may start a server, which must not inherit blocked signals.
  auto target = find_store(a.endpoints, home);
  if (!target) return fail(target.error());
  // Before any thread exists: signals are taken by one thread, with sigwait.
  const sigset_t signals = block_stop_signals();
  auto store = open_store(*target);
  if (!store) return fail(store.error());
  auto& s = **store;
  if (*a.get) return kv_get(s, a);
  if (*a.put) return kv_put(s, a);
  if (*a.del) return kv_del(s, a);
  if (*a.ls) return kv_ls(s, a);
  if (*a.watch) return kv_watch(s, a, signals);
  if (*a.lock) return cmd_lock(s, a, signals);
  return cmd_elect(s, a, signals);
}

namespace {

// 'VALUE' for a POSIX shell.
std::string shell_quote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace

int cmd_store_env(const std::string& home) {
  auto target = local_store(home);
  if (!target) return fail(target.error());
  const std::string endpoints = var::join_list(target->endpoints);
  std::string etcdctl_endpoints;  // HOST:PORT: etcdctl's `endpoint status` sends a URL as its gRPC authority
  for (const auto& e : target->endpoints) {
    const auto scheme = e.find("://");
    etcdctl_endpoints +=
        (etcdctl_endpoints.empty() ? "" : ",") + (scheme == std::string::npos ? e : e.substr(scheme + 3));
  }
  auto export_line = [](const char* variable, const std::string& value) {
    std::cout << "export " << variable << "=" << shell_quote(value) << "\n";
  };
  std::cout << "export ETCDCTL_API=3\n";
  export_line("ETCDCTL_ENDPOINTS", etcdctl_endpoints);
  export_line(var::kEtcdEndpoints, endpoints);
  if (!target->ca_file.empty()) {
    export_line(var::kEtcdctlCaCert, target->ca_file);
    export_line(var::kEtcdCaCert, target->ca_file);
  }
  if (!target->user.empty()) {
    export_line(var::kEtcdctlUser, target->user + ":" + target->password);
    export_line(var::kEtcdUser, target->user);
    export_line(var::kEtcdPassword, target->password);
  }
  return kOk;
}

void add_server_store_flags(CLI::App& server, server::StoreOptions& o) {
  server.add_option("--store", o.backend, "coordination store: embedded (in $ZEPPELIN_HOME/store) or etcd")
      ->check(CLI::IsMember({"embedded", "etcd"}))
      ->capture_default_str();
  server.add_option("--etcd-endpoints", o.etcd_endpoints, "with --store etcd: URL[,URL...] of the etcd members");
  server.add_option("--etcd-prefix", o.etcd_prefix, "with --store etcd: where zeppelin's keys live")
      ->capture_default_str();
  server.add_option("--etcd-user", o.etcd_user, "with --store etcd: authenticate as this user");
  server.add_option_function<std::string>(
      "--etcd-password-env",
      [&o](const std::string& var) {
        const char* value = std::getenv(var.c_str());
        if (!value) throw CLI::ValidationError("--etcd-password-env", "the variable " + var + " is not set");
        o.etcd_password = value;
      },
      "with --etcd-user: the environment variable holding the password");
  server.add_flag("--etcd-plaintext", o.etcd_plaintext,
                  "let --etcd-listen be beyond loopback without TLS (auth stays on), for a network guarded otherwise");
  server.add_flag("--etcd-tls", o.etcd_tls,
                  "serve the etcd port over TLS only, with a certificate of the private CA in $ZEPPELIN_HOME/tls "
                  "(clients trust its ca.pem); --etcd-listen may then be beyond loopback");
  auto* etcd_tls_cert = server
                            .add_option("--etcd-tls-cert", o.etcd_tls_cert,
                                        "PEM certificate (and chain) of the etcd port; implies --etcd-tls; re-read "
                                        "when it changes")
                            ->check(CLI::ExistingFile)
                            ->each([&o](const std::string&) { o.etcd_tls = true; });
  auto* etcd_tls_key =
      server.add_option("--etcd-tls-key", o.etcd_tls_key, "PEM key of --etcd-tls-cert")->check(CLI::ExistingFile);
  etcd_tls_cert->needs(etcd_tls_key);
  etcd_tls_key->needs(etcd_tls_cert);
  server
      .add_option("--etcd-tls-ca", o.etcd_tls_ca,
                  "with --etcd-tls-cert: the CA file its clients (the CLI, replicas, `store env`) trust; default: "
                  "the system's CAs")
      ->check(CLI::ExistingFile)
      ->needs(etcd_tls_cert);
  server.add_flag("--insecure-store", o.insecure,
                  "serve the store's etcd API with auth off (loopback only; anyone who can reach the port can "
                  "read its secrets and run commands as you)");
  server.add_option_function<std::string>(
      "--store-password-env",
      [&o](const std::string& var) {
        const char* value = std::getenv(var.c_str());
        if (!value || !*value) throw CLI::ValidationError("--store-password-env", "the variable " + var + " is not set");
        o.root_password = value;
        ::unsetenv(var.c_str());  // nothing the server starts inherits it
      },
      "the environment variable holding the password of a root user you made in the embedded store yourself "
      "(needed once; kept in $ZEPPELIN_HOME/credentials/store-root)");
  server.add_option("--max-txn-ops", o.max_txn_ops,
                    "operations a transaction of the etcd API may hold, all nesting levels together")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  server.add_option("--max-response-bytes", o.max_response_bytes,
                    "a Range or Txn of the etcd API whose answer passes this many bytes fails (page with limit)")
      ->check(CLI::Range(int64_t{1} << 10, int64_t{1} << 40))
      ->capture_default_str();
  server.add_option("--etcd-max-connections", o.etcd_max_connections,
                    "connections the etcd port holds open at once (gRPC and JSON gateway); more are closed at once")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  server
      .add_option_function<std::string>(
          "--etcd-idle-timeout",
          [&o](const std::string& text) {
            auto d = parse_duration(text);
            if (!d || d->count() <= 0) {
              throw CLI::ValidationError("--etcd-idle-timeout", "expects a positive duration such as 30s or 2m");
            }
            o.etcd_idle_timeout = *d;
          },
          "a connection to the etcd port with no request in flight for this long is closed (gRPC: GOAWAY); "
          "a call or stream in flight, such as a silent watch, never is")
      ->default_str("2m");
  server.add_option("--auto-compaction-mode", o.auto_compaction_mode,
                    "embedded store: how history is compacted by itself (revision: keep the last "
                    "--auto-compaction-retention revisions; periodic: keep --auto-compaction-retention of time)")
      ->check(CLI::IsMember({"revision", "periodic"}))
      ->capture_default_str();
  server.add_option("--auto-compaction-retention", o.auto_compaction_retention,
                    "embedded store: history kept by automatic compaction: revisions (revision mode), or a duration "
                    "such as 1h or 30m, a bare number being hours (periodic mode); 0: compact only when asked")
      ->capture_default_str();
  server.add_option("--quota-backend-bytes", o.quota_backend_bytes,
                    "embedded store: bytes in use past which writes are refused with NOSPACE (0: no quota)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  server.add_option("--etcd-cacert", o.etcd_cacert, "with --store etcd: PEM file of the CA to trust")
      ->check(CLI::ExistingFile);
  server.add_option("--etcd-cert", o.etcd_cert, "with --store etcd: PEM client certificate")->check(CLI::ExistingFile);
  server.add_option("--etcd-key", o.etcd_key, "with --store etcd: PEM key of the client certificate")
      ->check(CLI::ExistingFile);
}

}  // namespace zeppelin::cli
