#include "common/yaml_emitter.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>

namespace zeppelin {
namespace {

using json = nlohmann::ordered_json;

// True when no YAML 1.1 or 1.2 reader could take `s` for anything but that
// string, so that it may be written plain; otherwise it is double-quoted.
bool plain_safe(const std::string& s) {
  static const auto allowed = [] {
    std::array<bool, 256> table{};
    for (int c = 'a'; c <= 'z'; ++c) table[static_cast<std::size_t>(c)] = true;
    for (int c = 'A'; c <= 'Z'; ++c) table[static_cast<std::size_t>(c)] = true;
    for (int c = '0'; c <= '9'; ++c) table[static_cast<std::size_t>(c)] = true;
    for (char c : std::string_view("_./:=@+-")) table[static_cast<unsigned char>(c)] = true;
    return table;
  }();
  if (s.empty()) return false;
  const char first = s[0];
  if (!((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z') || first == '/' || first == '_')) return false;
  for (char c : s) {
    if (!allowed[static_cast<unsigned char>(c)]) return false;
  }
  if (s.back() == ':') return false;
  if (s.size() > 5) return true;
  // Words YAML 1.1 or 1.2 reads as booleans or null, in any case.
  for (std::string_view word : {"true", "false", "yes", "no", "on", "off", "y", "n", "null"}) {
    if (word.size() == s.size() && std::equal(word.begin(), word.end(), s.begin(), [](char w, char c) {
          return w == (c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
        })) {
      return false;
    }
  }
  return true;
}

// YAML escapes in a double-quoted scalar: the short ones, \xXX, \uXXXX, \UXXXXXXXX.
void append_escape(std::string& out, std::uint32_t code) {
  static const char* hex = "0123456789abcdef";
  int digits = 2;
  if (code <= 0xff) {
    out += "\\x";
  } else if (code <= 0xffff) {
    out += "\\u";
    digits = 4;
  } else {
    out += "\\U";
    digits = 8;
  }
  for (int i = digits - 1; i >= 0; --i) out += hex[(code >> (4 * i)) & 0xf];
}

// Double-quoted, escaping what YAML requires (control characters, C1 and
// no-break space, byte order marks) and nothing else: UTF-8 text stays
// readable. A byte that is not UTF-8 becomes U+FFFD.
void append_double_quoted(std::string& out, const std::string& s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (c < 0x20)
            append_escape(out, c);
          else
            out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    std::size_t extra = 0;
    std::uint32_t code = 0;
    if ((c >> 5) == 0x6) {
      extra = 1;
      code = c & 0x1f;
    } else if ((c >> 4) == 0xe) {
      extra = 2;
      code = c & 0x0f;
    } else if ((c >> 3) == 0x1e) {
      extra = 3;
      code = c & 0x07;
    }
    bool valid = extra > 0 && i + extra < s.size();
    for (std::size_t k = 1; valid && k <= extra; ++k) {
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) >> 6) != 0x2)
        valid = false;
      else
        code = (code << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    }
    if (!valid) {
      out += "\xef\xbf\xbd";  // U+FFFD
      ++i;
      continue;
    }
    if ((code >= 0x80 && code <= 0xa0) || code == 0xfeff)
      append_escape(out, code);
    else
      out.append(s, i, extra + 1);
    i += extra + 1;
  }
  out += '"';
}

void append_scalar(std::string& out, const json& value) {
  switch (value.type()) {
    case json::value_t::string: {
      const auto& s = value.get_ref<const std::string&>();
      if (plain_safe(s))
        out += s;
      else
        append_double_quoted(out, s);
      return;
    }
    case json::value_t::boolean:
      out += value.get<bool>() ? "true" : "false";
      return;
    case json::value_t::number_integer:
      out += std::to_string(value.get<std::int64_t>());
      return;
    case json::value_t::number_unsigned:
      out += std::to_string(value.get<std::uint64_t>());
      return;
    case json::value_t::number_float:
      out += value.dump();
      return;
    case json::value_t::object:
      out += "{}";
      return;  // only empty ones reach here
    case json::value_t::array:
      out += "[]";
      return;
    default:
      out += "~";
      return;
  }
}

bool is_block(const json& value) { return (value.is_object() || value.is_array()) && !value.empty(); }

void append_block(std::string& out, const json& value, std::size_t indent, bool inline_first);

// A block collection: a mapping's entries each on a line at `indent`, a
// list's items as "- " at `indent`, nested collections 2 deeper. With
// `inline_first`, the first line continues the current one (after "- ").
void append_block(std::string& out, const json& value, std::size_t indent, bool inline_first) {
  bool first = true;
  if (value.is_object()) {
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (!(first && inline_first)) out.append(indent, ' ');
      first = false;
      if (plain_safe(it.key()))
        out += it.key();
      else
        append_double_quoted(out, it.key());
      out += ':';
      if (is_block(it.value())) {
        out += '\n';
        append_block(out, it.value(), indent + 2, false);
      } else {
        out += ' ';
        append_scalar(out, it.value());
        out += '\n';
      }
    }
    return;
  }
  for (const auto& item : value) {
    if (!(first && inline_first)) out.append(indent, ' ');
    first = false;
    out += "- ";
    if (is_block(item)) {
      append_block(out, item, indent + 2, true);
    } else {
      append_scalar(out, item);
      out += '\n';
    }
  }
}

}  // namespace

void append_yaml_document(std::string& out, const json& document) {
  out += "---\n";
  if (is_block(document)) {
    append_block(out, document, 0, false);
  } else {
    append_scalar(out, document);
    out += '\n';
  }
}

}  // namespace zeppelin
