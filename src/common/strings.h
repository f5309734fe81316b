// String helpers too small for a component of their own.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace zeppelin {

// join({"a", "b"}, ",") is "a,b"; no items give "".
inline std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += separator;
    out += items[i];
  }
  return out;
}

// The name in `known` nearest to `typed`, for "did you mean" hints: within
// two edits (insertions, deletions, substitutions, adjacent swaps; one for
// words under five letters), or one that `typed` begins (`res` for
// `restart`); "" when none is that close or several tie.
std::string nearest_name(std::string_view typed, const std::vector<std::string>& known);

}  // namespace zeppelin
