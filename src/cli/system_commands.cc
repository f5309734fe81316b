#include "cli/system_commands.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cli/autostart.h"
#include "cli/exit.h"
#include "cli/kubernetes_commands.h"
#include "cli/output.h"
#include "client/client.h"
#include "common/fs_util.h"
#include "common/utf8.h"
#include "common/units.h"
#include "runtime/container/images.h"
#include "spec/parser.h"
#include "supervisor/replica_env.h"

namespace zeppelin::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using cli::fail;  // the overloads of cli/exit.h, beside the one below

// Maps an API answer to an exit code: 4xx are the caller's mistakes, but for
// a missing thing and a refusal (401, 403, 429), which are failures.
int fail(const client::Response& r) {
  const bool usage = r.status >= 400 && r.status < 500 && r.status != 401 && r.status != 403 && r.status != 404 &&
                     r.status != 429;
  return fail(r.error_message(), usage ? kUsage : kFailure);
}

// The environment `run` records with the system (process replicas inherit
// it). It travels as JSON text: a variable that is not UTF-8 is an error
// naming it, before anything starts.
Result<std::map<std::string, std::string>> caller_environment() {
  auto env = process_environment();
  std::erase_if(env, [](const auto& kv) { return supervisor::is_withheld_caller_variable(kv.first); });
  for (const auto& [name, value] : env) {
    if (!first_invalid_utf8(name) && !first_invalid_utf8(value)) continue;
    std::string shown = name;
    for (auto& c : shown) {
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
    }
    return make_error(Errc::kInvalidArgument, "environment variable " + shown +
                                                  " is not UTF-8 text, which a system's environment must be: fix "
                                                  "or unset it (env -u " + shown + " zeppelin run ...)");
  }
  return env;
}

// Colour per service for prefixes, as `docker compose` does.
const char* colour(const std::string& service) {
  static const char* palette[] = {"\033[36m", "\033[33m", "\033[32m", "\033[35m", "\033[34m", "\033[91m", "\033[96m"};
  return palette[std::hash<std::string>{}(service) % 7];
}

// Colours on a terminal only, and not when NO_COLOR is set to anything (no-color.org).
bool colours_on(int fd) {
  const char* no_colour = std::getenv("NO_COLOR");
  return ::isatty(fd) == 1 && (!no_colour || !*no_colour);
}

class LinePrinter {
 public:
  LinePrinter() : tty_(colours_on(STDOUT_FILENO)) {}
  void print(const json& item) {
    if (!item.contains("line")) return;
    const std::string service = item.value("service", "");
    const std::string prefix = service + "/" + std::to_string(item.value("replica", 0));
    const bool event = item.value("stream", "") == "event";
    std::string out;
    if (tty_) out += colour(service);
    out += prefix;
    out.append(prefix.size() < 12 ? 12 - prefix.size() : 0, ' ');
    out += " | ";
    if (tty_) out += "\033[0m";
    if (event) out += tty_ ? "\033[2m[zeppelin] " : "[zeppelin] ";
    out += item.value("line", "");
    if (event && tty_) out += "\033[0m";
    out += '\n';
    std::lock_guard<std::mutex> lock(mu_);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }

 private:
  bool tty_;
  std::mutex mu_;
};

struct SpecChoice {
  std::optional<std::string> file;    // a spec file to apply
  std::optional<std::string> system;  // or a registered system to start
};

// `run [-f FILE] [SYSTEM]`: an explicit file, a path given as SYSTEM, else
// ./zeppelin.yaml (whose name must match SYSTEM), else a registered system.
// The spec file `file` (-f) means: itself, or a directory's zeppelin.yaml;
// ./zeppelin.yaml when none is given.
std::string spec_path(const std::string& file) {
  const std::string path = file.empty() ? "zeppelin.yaml" : file;
  std::error_code ec;
  if (fs::is_directory(path, ec)) return (fs::path(path) / "zeppelin.yaml").string();
  return path;
}

// The system a command acts on: as given, else the one the spec names
// (-f FILE|DIR, else ./zeppelin.yaml), as `run` finds it.
Result<std::string> system_named(const std::string& given, const std::string& file) {
  if (!given.empty()) return given;
  const std::string path = spec_path(file);
  std::error_code ec;
  if (file.empty() && !fs::exists(path, ec)) {
    return make_error(Errc::kInvalidArgument,
                      "no SYSTEM given and no zeppelin.yaml here: name the system, or point -f at its spec file or "
                      "directory (`zeppelin ls` lists the systems)");
  }
  auto parsed = spec::load_spec_file(path, spec::Limits::ceilings());  // only to learn its name
  if (!parsed) return parsed.error();
  return parsed->name;
}

Result<SpecChoice> choose_spec(const std::string& file, const std::string& system) {
  SpecChoice choice;
  if (!file.empty()) {
    choice.file = spec_path(file);
    return choice;
  }
  std::error_code ec;
  if (!system.empty() && (system.find('/') != std::string::npos || system.ends_with(".yaml") ||
                          system.ends_with(".yml") || system == "." || system == "..")) {
    if (fs::is_directory(system, ec)) choice.file = (fs::path(system) / "zeppelin.yaml").string();
    else choice.file = system;
    return choice;
  }
  if (fs::exists("zeppelin.yaml", ec)) {
    auto parsed = spec::load_spec_file("zeppelin.yaml", spec::Limits::ceilings());  // only to learn its name
    if (!parsed) return parsed.error();
    if (system.empty() || parsed->name == system) {
      choice.file = "zeppelin.yaml";
      return choice;
    }
  }
  if (system.empty()) return make_error(Errc::kInvalidArgument, "no zeppelin.yaml here; use -f FILE or name a system");
  choice.system = system;
  return choice;
}

int print_ready_report(const json& report) {
  if (report.value("ok", false)) return kOk;
  std::cerr << "zeppelin: " << report.value("message", "not ready") << "\n";
  const auto lines = report.value("last_lines", std::vector<std::string>{});
  if (!lines.empty()) {
    std::cerr << "last log lines of " << report.value("replica", "") << ":\n";
    for (const auto& l : lines) std::cerr << "  " << l << "\n";
  }
  return kFailure;
}

int cmd_validate(const std::string& given) {
  const std::string file = spec_path(given);
  auto system = spec::load_spec_file(file);
  if (!system) {
    std::cerr << system.error().message << "\n";
    return system.error().code == Errc::kNotFound ? kFailure : kUsage;
  }
  int replicas = 0;
  for (const auto& s : system->services) replicas += s.replicas;
  std::cout << file << ": valid (system " << system->name << ", " << system->services.size() << " service(s), " << replicas
            << " replica(s))\n";
  return kOk;
}

// Builds and pulls what the system's image services need, with progress on
// stderr (one line per service updated in place on a terminal).
Result<std::map<std::string, std::string>> prepare_images(const spec::System& system) {
  if (std::none_of(system.services.begin(), system.services.end(), [](const auto& s) { return s.is_container(); })) {
    return std::map<std::string, std::string>{};
  }
  boost::asio::io_context io;
  auto engine = runtime::container::Engine::connect(io, process_environment());
  if (!engine) return engine.error();
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  std::string shown;  // the line currently displayed in place, on a terminal
  auto progress = [&](const std::string&, const std::string& line, bool final) {
    if (tty) {
      std::cerr << "\r\033[K" << line.substr(0, 150) << (final ? "\n" : "") << std::flush;
      shown = final ? "" : line;
    } else if (final) {
      std::cerr << line << "\n";
    }
  };
  auto ids = runtime::container::prepare_images(**engine, io, system, progress);
  if (tty && !shown.empty()) std::cerr << "\r\033[K" << std::flush;
  return ids;
}

int cmd_build(const std::string& file) {
  auto choice = choose_spec("", file);
  if (!choice) return fail(choice.error());
  if (!choice->file) return fail(file + ": not a spec file or a directory with a zeppelin.yaml", kUsage);
  auto parsed = spec::load_spec_file(*choice->file);
  if (!parsed) {
    std::cerr << parsed.error().message << "\n";
    return parsed.error().code == Errc::kNotFound ? kFailure : kUsage;
  }
  if (auto ids = prepare_images(*parsed); !ids) return fail(ids.error().message, kFailure);
  return kOk;
}

int cmd_run(const std::string& file, const std::string& system, bool detach, const std::string& timeout_text) {
  auto timeout = parse_duration(timeout_text);
  if (!timeout) return fail("--timeout: " + timeout.error().message, kUsage);
  auto choice = choose_spec(file, system);
  if (!choice) return fail(choice.error());
  const std::string home = zeppelin_home();
  json request;
  std::string name;
  if (choice->file) {
    // Validated before anything starts; the server applies its own limits.
    auto parsed = spec::load_spec_file(*choice->file, spec::Limits::ceilings());
    if (!parsed) {
      std::cerr << parsed.error().message << "\n";
      return parsed.error().code == Errc::kNotFound ? kFailure : kUsage;
    }
    auto text = read_file(parsed->file);
    if (!text) return fail(text.error());
    auto env = caller_environment();
    if (!env) return fail(env.error().message, kUsage);
    // Images first: a build or pull that fails leaves nothing half-started.
    auto images = prepare_images(*parsed);
    if (!images) return fail(images.error().message, kFailure);
    name = parsed->name;
    request = {{"spec_file", parsed->file}, {"spec_text", *text}, {"env", *env}, {"images", *images}};
  } else {
    name = *choice->system;
  }
  auto client = connect_or_start(home);
  if (!client) return fail(client.error());

  if (detach) {
    auto applied = choice->file ? client->call("POST", "/v1/systems", request)
                                : client->call("POST", "/v1/systems/" + name + "/start");
    if (!applied) return fail(applied.error());
    if (!applied->ok()) return fail(*applied);
    auto waited = client->call("GET", "/v1/systems/" + name + "/wait?timeout=" + format_duration(*timeout));
    if (!waited) return fail(waited.error());
    if (!waited->ok()) return fail(*waited);
    const int rc = print_ready_report(waited->body);
    if (rc == kOk) std::cout << "system " << name << " is running\n";
    return rc;
  }

  // Foreground: follow the logs; Ctrl-C stops the system gracefully.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, home, name] {
    int sig = 0;
    sigwait(&set, &sig);
    std::cerr << "\nstopping " << name << " (Ctrl-C again to leave it stopping in the background)\n";
    std::signal(SIGINT, SIG_DFL);
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);
    client::Client c = server_client(home);
    auto r = c.call("POST", "/v1/systems/" + name + "/stop");
    std::fflush(stdout);
    if (!r || !r->ok()) {
      std::cerr << "zeppelin: stop failed: " << (r ? r->error_message() : r.error().message) << "\n";
      ::_exit(kFailure);
    }
    std::cerr << "stopped " << name << "\n";
    ::_exit(kOk);
  }).detach();

  LinePrinter printer;
  auto on_item = [&](const json& item) {
    printer.print(item);
    return true;
  };
  Result<client::Response> streamed =
      choice->file ? client->stream("POST", "/v1/systems?follow=true", request, on_item)
                   : client::Response{};
  if (!choice->file) {
    auto started = client->call("POST", "/v1/systems/" + name + "/start");
    if (!started) return fail(started.error());
    if (!started->ok()) return fail(*started);
    streamed = client->stream("GET", "/v1/systems/" + name + "/logs?follow=true&tail=0", nullptr, on_item);
  }
  if (!streamed) return fail(streamed.error());
  if (!streamed->ok()) return fail(*streamed);
  std::fflush(stdout);
  // The stream ends when the system is removed (`zeppelin down`) or the server stops.
  client::Client probe = server_client(home);
  if (!probe.reachable()) return fail("the zeppelin server went away");
  std::cerr << "system " << name << " was removed\n";
  return kOk;
}

// ps, ls and logs only look: with no server running they say so, print an
// empty listing where one is asked for, and exit 0, as `docker compose ps` does.
int no_server(const std::string& format) {
  std::cerr << "zeppelin: no server is running (`zeppelin run` or `zeppelin server -d` starts one)\n";
  print_structured(nlohmann::json::array(), format);
  return kOk;
}

int cmd_ps(const std::string& system, const std::string& format) {
  auto client = running_server(zeppelin_home());
  if (!client) return no_server(format);
  auto r = client->call("GET", "/v1/replicas" + (system.empty() ? "" : "?system=" + client::url_encode(system)));
  if (!r) return fail(r.error());
  if (!r->ok()) return fail(*r);
  if (print_structured(r->body, format)) return kOk;
  std::vector<std::vector<std::string>> rows;
  for (const auto& row : r->body) {
    const double up = row.value("uptime_seconds", 0.0);
    std::string uptime = up <= 0 ? "-" : up < 120 ? std::to_string(static_cast<int>(up)) + "s"
                                      : up < 7200 ? std::to_string(static_cast<int>(up / 60)) + "m"
                                                  : std::to_string(static_cast<int>(up / 3600)) + "h";
    std::string last = row.value("detail", "");
    if (last.empty()) last = row.value("last_exit", "");
    rows.push_back({row.value("system", ""), row.value("service", ""), std::to_string(row.value("replica", 0)),
                    row.value("state", ""), row.value("health", ""),
                    row.value("pid", 0) ? std::to_string(row.value("pid", 0)) : "-",
                    std::to_string(row.value("restarts", 0)), row.value("address", ""), uptime, last.empty() ? "-" : last});
  }
  print_table({"SYSTEM", "SERVICE", "REPLICA", "STATE", "HEALTH", "PID", "RESTARTS", "ADDRESS", "UPTIME", "LAST EXIT"}, rows);
  return kOk;
}

// `ls`: the systems the server knows, with how many of their replicas are ready.
int cmd_ls(const std::string& format) {
  auto client = running_server(zeppelin_home());
  if (!client) return no_server(format);
  auto r = client->call("GET", "/v1/systems");
  if (!r) return fail(r.error());
  if (!r->ok()) return fail(*r);
  if (print_structured(r->body, format)) return kOk;
  std::vector<std::vector<std::string>> rows;
  for (const auto& sys : r->body) {
    rows.push_back({sys.value("name", ""), sys.value("desired", ""),
                    std::to_string(sys.value("ready", 0)) + "/" + std::to_string(sys.value("replicas", 0)),
                    sys.value("spec_file", "")});
  }
  print_table({"NAME", "DESIRED", "READY", "SPEC FILE"}, rows);
  return kOk;
}

int cmd_logs(const std::string& target, bool follow, long tail) {
  std::string system = target;
  std::string query = "tail=" + std::to_string(tail) + (follow ? "&follow=true" : "");
  if (auto slash = target.find('/'); slash != std::string::npos) {
    system = target.substr(0, slash);
    std::string rest = target.substr(slash + 1);
    std::string service = rest;
    if (auto s2 = rest.find('/'); s2 != std::string::npos) {
      service = rest.substr(0, s2);
      const std::string replica = rest.substr(s2 + 1);
      if (replica.empty() || !std::all_of(replica.begin(), replica.end(), ::isdigit)) {
        return fail("replica in " + target + " must be a number", kUsage);
      }
      query += "&replica=" + replica;
    }
    query += "&service=" + client::url_encode(service);
  }
  if (!spec::is_dns_label(system)) return fail("invalid system name \"" + system + "\"", kUsage);
  auto client = running_server(zeppelin_home());
  if (!client) return no_server("table");
  LinePrinter printer;
  auto r = client->stream("GET", "/v1/systems/" + system + "/logs?" + query, nullptr, [&](const json& item) {
    printer.print(item);
    return true;
  });
  if (!r) return fail(r.error());
  if (!r->ok()) return fail(*r);
  return kOk;
}

int simple_call(const std::string& method, const std::string& target, const json& body, const std::string& done) {
  auto client = connect_or_start(zeppelin_home());
  if (!client) return fail(client.error());
  auto r = client->call(method, target, body);
  if (!r) return fail(r.error());
  if (!r->ok()) return fail(*r);
  if (!done.empty()) std::cout << done << "\n";
  return kOk;
}

int check_system_name(const std::string& system) {
  if (!spec::is_dns_label(system)) return fail("invalid system name \"" + system + "\"", kUsage);
  return kOk;
}

int cmd_scale(const std::string& system, const std::vector<std::string>& assignments) {
  if (check_system_name(system) != kOk) return kUsage;
  for (const auto& a : assignments) {
    const auto eq = a.find('=');
    int n = -1;
    try {
      if (eq != std::string::npos) n = std::stoi(a.substr(eq + 1));
    } catch (const std::exception&) {
      n = -1;
    }
    if (eq == std::string::npos || n < 0) return fail("expected SERVICE=N, got \"" + a + "\"", kUsage);
    const int rc = simple_call("POST", "/v1/systems/" + system + "/scale", {{"service", a.substr(0, eq)}, {"replicas", n}},
                               "scaled " + system + "/" + a.substr(0, eq) + " to " + std::to_string(n));
    if (rc != kOk) return rc;
  }
  return kOk;
}

int cmd_restart(const std::string& target) {
  const auto slash = target.find('/');
  const std::string sys = target.substr(0, slash);
  if (check_system_name(sys) != kOk) return kUsage;
  json body = json::object();
  if (slash != std::string::npos) body["service"] = target.substr(slash + 1);
  const int rc = simple_call("POST", "/v1/systems/" + sys + "/restart", body, "");
  if (rc != kOk) return rc;
  // Rolling: returns once every replica was replaced and is ready again.
  auto client = connect_or_start(zeppelin_home());
  if (!client) return fail(client.error());
  auto waited = client->call("GET", "/v1/systems/" + sys + "/wait?timeout=10m");
  if (!waited) return fail(waited.error());
  if (!waited->ok()) return fail(*waited);
  const int ready = print_ready_report(waited->body);
  if (ready == kOk) std::cout << "restarted " << target << "\n";
  return ready;
}

// -f,--file; `logs`, where -f is --follow as everywhere, takes --file alone.
void add_file_flag(CLI::App* command, std::string& file, const char* names = "-f,--file") {
  command->add_option(names, file, "the spec file or directory naming the system (default ./zeppelin.yaml)");
}

}  // namespace

void add_system_commands(CLI::App& app, Commands& commands) {
  struct Args {
    std::string file;
    std::string system;
    std::string target;
    std::string format = "table";
    std::string timeout = "60s";
    bool detach = false;
    bool follow = false;
    bool volumes = false;
    long tail = -1;
    std::vector<std::string> assignments;
    std::string kube_target;
    KubernetesArgs kube;
  };
  auto args = std::make_shared<Args>();
  Args& a = *args;
  auto kube_options = [&a](CLI::App* cmd) {
    cmd->add_option("--target", a.kube_target, "kubernetes: act on the system in a cluster");
    cmd->add_option("-n,--namespace", a.kube.ns, "with --target kubernetes: the namespace (default: the context's)");
    cmd->add_option("--context", a.kube.context, "with --target kubernetes: the kubeconfig context");
  };

  auto* validate = app.add_subcommand("validate", "Check a spec file and report every problem with FILE:LINE:COL");
  validate->add_option("file", a.file, "spec file or directory (default ./zeppelin.yaml)");
  add_examples(validate, {"zeppelin validate                    # ./zeppelin.yaml",
                          "zeppelin validate examples/shop      # a directory's zeppelin.yaml",
                          "zeppelin validate shop.yaml && zeppelin run -d -f shop.yaml"});
  commands.on(validate, [args] { return cmd_validate(args->file); });

  auto* build = app.add_subcommand("build", "Build the images of services with `build:` (and pull missing images)");
  build->add_option("file", a.file, "spec file or directory (default ./zeppelin.yaml)");
  add_examples(build, {"zeppelin build                       # the images of ./zeppelin.yaml",
                       "zeppelin build examples/containers"});
  commands.on(build, [args] { return cmd_build(args->file); });

  auto* run = app.add_subcommand("run", "Run a system: foreground with logs, or -d to detach once healthy");
  run->add_option("-f,--file", a.file, "spec file or directory (default ./zeppelin.yaml)");
  run->add_option("system", a.system, "system name, or a spec file or directory");
  run->add_flag("-d,--detach", a.detach, "return once every replica is running and healthy");
  run->add_option("--timeout", a.timeout, "with -d: how long to wait for readiness")->capture_default_str();
  add_examples(run, {"zeppelin run                         # ./zeppelin.yaml in the foreground; Ctrl-C stops it",
                     "zeppelin run -d -f examples/shop     # in the background, once every replica is ready",
                     "zeppelin run shop                    # start a stopped system again"});
  commands.on(run, [args] {
    const std::string& system = args->system;
    if (!system.empty() && system.find('/') == std::string::npos && !system.ends_with(".yaml") &&
        !system.ends_with(".yml") && system != "." && system != ".." && check_system_name(system) != kOk) {
      return kUsage;
    }
    return cmd_run(args->file, system, args->detach, args->timeout);
  });

  auto* ps = app.add_subcommand("ps", "List replicas");
  ps->add_option("system", a.system, "only this system");
  add_output_flag(ps, a.format);
  kube_options(ps);
  add_examples(ps, {"zeppelin ps                          # every replica of every system",
                    "zeppelin ps shop -o json",
                    "zeppelin ps --target kubernetes shop -n shop"});
  commands.on(ps, [args] {
    if (args->kube_target.empty()) return cmd_ps(args->system, args->format);
    if (check_kubernetes_target(args->kube_target) != kOk) return kUsage;
    if (args->system.empty()) return fail("ps --target kubernetes needs a SYSTEM", kUsage);
    if (args->format != "table") return fail("ps --target kubernetes prints a table only", kUsage);
    args->kube.subject = args->system;
    return cmd_kubernetes_ps(args->kube);
  });

  auto* ls = app.add_subcommand("ls", "List systems: desired state, ready replicas, spec file");
  add_output_flag(ls, a.format);
  add_examples(ls, {"zeppelin ls", "zeppelin ls -o yaml"});
  commands.on(ls, [args] { return cmd_ls(args->format); });

  auto* logs = app.add_subcommand("logs", "Show replica logs");
  logs->add_option("target", a.target, "SYSTEM[/SERVICE[/REPLICA]] (default: the system of ./zeppelin.yaml or -f)");
  add_file_flag(logs, a.file, "--file");
  logs->add_flag("-f,--follow", a.follow, "keep following, across restarts and scale-ups");
  logs->add_option("--tail", a.tail, "only the last N lines of each replica");
  kube_options(logs);
  add_examples(logs, {"zeppelin logs -f                      # the system of ./zeppelin.yaml, following",
                      "zeppelin logs shop/web --tail 20",
                      "zeppelin logs shop/db/0 -f"});
  commands.on(logs, [args] {
    auto target = system_named(args->target, args->file);
    if (!target) return fail(target.error());
    if (args->kube_target.empty()) return cmd_logs(*target, args->follow, args->tail);
    if (check_kubernetes_target(args->kube_target) != kOk) return kUsage;
    args->kube.subject = *target;
    args->kube.follow = args->follow;
    args->kube.tail = args->tail;
    return cmd_kubernetes_logs(args->kube);
  });

  auto* stop = app.add_subcommand("stop", "Stop a system; returns when every process has exited");
  stop->add_option("system", a.system, "default: the system of ./zeppelin.yaml or -f");
  add_file_flag(stop, a.file);
  kube_options(stop);
  stop->add_flag("--volumes", a.volumes, "with --target kubernetes: also delete the volume claims");
  stop->add_option("--timeout", a.kube.timeout, "with --target kubernetes: how long to wait for the pods to go");
  add_examples(stop, {"zeppelin stop                        # the system of ./zeppelin.yaml",
                      "zeppelin stop shop",
                      "zeppelin stop --target kubernetes shop -n shop"});
  commands.on(stop, [args] {
    auto system = system_named(args->system, args->file);
    if (!system) return fail(system.error());
    args->system = *system;
    if (!args->kube_target.empty()) {
      if (check_kubernetes_target(args->kube_target) != kOk) return kUsage;
      args->kube.subject = args->system;
      args->kube.volumes = args->volumes;
      return cmd_kubernetes_stop(args->kube);
    }
    if (check_system_name(args->system) != kOk) return kUsage;
    return simple_call("POST", "/v1/systems/" + args->system + "/stop", nullptr, "stopped " + args->system);
  });

  auto* down = app.add_subcommand("down", "Stop and remove a system");
  down->add_option("system", a.system, "default: the system of ./zeppelin.yaml or -f");
  add_file_flag(down, a.file);
  down->add_flag("--volumes", a.volumes, "also delete its volumes");
  add_examples(down, {"zeppelin down                        # the system of ./zeppelin.yaml",
                      "zeppelin down shop --volumes          # and delete its volumes"});
  commands.on(down, [args] {
    auto system = system_named(args->system, args->file);
    if (!system) return fail(system.error());
    if (check_system_name(*system) != kOk) return kUsage;
    auto client = connect_or_start(zeppelin_home());
    if (!client) return fail(client.error());
    auto r = client->call("DELETE", "/v1/systems/" + *system + (args->volumes ? "?volumes=true" : ""));
    if (!r) return fail(r.error());
    // As `docker compose down` of nothing: the end state is what was asked.
    if (r->status == 404) {
      std::cout << "no system " << *system << " (nothing to remove)\n";
      return kOk;
    }
    if (!r->ok()) return fail(*r);
    std::cout << "removed " << *system << "\n";
    return kOk;
  });

  auto* scale = app.add_subcommand("scale", "Change the number of replicas of services");
  scale->add_option("system", a.system, "default: the system of ./zeppelin.yaml or -f");
  scale->add_option("assignments", a.assignments, "SERVICE=N");
  add_file_flag(scale, a.file);
  add_examples(scale, {"zeppelin scale web=3                 # a service of ./zeppelin.yaml's system",
                       "zeppelin scale shop web=3 worker=0"});
  commands.on(scale, [args] {
    // `scale web=3`: no SYSTEM, the first word is an assignment.
    if (args->system.find('=') != std::string::npos) {
      args->assignments.insert(args->assignments.begin(), args->system);
      args->system.clear();
    }
    if (args->assignments.empty()) return fail("scale needs SERVICE=N, e.g. `zeppelin scale shop web=3`", kUsage);
    auto system = system_named(args->system, args->file);
    if (!system) return fail(system.error());
    return cmd_scale(*system, args->assignments);
  });

  auto* restart = app.add_subcommand("restart", "Rolling restart, one replica at a time");
  restart->add_option("target", a.target, "SYSTEM[/SERVICE] (default: the system of ./zeppelin.yaml or -f)");
  add_file_flag(restart, a.file);
  add_examples(restart, {"zeppelin restart                     # every service of ./zeppelin.yaml's system",
                         "zeppelin restart shop/web"});
  commands.on(restart, [args] {
    auto target = system_named(args->target, args->file);
    if (!target) return fail(target.error());
    return cmd_restart(*target);
  });
}

}  // namespace zeppelin::cli
