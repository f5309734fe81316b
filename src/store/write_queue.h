// WriteQueue: the embedded store's writer thread and the queue that feeds it.
//
// Each time the thread wakes it takes everything queued and hands the whole
// group to the store's commit function, which applies the writes in order and
// makes them durable together (group commit: one fsync for all of them); then
// it answers each write, waking a blocked caller or running an asynchronous
// caller's continuation on this thread.
//
// Threading: submit() and submit_async() may be called from any thread;
// queue_mu_ guards the queue and the stopping flag. The commit function and
// every continuation run on the writer thread, one group at a time.
#pragma once

#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "store/mvcc_index.h"

namespace zeppelin::store::embedded {

// One write request waiting for the writer thread.
struct PendingWrite {
  std::function<Status(Batch&)> apply;      // run on the writer thread with the index locked
  Status status;                            // set by the commit function
  std::promise<void> done;                  // a blocking caller waits on it
  std::function<void(const Status&)> then;  // or an asynchronous caller is called back
};

class WriteQueue {
 public:
  // Given one drained group, in queue order, sets each write's status.
  using CommitGroup = std::function<void(const std::vector<PendingWrite*>&)>;

  // `name` names the store in the error a write gets once the queue stops.
  explicit WriteQueue(std::string name) : name_(std::move(name)) {}
  // Stops (see stop()) if still running.
  ~WriteQueue() { stop(); }
  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;

  // Starts the writer thread; `commit_group` is called for every group drained.
  void start(CommitGroup commit_group);
  // Refuses new writes, commits those already queued, and joins the thread.
  void stop();

  // Queues a write for the next group commit and waits for its answer.
  Status submit(std::function<Status(Batch&)> apply);
  // Queues a write for the next group commit; `then` runs on the writer
  // thread once the write is durable or has failed (at once, on the calling
  // thread, when the queue has stopped).
  void submit_async(std::function<Status(Batch&)> apply, std::function<void(const Status&)> then);

 private:
  void run();
  Error closing() const;

  const std::string name_;
  CommitGroup commit_group_;  // set before the thread starts
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<PendingWrite*> queue_;  // guarded by queue_mu_
  bool stopping_ = false;             // guarded by queue_mu_
  std::thread writer_;
};

}  // namespace zeppelin::store::embedded
