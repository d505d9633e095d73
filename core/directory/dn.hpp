// dn - distinguished names (RFC 4514) reduced to a comparable form.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailgrid {

// Normalised DN: attribute types and values lowercased, escapes decoded and
// re-encoded canonically, no spaces around '=' or ','. Two DNs name the same
// entry if their normalised forms are equal (for the case-insensitive
// attributes mail directories use). nullopt if the DN is malformed.
std::optional<std::string> normalize_dn(std::string_view dn);

// Parent of a normalised DN ("" for a single RDN).
std::string_view parent_dn(std::string_view normalized);

// Is `dn` within `base` at `depth` (0 = base itself, 1 = children, -1 = any)?
bool dn_in_scope(std::string_view dn_norm, std::string_view base_norm, int scope_depth);

}  // namespace mailgrid
