// Percent-encoding of URL components (RFC 3986).
#pragma once

#include <string>
#include <string_view>

namespace zeppelin {

// Encodes every byte but the unreserved ones (letters, digits, - _ . ~) and
// those listed in `keep`.
std::string percent_encode(std::string_view value, std::string_view keep = "");

}  // namespace zeppelin
