// base64 - RFC 4648 encoding, used by LDIF, SASL exchanges and password hashes.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailgrid {

std::string base64_encode(std::string_view in);
// Strict decoder: padding optional, whitespace not allowed. nullopt on
// anything that is not base64.
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace mailgrid
