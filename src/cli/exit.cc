#include "cli/exit.h"

#include <iostream>

namespace zeppelin::cli {

int fail(const std::string& message, int code) {
  std::cerr << "zeppelin: " << message << "\n";
  return code;
}

int fail(const Error& e) {
  return fail(e.message, e.code == Errc::kInvalidArgument || e.code == Errc::kTooLarge ? kUsage : kFailure);
}

}  // namespace zeppelin::cli
