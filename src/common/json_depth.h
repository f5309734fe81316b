// A bound on the nesting of a JSON text, checked before it is parsed: a
// parser that builds a tree (nlohmann, protobuf's JSON mapping) spends memory
// and stack on every level, so megabytes of "[" cost far more than their size.
#pragma once

#include <string_view>

namespace zeppelin {

// Request bodies of the APIs are never deeper than a handful of levels.
inline constexpr int kMaxJsonDepth = 64;

// True when some array or object in `text` lies more than `max_depth` levels
// deep. Brackets inside strings do not count; the text need not be valid JSON
// (the parser judges that afterwards). One pass, no allocation.
inline bool json_deeper_than(std::string_view text, int max_depth = kMaxJsonDepth) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) return true;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return false;
}

}  // namespace zeppelin
