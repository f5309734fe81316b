#include "store/store.h"

#include <cstring>

namespace zeppelin::store {

bool is_error(const Error& e, const char* message) {
  const std::size_t n = std::strlen(message);
  return e.message.compare(0, n, message) == 0 && (e.message.size() == n || e.message[n] == ' ');
}

std::string prefix_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every byte is 0xff: no upper bound
}

}  // namespace zeppelin::store
