// YAML output of JSON values: what `zeppelin render` prints by default, and
// listings with `-o yaml`.
//
// Written by hand rather than through yaml-cpp's emitter, which takes about 20
// times longer (a 1,000-service system: ~900 ms against the 50 ms budget);
// tests/unit/kubernetes_render_test.cc reads every output back with yaml-cpp
// and PyYAML and compares it with the JSON. Pure functions, no state.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace zeppelin {

// Appends `document` to `out` as one YAML document: a "---" line, then block
// style, two spaces per level, a mapping's keys in their order and a list's
// items as "- "; empty collections as {} and []. A string is written plain
// only when no YAML 1.1 or 1.2 reader could take it for anything but that
// string; otherwise it is double-quoted, escaping only what YAML requires
// (UTF-8 text stays readable; a byte that is not UTF-8 becomes U+FFFD).
void append_yaml_document(std::string& out, const nlohmann::ordered_json& document);

}  // namespace zeppelin
