// fuzz_address - address splitting and the partial keys Postfix derives.
//
// Invariants, for every non-empty key, each of the four lookup styles and
// the delimiter sets "+" and "+-":
//  * the first probe is the key itself, Kind::Full; Exact has only that;
//  * every probe key is non-empty (an empty key would be a lookup of "");
//  * a NoExtension probe is the key minus its extension, and the extension
//    starts with a delimiter;
//  * strip_extension never returns an empty address and never splits at
//    the first character of the local part;
//  * rewrite_virtual_result is safe for every probe.
#include <string>

#include "fuzz_check.hpp"
#include "mail/address.hpp"

using namespace mailgrid;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view key = fuzz::as_view(data, size);

    (void)parse_lookup_style(key);
    auto parts = split_address(key);
    FUZZ_CHECK(parts.local.size() + parts.domain.size() + (parts.has_at ? 1 : 0) == key.size());

    for (std::string_view delims : {std::string_view("+"), std::string_view("+-"), std::string_view()}) {
        auto s = strip_extension(key, delims);
        if (delims.empty()) FUZZ_CHECK(!s);
        if (s) {
            FUZZ_CHECK(!s->address.empty() && !s->extension.empty());
            FUZZ_CHECK(delims.find(s->extension.front()) != std::string_view::npos);
            FUZZ_CHECK(s->address.size() + s->extension.size() == key.size());
            FUZZ_CHECK(s->address.front() == key.front());
        }
        if (key.empty()) continue;

        for (LookupStyle style : {LookupStyle::Exact, LookupStyle::Virtual, LookupStyle::Transport,
                                  LookupStyle::Access}) {
            FUZZ_CHECK(parse_lookup_style(lookup_style_name(style)) == style);
            auto probes = probe_keys(key, style, delims);
            FUZZ_CHECK(!probes.empty());
            FUZZ_CHECK(probes.front().kind == Probe::Kind::Full && probes.front().key == key);
            if (style == LookupStyle::Exact) FUZZ_CHECK(probes.size() == 1);
            for (const auto& p : probes) {
                if (p.key.empty()) {
                    std::fprintf(stderr, "empty probe key (kind %d, style %s)\n", static_cast<int>(p.kind),
                                 lookup_style_name(style));
                }
                FUZZ_CHECK(!p.key.empty());
                if (p.kind == Probe::Kind::NoExtension) {
                    FUZZ_CHECK(s && p.key == s->address && p.extension == s->extension);
                }
                for (bool propagate : {false, true}) {
                    (void)rewrite_virtual_result("@example.net", key, p, propagate);
                    (void)rewrite_virtual_result(key, key, p, propagate);
                    (void)rewrite_virtual_result("a@x, ,b , c@y@z", key, p, propagate);
                }
            }
        }
    }
    return 0;
}
