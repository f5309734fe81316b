// UTF-8 validation: JSON (the API, the store's records) carries text only, so
// bytes that are not UTF-8 are refused where they enter, with their place.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace zeppelin {

// The offset of the first byte of `text` that does not begin a well-formed
// UTF-8 sequence (overlong forms, surrogates and code points past U+10FFFF
// included), or nullopt when all of it is UTF-8.
std::optional<std::size_t> first_invalid_utf8(std::string_view text);

}  // namespace zeppelin
