#include "common/listener.h"

#include <algorithm>
#include <cerrno>

namespace zeppelin {

AcceptError classify_accept_error(int error) {
  switch (error) {
    case EINTR:
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case ECONNABORTED:
    case EPROTO:
    case EPERM:  // a firewall rule refused that one connection
    // accept(2): Linux passes a pending connection's network errors on from
    // accept(), to be treated as EAGAIN.
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ETIMEDOUT:
      return AcceptError::kRetry;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
      return AcceptError::kBackOff;
    default:
      return AcceptError::kFatal;
  }
}

std::chrono::milliseconds accept_backoff(int attempt) {
  std::chrono::milliseconds delay(10);
  for (int i = 1; i < attempt && delay < std::chrono::seconds(1); ++i) delay *= 2;
  return std::min<std::chrono::milliseconds>(delay, std::chrono::seconds(1));
}

bool LogThrottle::allow(uint64_t& held_back) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  if (logged_ && now - last_ < interval_) {
    ++held_back_;
    return false;
  }
  logged_ = true;
  last_ = now;
  held_back = held_back_;
  held_back_ = 0;
  return true;
}

}  // namespace zeppelin
