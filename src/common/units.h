// Parsing and printing of the spec's scalar units: durations ("1s", "1m30s",
// "250ms") and quantities in Kubernetes notation ("256Mi", "1G", "500m").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace zeppelin {

using Duration = std::chrono::milliseconds;

// Accepts a sequence of <number><unit> with units ms, s, m, h (Go style), e.g.
// "1h2m3s", "1.5s", "250ms". A bare "0" is zero. Negative values are rejected.
Result<Duration> parse_duration(std::string_view text);
std::string format_duration(Duration d);

// Memory: bytes with an optional suffix k/K, M, G, T (powers of 1000) or
// Ki, Mi, Gi, Ti (powers of 1024). Returns bytes.
Result<std::int64_t> parse_memory(std::string_view text);

// CPU: cores as a decimal ("0.5", "2") or millicores ("500m"). Returns millicores.
Result<std::int64_t> parse_cpu(std::string_view text);

}  // namespace zeppelin
