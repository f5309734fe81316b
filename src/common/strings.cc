#include "common/strings.h"

#include <algorithm>

namespace zeppelin {

namespace {

// Optimal string alignment distance: Levenshtein plus the swap of two
// neighbours, the commonest typo ("sclae").
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string nearest_name(std::string_view typed, const std::vector<std::string>& known) {
  if (typed.empty()) return "";
  std::string best;
  // Beyond that many edits, no suggestion: two for a long word, one for a short one ("exec" is not "elect").
  size_t best_distance = typed.size() >= 5 ? 3 : 2;
  bool tie = false;
  for (const auto& name : known) {
    const size_t distance = name.starts_with(typed) ? 1 : edit_distance(typed, name);
    if (distance < best_distance) {
      best = name;
      best_distance = distance;
      tie = false;
    } else if (distance == best_distance && name != best) {
      tie = true;
    }
  }
  return tie ? "" : best;
}

}  // namespace zeppelin
