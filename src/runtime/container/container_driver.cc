#include "runtime/container/container_driver.h"

#include "runtime/container/images.h"

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <ctime>
#include <utility>

namespace zeppelin::runtime::container {

namespace asio = boost::asio;
using nlohmann::json;

// Containers being removed, by name: a new container of the same name is
// created only once the old one is gone.
struct Removals {
  std::map<std::string, std::vector<std::function<void()>>> waiting;
};

namespace {

// FNV-1a: a stable hash (unlike std::hash) so that labels written by one
// server version compare equal in the next.
std::string stable_hash(std::string_view text) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

// "system/service/0" -> "system-service-0", a valid container name.
std::string container_name(const ContainerLaunch& c) {
  return c.system + "-" + c.service + "-" + std::to_string(c.ordinal);
}

// Exit codes for containers that never ran, as `docker run` uses them.
int start_failure_code(const std::string& message) {
  if (message.find("not found") != std::string::npos || message.find("no such file") != std::string::npos) return 127;
  if (message.find("permission denied") != std::string::npos) return 126;
  return 125;
}

// One container replica, from creation to removal. Every engine call holds a
// shared_ptr to it, so it lives until the last answer is in.
class ContainerReplica : public std::enable_shared_from_this<ContainerReplica> {
 public:
  ContainerReplica(asio::io_context& io, std::shared_ptr<Engine> engine, std::shared_ptr<Removals> removals,
                   InstanceEvents events, std::string name, std::string image, std::string home, json create_body)
      : engine_(std::move(engine)),
        removals_(std::move(removals)),
        events_(std::move(events)),
        name_(std::move(name)),
        image_(std::move(image)),
        home_(std::move(home)),
        create_body_(std::move(create_body)),
        demux_([this](std::string_view data, bool is_stderr) {
          if (events_.on_output) events_.on_output(data, is_stderr);
        }),
        drain_timer_(io),
        probe_io_(io) {}

  int pid() const { return pid_; }
  const std::string& name() const { return name_; }
  bool adopted() const { return adopted_; }

  void create(bool pulled) {
    if (auto it = removals_->waiting.find(name_); it != removals_->waiting.end()) {
      it->second.push_back([self = shared_from_this(), pulled] { self->create(pulled); });
      return;
    }
    engine_->request("POST", "/containers/create?name=" + query_escape(name_), create_body_.dump(),
                     [self = shared_from_this(), pulled](const Result<EngineResponse>& r) {
                       if (!r) return self->fail(r.error().message, 125);
                       if (r->status == 404 && !pulled) return self->pull();
                       if (r->status == 409) return self->resolve_name_conflict(pulled);
                       if (!r->ok()) return self->fail("cannot create container " + self->name_ + ": " + r->message(), 125);
                       self->id_ = r->json().value("Id", "");
                       self->start_container();
                     });
  }

  // Takes over a running container left by a previous server.
  void adopt(const std::string& container_id) {
    id_ = container_id;
    adopted_ = true;
    running_ = true;
    follow_output("&since=" + std::to_string(std::time(nullptr)));  // what it printed before is in the old log
    inspect_pid();
    wait();
  }

  void signal(const char* sig) {
    if (exited_) return;
    stop_requested_ = true;
    if (!running_) {  // not started yet: remembered, acted on once it exists
      if (!stop_signal_ || std::string_view(sig) == "SIGKILL") stop_signal_ = sig;
      return;
    }
    engine_->request("POST", "/containers/" + id_ + "/kill?signal=" + sig, "", [](const Result<EngineResponse>&) {});
  }

  void exec_probe(const std::vector<std::string>& argv, std::chrono::milliseconds timeout, std::function<void(bool)> done);

 private:
  void pull() {
    pull_image(*engine_, image_, nullptr, [self = shared_from_this()](const Status& pulled) {
      if (pulled) return self->create(true);
      self->fail(pulled.error().message, 125);
    });
  }

  // A container of the same name exists: ours (left by a crash) is replaced,
  // anyone else's is an error.
  void resolve_name_conflict(bool pulled) {
    engine_->request("GET", "/containers/" + query_escape(name_) + "/json", "",
                     [self = shared_from_this(), pulled](const Result<EngineResponse>& r) {
                       const json info = r ? r->json() : json();
                       const json labels = info.is_object() ? info["Config"]["Labels"] : json();
                       if (!labels.is_object() || labels.value(kLabelHome, "") != self->home_) {
                         return self->fail("the container name " + self->name_ +
                                               " is taken by a container that this zeppelin server did not create",
                                           125);
                       }
                       self->engine_->request("DELETE", "/containers/" + query_escape(self->name_) + "?force=1&v=1", "",
                                              [self, pulled](const Result<EngineResponse>&) { self->create(pulled); });
                     });
  }

  void start_container() {
    if (stop_signal_) return remove_and_report(stopped_before_start());
    engine_->request("POST", "/containers/" + id_ + "/start", "", [self = shared_from_this()](const Result<EngineResponse>& r) {
      if (!r) return self->fail(r.error().message, 125);
      if (!r->ok()) {
        const std::string message = r->message();
        return self->fail("cannot start container " + self->name_ + ": " + message, start_failure_code(message));
      }
      self->running_ = true;
      if (self->events_.on_running) self->events_.on_running();
      if (self->stop_signal_) self->signal(self->stop_signal_);
      self->follow_output("");
      self->inspect_pid();
      self->wait();
    });
  }

  // The engine keeps what a container prints from its first byte, so following
  // its log once it has started loses nothing (and works alike on Docker and
  // Podman, unlike attaching to a created container).
  void follow_output(const std::string& since) {
    output_ = engine_->stream("GET", "/containers/" + id_ + "/logs?follow=1&stdout=1&stderr=1" + since, "",
                              [self = shared_from_this()](std::string_view d) { self->demux_.feed(d); },
                              [self = shared_from_this()](const Result<EngineResponse>&) { self->output_ended(); });
  }

  void inspect_pid() {
    engine_->request("GET", "/containers/" + id_ + "/json", "", [self = shared_from_this()](const Result<EngineResponse>& r) {
      if (r && r->ok()) self->pid_ = r->json()["State"].value("Pid", 0);
    });
  }

  void wait() {
    engine_->request("POST", "/containers/" + id_ + "/wait", "", [self = shared_from_this()](const Result<EngineResponse>& r) {
      if (!r || !r->ok()) {
        ExitStatus lost;
        lost.code = 255;
        self->note("lost track of container " + self->name_ + ": " + (r ? r->message() : r.error().message));
        return self->remove_and_report(lost);
      }
      // wait's StatusCode lacks the OOM flag: inspect before removing.
      self->engine_->request("GET", "/containers/" + self->id_ + "/json", "", [self](const Result<EngineResponse>& r) {
        ExitStatus status;
        const json state = r && r->ok() ? r->json()["State"] : json();
        if (state.is_object()) {
          status.code = state.value("ExitCode", 0);
          status.oom_killed = state.value("OOMKilled", false);
          if (status.code > 128 && status.code < 128 + 65) status.signal = status.code - 128;
        }
        self->remove_and_report(status);
      });
    });
  }

  ExitStatus stopped_before_start() const {
    ExitStatus status;
    status.signal = std::string_view(stop_signal_) == "SIGKILL" ? 9 : 15;
    status.code = 128 + status.signal;
    return status;
  }

  void fail(const std::string& message, int code) {
    note(message);
    ExitStatus status;
    status.code = code;
    if (output_) output_->cancel();
    output_done_ = true;
    remove_and_report(status);
  }

  void note(const std::string& message) {
    if (events_.on_output) events_.on_output("zeppelin: " + message + "\n", true);
  }

  void remove_and_report(ExitStatus status) {
    if (exited_) return;
    exited_ = true;
    running_ = false;
    exit_ = status;
    if (!output_) output_done_ = true;
    if (output_done_) return remove();
    // The log stream normally ends with the container; don't wait forever.
    drain_timer_.expires_after(std::chrono::seconds(2));
    drain_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->output_->cancel();
    });
  }

  void output_ended() {
    if (output_done_) return;
    output_done_ = true;
    drain_timer_.cancel();
    if (exited_) remove();
  }

  // Removes the container once all its output is in. A stop is over when the
  // container is gone; a crash is reported at once (restarts are quicker)
  // while the removal goes on.
  void remove() {
    if (id_.empty()) {
      removed_ = true;
      return maybe_report();
    }
    removals_->waiting[name_];
    engine_->request("DELETE", "/containers/" + id_ + "?force=1&v=1", "", [self = shared_from_this()](const Result<EngineResponse>&) {
      auto waiting = std::move(self->removals_->waiting[self->name_]);
      self->removals_->waiting.erase(self->name_);
      for (auto& next : waiting) next();
      self->removed_ = true;
      self->maybe_report();
    });
    maybe_report();
  }

  void maybe_report() {
    if (reported_ || !exited_ || !output_done_ || (stop_requested_ && !removed_)) return;
    reported_ = true;
    if (events_.on_exit) events_.on_exit(exit_);
  }

  std::shared_ptr<Engine> engine_;
  std::shared_ptr<Removals> removals_;
  InstanceEvents events_;
  std::string name_;
  std::string image_;
  std::string home_;
  json create_body_;
  std::string id_;
  int pid_ = 0;
  bool running_ = false;   // started (or adopted) and not yet seen to exit
  bool adopted_ = false;
  bool exited_ = false;
  bool removed_ = false;
  bool stop_requested_ = false;  // terminate() or kill() was called
  bool output_done_ = false;
  bool reported_ = false;
  const char* stop_signal_ = nullptr;  // a stop asked for before the container ran
  ExitStatus exit_;
  std::shared_ptr<Engine::Stream> output_;
  StreamDemuxer demux_;
  asio::steady_timer drain_timer_;
  asio::io_context& probe_io_;
};

void ContainerReplica::exec_probe(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                                  std::function<void(bool)> done) {
  if (!running_ || exited_) return done(false);
  // One answer only, whichever comes first: the result or the timeout.
  struct Probe {
    std::function<void(bool)> done;
    asio::steady_timer timer;
    std::shared_ptr<Engine::Stream> stream;
    void finish(bool ok) {
      if (!done) return;
      timer.cancel();
      std::exchange(done, nullptr)(ok);
    }
  };
  auto probe = std::make_shared<Probe>(Probe{std::move(done), asio::steady_timer(probe_io_, timeout), nullptr});
  probe->timer.async_wait([probe](const boost::system::error_code& ec) {
    if (ec) return;
    if (probe->stream) probe->stream->cancel();
    probe->finish(false);
  });
  const json body = {{"Cmd", argv}, {"AttachStdout", true}, {"AttachStderr", true}};
  engine_->request("POST", "/containers/" + id_ + "/exec", body.dump(), [self = shared_from_this(), probe](const Result<EngineResponse>& r) {
    if (!r || !r->ok() || !probe->done) return probe->finish(false);
    const std::string exec_id = r->json().value("Id", "");
    // Not detached: the answer streams until the command ends.
    probe->stream = self->engine_->stream(
        "POST", "/exec/" + exec_id + "/start", json{{"Detach", false}, {"Tty", false}}.dump(), [](std::string_view) {},
        [self, probe, exec_id](const Result<EngineResponse>& r) {
          if (!r || !r->ok() || !probe->done) return probe->finish(false);
          self->engine_->request("GET", "/exec/" + exec_id + "/json", "", [probe](const Result<EngineResponse>& r) {
            const json info = r && r->ok() ? r->json() : json();
            probe->finish(info.is_object() && !info.value("Running", true) && info.value("ExitCode", -1) == 0);
          });
        });
  });
}

class ContainerInstance final : public Instance {
 public:
  explicit ContainerInstance(std::shared_ptr<ContainerReplica> replica) : replica_(std::move(replica)) {}
  int pid() const override { return replica_->pid(); }
  std::string describe() const override {
    return "container " + replica_->name() + (replica_->adopted() ? " (adopted from the previous server)" : "");
  }
  std::string container_name() const override { return replica_->name(); }
  void terminate() override { replica_->signal("SIGTERM"); }
  void kill() override { replica_->signal("SIGKILL"); }
  void exec_probe(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                  std::function<void(bool ok)> done) override {
    replica_->exec_probe(argv, timeout, std::move(done));
  }

 private:
  std::shared_ptr<ContainerReplica> replica_;
};

}  // namespace

ContainerDriver::ContainerDriver(asio::io_context& io, std::shared_ptr<Engine> engine, std::string home)
    : io_(io), engine_(std::move(engine)), home_(std::move(home)), removals_(std::make_shared<Removals>()) {}

Status ContainerDriver::supports(const spec::Service& service) {
  if (!service.is_container()) {
    return make_error(Errc::kInvalidArgument, "service \"" + service.name + "\" runs a process, not an image");
  }
  return ok_status();
}

json ContainerDriver::create_request(const LaunchSpec& launch) const {
  const ContainerLaunch& c = *launch.container;
  json body = {
      {"Image", c.image},
      {"Env", launch.env},
      {"AttachStdout", true},
      {"AttachStderr", true},
      {"Tty", false},
      {"OpenStdin", false},
      {"Labels",
       {{kLabelHome, home_},
        {kLabelId, launch.id},
        {kLabelSystem, c.system},
        {kLabelService, c.service},
        {kLabelReplica, std::to_string(c.ordinal)}}},
  };
  if (!launch.argv.empty()) body["Cmd"] = launch.argv;
  if (c.entrypoint) body["Entrypoint"] = *c.entrypoint;
  if (!launch.workdir.empty()) body["WorkingDir"] = launch.workdir;
  // Init: a small init as PID 1 forwards SIGTERM and reaps zombies, so that
  // stop behaves as for a process (PID 1 otherwise ignores SIGTERM unless it
  // handles it). Restarts are ours, not the engine's.
  json host = {{"NetworkMode", "host"}, {"Init", true}, {"RestartPolicy", {{"Name", "no"}}}, {"Mounts", json::array()}};
  for (const auto& m : c.mounts) {
    host["Mounts"].push_back({{"Type", "bind"}, {"Source", m.host_dir}, {"Target", m.path}, {"ReadOnly", m.read_only}});
  }
  if (launch.resources.memory_bytes) host["Memory"] = *launch.resources.memory_bytes;
  if (launch.resources.cpu_millis) host["NanoCpus"] = *launch.resources.cpu_millis * 1000000;
  body["HostConfig"] = host;
  // The configuration's hash tells a restarted server whether a running
  // container can be adopted as it is.
  body["Labels"][kLabelConfig] = stable_hash(body.dump());
  return body;
}

Result<std::unique_ptr<Instance>> ContainerDriver::start(const LaunchSpec& launch, InstanceEvents events) {
  if (!launch.container) return make_error(Errc::kInvalidArgument, launch.id + " is not a container");
  json body = create_request(launch);
  const std::string config = body["Labels"][kLabelConfig];
  auto replica = std::make_shared<ContainerReplica>(io_, engine_, removals_, std::move(events), container_name(*launch.container),
                                                    launch.container->image, home_, std::move(body));
  auto leftover = adoptable_.find(launch.id);
  if (leftover != adoptable_.end()) {
    const Leftover found = leftover->second;
    adoptable_.erase(leftover);
    if (found.config == config) {
      replica->adopt(found.container_id);
      return std::unique_ptr<Instance>(std::make_unique<ContainerInstance>(replica));
    }
    // Changed while the server was down: the create below replaces it (same name).
  }
  replica->create(false);
  return std::unique_ptr<Instance>(std::make_unique<ContainerInstance>(replica));
}

int ContainerDriver::reap_leftovers(const std::function<bool(const std::string&)>& wanted) {
  const json filters = {{"label", {std::string(kLabelHome) + "=" + home_}}};
  auto listed = engine_->call("GET", "/containers/json?all=1&filters=" + query_escape(filters.dump()));
  if (!listed || !listed->ok()) return 0;
  int ended = 0;
  for (const auto& c : listed->json()) {
    const json labels = c.value("Labels", json::object());
    const std::string id = labels.value(kLabelId, "");
    const std::string container_id = c.value("Id", "");
    if (c.value("State", "") == "running" && wanted(id)) {
      adoptable_[id] = Leftover{container_id, labels.value(kLabelConfig, "")};
      continue;
    }
    (void)engine_->call("DELETE", "/containers/" + container_id + "?force=1&v=1");
    ++ended;
  }
  return ended;
}

}  // namespace zeppelin::runtime::container
