// The "trivial replica" of the side-by-side supervisor benchmark
// (bench/supervisors.py): announces itself with one UDP datagram
// "<replica-id> <pid>" to 127.0.0.1:$BENCH_PORT, then sleeps in pause() until
// a signal ends it (SIGTERM/SIGINT keep their default action).
//
// The replica id is the first of: $BENCH_ID; $ZEPPELIN_SERVICE/$ZEPPELIN_REPLICA;
// $NODE_APP_INSTANCE (set per instance by PM2); argv[1]; "?".
// Deliberately tiny: no iostreams, no heap, so start-up cost is just exec.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

bool set(const char* v) { return v != nullptr && v[0] != '\0'; }

}  // namespace

int main(int argc, char** argv) {
  char id[256];
  const char* bench_id = std::getenv("BENCH_ID");
  const char* service = std::getenv("ZEPPELIN_SERVICE");
  const char* replica = std::getenv("ZEPPELIN_REPLICA");
  const char* instance = std::getenv("NODE_APP_INSTANCE");
  if (set(bench_id)) {
    std::snprintf(id, sizeof id, "%s", bench_id);
  } else if (set(service) || set(replica)) {
    std::snprintf(id, sizeof id, "%s/%s", set(service) ? service : "?", set(replica) ? replica : "?");
  } else if (set(instance)) {
    std::snprintf(id, sizeof id, "%s", instance);
  } else if (argc > 1 && set(argv[1])) {
    std::snprintf(id, sizeof id, "%s", argv[1]);
  } else {
    std::snprintf(id, sizeof id, "?");
  }

  const char* port_text = std::getenv("BENCH_PORT");
  const long port = set(port_text) ? std::strtol(port_text, nullptr, 10) : 0;
  if (port > 0 && port < 65536) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(static_cast<unsigned short>(port));
      to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      char msg[300];
      const int n = std::snprintf(msg, sizeof msg, "%s %ld", id, static_cast<long>(::getpid()));
      if (n > 0) {
        ::sendto(fd, msg, static_cast<std::size_t>(n) < sizeof msg ? static_cast<std::size_t>(n) : sizeof msg - 1, 0,
                 reinterpret_cast<const sockaddr*>(&to), sizeof to);
      }
      ::close(fd);
    }
  }

  for (;;) ::pause();
}
