// fuzz_ldif - RFC 2849 LDIF reader and writer.
//
// Invariants:
//  * parse_ldif never fails hard on any text;
//  * every parsed entry written with to_ldif parses back to exactly one
//    entry with the same dn and the same attributes (names, values, order),
//    and no errors;
//  * all entries written one after another (blank-line separated) parse
//    back to the same list.
#include <string>

#include "directory/ldif.hpp"
#include "fuzz_check.hpp"

using namespace mailgrid;

namespace {

bool same(const Entry& a, const Entry& b) {
    if (a.dn != b.dn || a.attributes.size() != b.attributes.size()) return false;
    for (std::size_t i = 0; i < a.attributes.size(); ++i)
        if (a.attributes[i].name != b.attributes[i].name || a.attributes[i].values != b.attributes[i].values)
            return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);
    LdifResult r = parse_ldif(input, "fuzz.ldif");

    std::string all;
    for (const Entry& e : r.entries) {
        for (const auto& a : e.attributes) FUZZ_CHECK(!a.name.empty() && !a.values.empty());
        std::string text = to_ldif(e);
        LdifResult back = parse_ldif(text, "again.ldif");
        FUZZ_CHECK(back.errors.empty());
        FUZZ_CHECK(back.entries.size() == 1);
        FUZZ_CHECK(same(back.entries[0], e));
        all += text;
        all += "\n";
    }
    LdifResult again = parse_ldif(all, "all.ldif");
    FUZZ_CHECK(again.errors.empty());
    FUZZ_CHECK(again.entries.size() == r.entries.size());
    for (std::size_t i = 0; i < r.entries.size(); ++i) FUZZ_CHECK(same(again.entries[i], r.entries[i]));
    return 0;
}
