#include "runtime/driver.h"

#include <cstring>

namespace zeppelin::runtime {

std::string ExitStatus::describe() const {
  std::string s = signal ? "killed by signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")"
                         : "exited with code " + std::to_string(code);
  if (oom_killed) s += ", out of memory";
  return s;
}

}  // namespace zeppelin::runtime
