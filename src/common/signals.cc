#include "common/signals.h"

#include <pthread.h>

#include <csignal>

namespace zeppelin {

void block_loop_signals(bool blocked) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

}  // namespace zeppelin
