// What every listener of the server does when accept() fails, so that none of
// them ends on an error it could have survived, and none spins or floods the
// log on one that lasts.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace zeppelin {

enum class AcceptError {
  // Interrupted by a signal (EINTR), or a connection that failed before it
  // was taken (ECONNABORTED, EPROTO and the network errors Linux passes on
  // from a pending connection): accept the next one at once.
  kRetry,
  // Out of descriptors, buffers or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM):
  // wait a little (accept_backoff()), then accept again.
  kBackOff,
  // The listening socket itself is unusable (EBADF, EINVAL, ENOTSOCK...):
  // the listener cannot go on, and must say so loudly.
  kFatal,
};

// `error` is accept()'s errno.
AcceptError classify_accept_error(int error);

// How long to wait after the `attempt`-th back-off in a row (from 1): 10 ms,
// doubling up to 1 s.
std::chrono::milliseconds accept_backoff(int attempt);

// Lets through one log line per interval and counts the others. Thread-safe.
class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::steady_clock::duration interval = std::chrono::seconds(10)) : interval_(interval) {}

  // True when a line may be logged now; `held_back` is then the number of
  // lines refused since the last one that was let through.
  bool allow(uint64_t& held_back);

 private:
  const std::chrono::steady_clock::duration interval_;
  std::mutex mu_;
  bool logged_ = false;                         // guarded by mu_
  std::chrono::steady_clock::time_point last_;  // guarded by mu_
  uint64_t held_back_ = 0;                      // guarded by mu_
};

}  // namespace zeppelin
