// address - mail addresses and the partial keys Postfix derives from them.
//
// Postfix hands a tcp: or socketmap: table only the full key; for ldap:,
// hash: and the other "fixed" tables it also tries the address without its
// extension, @domain, the domain and its parents. A lookup server that
// replaces ldap: must therefore try those keys itself, in Postfix's order,
// which depends on the kind of table.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailgrid {

struct SplitAddress {
    std::string_view local;   // before the last '@' (whole key if none)
    std::string_view domain;  // after the last '@'
    bool has_at = false;
};
SplitAddress split_address(std::string_view addr);

// Removes the extension: "joe+ml@ex" -> ("joe@ex", "+ml"). The extension
// keeps its delimiter, as Postfix's strip_addr_internal() does. nullopt if
// there is no extension or no delimiters are configured.
struct Stripped {
    std::string address;
    std::string extension;
};
std::optional<Stripped> strip_extension(std::string_view addr, std::string_view delimiters);

// How a table's keys are widened, after Postfix's mail_addr_find() callers.
enum class LookupStyle {
    Exact,      // only the key (postmap -q, sender_login_maps, relay_domains ...)
    Virtual,    // virtual_alias_maps, canonical_maps: key, key-ext, @domain
    Transport,  // transport_maps: key, key-ext, domain, .parent domains
    Access,     // check_*_access: key, key-ext, domain, parents, user@; IP nets
};
std::optional<LookupStyle> parse_lookup_style(std::string_view s);
const char* lookup_style_name(LookupStyle s);

struct Probe {
    enum class Kind { Full, NoExtension, AtDomain, Domain, LocalpartAt, Network };
    Kind kind;
    std::string key;
    std::string extension;  // for NoExtension: what was removed
};

// The keys to try, in order, for a key of the given style.
std::vector<Probe> probe_keys(std::string_view key, LookupStyle style, std::string_view delimiters);

// What Postfix's mail_addr_map() does with a virtual/canonical answer that
// it found through a partial key: "@dom" answers get the original local
// part, and an unmatched extension is carried over to every address.
std::string rewrite_virtual_result(std::string_view result, std::string_view original_key, const Probe& matched,
                                   bool propagate_extension);

}  // namespace mailgrid
