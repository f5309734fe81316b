#include "runtime/memory/memory_driver.h"

#include <boost/asio/post.hpp>
#include <csignal>

namespace zeppelin::runtime {

class MemoryDriver::MemoryInstance final : public Instance {
 public:
  MemoryInstance(MemoryDriver& driver, std::shared_ptr<Run> run, std::weak_ptr<bool> lifetime)
      : driver_(driver), run_(std::move(run)), lifetime_(std::move(lifetime)) {}

  int pid() const override { return run_->pid; }
  std::string describe() const override { return "pid " + std::to_string(run_->pid); }
  std::string container_name() const override { return run_->launch.container ? "memory-" + std::to_string(run_->pid) : ""; }

  void terminate() override {
    if (lifetime_.expired()) return;
    driver_.history_.push_back("terminate " + run_->launch.id);
    if (driver_.exit_on_terminate) driver_.end(run_, ExitStatus{128 + SIGTERM, SIGTERM, false}, nullptr);
  }

  void kill() override {
    if (lifetime_.expired()) return;
    driver_.history_.push_back("kill " + run_->launch.id);
    driver_.end(run_, ExitStatus{128 + SIGKILL, SIGKILL, false}, nullptr);
  }

  void exec_probe(const std::vector<std::string>&, std::chrono::milliseconds,
                  std::function<void(bool ok)> done) override {
    if (lifetime_.expired()) return;
    driver_.history_.push_back("probe " + run_->launch.id);
    auto it = driver_.probes_.find(run_->launch.id);
    const bool pass = it == driver_.probes_.end() || it->second;
    boost::asio::post(driver_.io_, [life = lifetime_, done = std::move(done), pass] {
      if (!life.expired()) done(pass);
    });
  }

 private:
  MemoryDriver& driver_;
  std::shared_ptr<Run> run_;
  std::weak_ptr<bool> lifetime_;
};

MemoryDriver::~MemoryDriver() = default;

Status MemoryDriver::supports(const spec::Service&) { return ok_status(); }

Result<std::unique_ptr<Instance>> MemoryDriver::start(const LaunchSpec& launch, InstanceEvents events) {
  if (auto it = refusals_.find(launch.id); it != refusals_.end()) {
    history_.push_back("refuse " + launch.id);
    return make_error(Errc::kInvalidArgument, it->second);
  }
  auto run = std::make_shared<Run>();
  run->launch = launch;
  run->events = std::move(events);
  run->pid = next_pid_++;
  current_[launch.id] = run;
  ++starts_[launch.id];
  history_.push_back("start " + launch.id);
  if (launch.container && run->events.on_running) {
    boost::asio::post(io_, [life = std::weak_ptr<bool>(lifetime_), run] {
      if (!life.expired() && run->alive) run->events.on_running();
    });
  }
  return std::unique_ptr<Instance>(std::make_unique<MemoryInstance>(*this, run, lifetime_));
}

int MemoryDriver::reap_leftovers(const std::function<bool(const std::string& id)>& wanted) {
  int ended = 0;
  for (const auto& id : leftovers) {
    if (!wanted(id)) ++ended;
  }
  leftovers.clear();
  return ended;
}

void MemoryDriver::refuse_starts(const std::string& id, const std::string& why) {
  if (why.empty()) {
    refusals_.erase(id);
  } else {
    refusals_[id] = why;
  }
}

void MemoryDriver::exit(const std::string& id, const ExitStatus& status) {
  auto it = current_.find(id);
  if (it == current_.end() || !it->second->alive) return;
  end(it->second, status, "exit ");
}

void MemoryDriver::end(const std::shared_ptr<Run>& run, const ExitStatus& status, const char* what) {
  if (!run->alive) return;
  run->alive = false;
  if (what) history_.push_back(what + run->launch.id);
  boost::asio::post(io_, [life = std::weak_ptr<bool>(lifetime_), run, status] {
    if (!life.expired() && run->events.on_exit) run->events.on_exit(status);
  });
}

void MemoryDriver::output(const std::string& id, const std::string& text, bool is_stderr) {
  auto it = current_.find(id);
  if (it == current_.end() || !it->second->alive) return;
  boost::asio::post(io_, [life = std::weak_ptr<bool>(lifetime_), run = it->second, text, is_stderr] {
    if (!life.expired() && run->events.on_output) run->events.on_output(text, is_stderr);
  });
}

void MemoryDriver::set_probe(const std::string& id, bool pass) { probes_[id] = pass; }

bool MemoryDriver::running(const std::string& id) const {
  auto it = current_.find(id);
  return it != current_.end() && it->second->alive;
}

int MemoryDriver::starts(const std::string& id) const {
  auto it = starts_.find(id);
  return it == starts_.end() ? 0 : it->second;
}

const LaunchSpec* MemoryDriver::launch(const std::string& id) const {
  auto it = current_.find(id);
  return it == current_.end() ? nullptr : &it->second->launch;
}

}  // namespace zeppelin::runtime
