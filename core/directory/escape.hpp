// escape - quoting of untrusted text for LDAP filters and DNs.
//
// Every key that reaches an LDAP filter goes through filter_escape: that is
// what stops "*" or ")(uid=*" in a recipient address from widening a search.
#pragma once

#include <string>
#include <string_view>

namespace mailgrid {

// RFC 4515: '*', '(', ')', '\' and NUL as \XX (what Postfix's rfc2254_quote
// does, plus NUL, which C strings could never carry).
std::string filter_escape(std::string_view s);
void filter_escape_append(std::string& out, std::string_view s);

// RFC 4514 value quoting in Postfix's stricter style: space, TAB, '"', '#',
// '+', ',', ';', '<', '>', '\' and NUL everywhere as \XX.
std::string dn_escape(std::string_view s);
void dn_escape_append(std::string& out, std::string_view s);

}  // namespace mailgrid
