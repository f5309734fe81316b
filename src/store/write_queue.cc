#include "store/write_queue.h"

#include <memory>
#include <utility>

namespace zeppelin::store::embedded {

void WriteQueue::start(CommitGroup commit_group) {
  commit_group_ = std::move(commit_group);
  writer_ = std::thread([this] { run(); });
}

void WriteQueue::stop() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

Error WriteQueue::closing() const { return make_error(Errc::kUnavailable, "store " + name_ + " is closing"); }

void WriteQueue::submit_async(std::function<Status(Batch&)> apply, std::function<void(const Status&)> then) {
  auto write = std::make_unique<PendingWrite>();
  write->apply = std::move(apply);
  write->then = std::move(then);
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (!stopping_) {
      queue_.push_back(write.release());
      queue_cv_.notify_one();
      return;
    }
  }
  write->then(closing());
}

Status WriteQueue::submit(std::function<Status(Batch&)> apply) {
  PendingWrite write{std::move(apply), {}, {}, {}};
  auto done = write.done.get_future();
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (stopping_) return closing();
    queue_.push_back(&write);
  }
  queue_cv_.notify_one();
  done.wait();
  return write.status;
}

void WriteQueue::run() {
  std::vector<PendingWrite*> writes;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;
      writes.swap(queue_);
    }
    commit_group_(writes);
    for (auto* w : writes) {
      if (w->then) {
        w->then(w->status);
        delete w;  // queued by submit_async, owned by the queue since
      } else {
        w->done.set_value();
      }
    }
    writes.clear();
  }
}

}  // namespace zeppelin::store::embedded
