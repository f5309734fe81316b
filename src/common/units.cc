#include "common/units.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>

namespace zeppelin {
namespace {

// Reads a non-negative decimal number at the front of `text`; advances it.
bool take_number(std::string_view& text, double& out) {
  // digits, optionally followed by '.' and more digits ("1", "1.5"; not ".5" or "1.")
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0) return false;
  if (i < text.size() && text[i] == '.') {
    const std::size_t fraction = ++i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (i == fraction) return false;
  }
  out = std::strtod(std::string(text.substr(0, i)).c_str(), nullptr);
  text.remove_prefix(i);
  return true;
}

Error invalid(std::string_view what, std::string_view text, std::string_view hint) {
  return make_error(Errc::kInvalidArgument,
                    "invalid " + std::string(what) + " \"" + std::string(text) + "\" (" + std::string(hint) + ")");
}

}  // namespace

Result<Duration> parse_duration(std::string_view text) {
  const std::string_view original = text;
  constexpr std::string_view kHint = "expected e.g. 500ms, 10s, 1m30s, 2h";
  if (text == "0") return Duration(0);
  if (text.empty()) return invalid("duration", original, kHint);
  double total_ms = 0;
  while (!text.empty()) {
    double n = 0;
    if (!take_number(text, n)) return invalid("duration", original, kHint);
    double unit_ms = 0;
    if (text.starts_with("ms")) { unit_ms = 1; text.remove_prefix(2); }
    else if (text.starts_with("s")) { unit_ms = 1000; text.remove_prefix(1); }
    else if (text.starts_with("m")) { unit_ms = 60'000; text.remove_prefix(1); }
    else if (text.starts_with("h")) { unit_ms = 3'600'000; text.remove_prefix(1); }
    else return invalid("duration", original, kHint);
    total_ms += n * unit_ms;
  }
  if (total_ms > 1e12) return invalid("duration", original, "too large");
  return Duration(static_cast<std::int64_t>(std::llround(total_ms)));
}

std::string format_duration(Duration d) {
  const auto ms = d.count();
  if (ms % 3'600'000 == 0 && ms != 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0 && ms != 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

Result<std::int64_t> parse_memory(std::string_view text) {
  const std::string_view original = text;
  constexpr std::string_view kHint = "expected bytes with an optional suffix: Ki, Mi, Gi, Ti, k, M, G, T";
  double n = 0;
  if (!take_number(text, n)) return invalid("memory quantity", original, kHint);
  double mult = 1;
  if (text.empty()) mult = 1;
  else if (text == "Ki") mult = 1024.0;
  else if (text == "Mi") mult = 1024.0 * 1024;
  else if (text == "Gi") mult = 1024.0 * 1024 * 1024;
  else if (text == "Ti") mult = 1024.0 * 1024 * 1024 * 1024;
  else if (text == "k" || text == "K") mult = 1e3;
  else if (text == "M") mult = 1e6;
  else if (text == "G") mult = 1e9;
  else if (text == "T") mult = 1e12;
  else return invalid("memory quantity", original, kHint);
  const double bytes = n * mult;
  if (bytes < 1 || bytes > 9e18) return invalid("memory quantity", original, "must be between 1 byte and 8Ei");
  return static_cast<std::int64_t>(std::llround(bytes));
}

Result<std::int64_t> parse_cpu(std::string_view text) {
  const std::string_view original = text;
  constexpr std::string_view kHint = "expected cores such as 0.5 or 2, or millicores such as 500m";
  double n = 0;
  if (!take_number(text, n)) return invalid("cpu quantity", original, kHint);
  double millis = 0;
  if (text.empty()) millis = n * 1000;
  else if (text == "m") millis = n;
  else return invalid("cpu quantity", original, kHint);
  if (millis < 1 || millis > 1e9) return invalid("cpu quantity", original, "must be at least 1m");
  return static_cast<std::int64_t>(std::llround(millis));
}

}  // namespace zeppelin
