#include "cli/exit.h"

#include <iostream>

namespace zeppelin::cli {

int fail(const std::string& message, int code) {
  std::cerr << "zeppelin: " << message << "\n";
  return code;
}

int fail(const Error& e) {
  // Missing credentials are the caller's to give (--user), as a bad flag is.
  const bool usage = e.code == Errc::kInvalidArgument || e.code == Errc::kTooLarge || e.code == Errc::kUnauthenticated;
  return fail(e.message, usage ? kUsage : kFailure);
}

}  // namespace zeppelin::cli
