// filter - RFC 4515 search filters: parser, printer and evaluator.
//
// The embedded directory evaluates the same query_filter text that slapd
// would, so an ldap_table(5) file gives the same answers against either.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "directory/entry.hpp"

namespace mailgrid {

struct Filter {
    enum class Kind { And, Or, Not, Equal, Substring, GreaterOrEqual, LessOrEqual, Present, Approx, Extensible };
    Kind kind = Kind::Present;
    std::string attr;   // lowercased attribute description, without options
    std::string value;  // unescaped assertion value
    // Substring pieces (unescaped); initial/final empty when absent.
    std::string initial, final_;
    std::vector<std::string> any;
    std::vector<Filter> children;
};

// Parses a filter; accepts what OpenLDAP accepts in practice: whitespace
// between components, a bare "attr=value" without parentheses, and
// LDAPv2-style "\*" escapes. nullopt with *error set on bad syntax.
std::optional<Filter> parse_filter(std::string_view text, std::string* error = nullptr);

// Canonical RFC 4515 text (values re-escaped).
std::string to_string(const Filter& f);

// Evaluates against an entry with the matching rules mail schemas use:
// case-insensitive for everything but password attributes, numeric ordering
// when both sides are integers.
bool matches(const Filter& f, const Entry& e);

// Is this attribute compared case-sensitively?
bool case_exact_attribute(std::string_view lowercase_attr);

}  // namespace mailgrid
