// Exit codes and the one way commands report a failure.
#pragma once

#include <string>

#include "common/result.h"

namespace zeppelin::cli {

inline constexpr int kOk = 0;
inline constexpr int kFailure = 1;  // a runtime failure
inline constexpr int kUsage = 2;    // a usage or validation error

// Prints "zeppelin: MESSAGE" on stderr and returns `code`.
int fail(const std::string& message, int code = kFailure);
// An invalid argument is the caller's mistake (kUsage); anything else kFailure.
int fail(const Error& e);

}  // namespace zeppelin::cli
