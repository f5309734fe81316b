// Server-side logging goes through spdlog; this header is the one place that
// names it so components log the same way.
#pragma once

#include <spdlog/spdlog.h>

namespace zeppelin::log {
using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;
}  // namespace zeppelin::log
