// fuzz_ldap_table - Postfix ldap_table(5) files: cf syntax, parameter
// checks, and query_filter expansion.
//
// Input: "<cf text>" or "<cf text>\0<key>" (the key defaults to one of a
// few addresses). CfFile refuses NUL bytes, so the split is unambiguous.
//
// Invariants:
//  * CfFile::parse and LdapTableConfig::from either succeed or throw
//    ConfigError; any other exception escapes and is reported as a crash;
//  * expand_query/expand_result are safe on any accepted configuration;
//  * the injection guarantee through templates: expand the query_filter
//    once with the real key (quoted for filters) and once with a "marker"
//    key of the same shape ('_' for every byte but '@' and '.', which steer
//    %d, %u and %1..%9). The two expansions fail or succeed together. If
//    the marker expansion parses and every marker lands inside assertion
//    values (not in an attribute, option or matching rule the template put
//    it in), the real expansion must parse to the same filter structure,
//    differing only at marker positions.
#include <string>
#include <vector>

#include "config/cf_file.hpp"
#include "config/ldap_table.hpp"
#include "directory/dn.hpp"
#include "directory/filter.hpp"
#include "fuzz_check.hpp"

using namespace mailgrid;

namespace {

constexpr char kMarker = '_';

std::size_t count_marker(std::string_view s) {
    std::size_t n = 0;
    for (char c : s) n += c == kMarker;
    return n;
}

std::size_t markers_in_values(const Filter& f) {
    std::size_t n = count_marker(f.value) + count_marker(f.initial) + count_marker(f.final_);
    for (const auto& a : f.any) n += count_marker(a);
    for (const auto& c : f.children) n += markers_in_values(c);
    return n;
}

// Equal outside marker positions of m.
bool same_but_markers(std::string_view real, std::string_view m) {
    if (real.size() != m.size()) return false;
    for (std::size_t i = 0; i < m.size(); ++i)
        if (m[i] != kMarker && m[i] != real[i]) return false;
    return true;
}

// values: also compare the values. Not when the template has escapes of
// its own: "\%s" makes the key's first bytes part of the template's escape.
bool same_shape(const Filter& real, const Filter& m, bool values) {
    if (real.kind != m.kind || real.attr != m.attr || real.children.size() != m.children.size() ||
        real.any.size() != m.any.size())
        return false;
    if (values && (!same_but_markers(real.value, m.value) || !same_but_markers(real.initial, m.initial) ||
        !same_but_markers(real.final_, m.final_)))
        return false;
    for (std::size_t i = 0; values && i < m.any.size(); ++i)
        if (!same_but_markers(real.any[i], m.any[i])) return false;
    for (std::size_t i = 0; i < m.children.size(); ++i)
        if (!same_shape(real.children[i], m.children[i], values)) return false;
    return true;
}

void check_config(const LdapTableConfig& c, std::string_view key) {
    std::string marker(key);
    for (auto& ch : marker)
        if (ch != '@' && ch != '.') ch = kMarker;

    auto real = c.templates.expand_query(c.query_filter, key, Quote::Filter);
    auto mark = c.templates.expand_query(c.query_filter, marker, Quote::Filter);
    FUZZ_CHECK(real.has_value() == mark.has_value());
    if (real && mark) {
        auto fm = parse_filter(*mark);
        if (fm && markers_in_values(*fm) == count_marker(*mark)) {
            auto fr = parse_filter(*real);
            if (!fr) {
                std::fprintf(stderr, "template %s\nmarker  %s\nreal    %s\n", c.query_filter.c_str(), mark->c_str(),
                             real->c_str());
            }
            FUZZ_CHECK(fr.has_value());
            FUZZ_CHECK(same_shape(*fr, *fm, c.query_filter.find('\\') == std::string::npos));
        }
    }

    // search_base with DN quoting, and result_format on a value.
    if (auto base = c.templates.expand_query(c.search_base, key, Quote::Dn)) (void)normalize_dn(*base);
    (void)c.templates.expand_result(c.result_format, key, key);
    (void)c.templates.expand_result(c.result_format, "bob@example.net", key);
    (void)c.domain_allows(key);
    (void)c.requested_attributes();
    (void)c.server.key();
    (void)c.server.describe();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);
    std::string_view text = input, key;
    static const char* const kKeys[] = {"alice+lists@example.com", "*)(uid=*", "a(b)c\\d*e@sub.example.org",
                                        "postmaster", "x@y"};
    if (auto nul = input.find('\0'); nul != std::string_view::npos) {
        text = input.substr(0, nul);
        key = input.substr(nul + 1);
    } else {
        key = kKeys[size % (sizeof kKeys / sizeof kKeys[0])];
    }

    CfFile cf;
    try {
        cf = CfFile::parse(text, "fuzz.cf");
    } catch (const ConfigError&) {
        return 0;
    }
    // "domain = /path" reads files: file I/O is not what is fuzzed here.
    if (auto* d = cf.find("domain"); d && d->value.find('/') != std::string::npos) return 0;

    for (const auto& p : cf.params()) {
        FUZZ_CHECK(!p.name.empty() && p.line > 0);
        FUZZ_CHECK(cf.find(p.name) != nullptr);
    }

    try {
        LdapTableConfig c = LdapTableConfig::from(cf);
        check_config(c, key);
    } catch (const ConfigError&) {
        // Rejected like Postfix would: fine.
    }
    return 0;
}
