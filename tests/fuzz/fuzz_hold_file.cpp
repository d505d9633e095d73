// fuzz_hold_file - the hold file ldap_tablemap polls while "mailgrid user
// move" runs, and the hold list built from it.
//
// Invariants:
//  * parse never crashes; every address is non-empty, in normalised form
//    (lower case, no surrounding space) and not a comment;
//  * format(parse(x)) parses to the same generation and addresses, and
//    formatting that again gives the same text;
//  * a HoldList updated with the addresses holds each of them (in upper
//    case too), and update() reports a change exactly when the generation
//    differs.
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "lookup/hold_list.hpp"

using namespace mailgrid;

namespace {
std::string upper(std::string s) {
    for (auto& c : s)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return s;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);
    auto f = parse_hold_file(input);
    for (const auto& a : f.addresses) {
        FUZZ_CHECK(!a.empty());
        FUZZ_CHECK(a.front() != '#');
        FUZZ_CHECK(HoldList::normalize(a) == a);
        FUZZ_CHECK(a.find('\n') == std::string::npos);
    }

    auto text = format_hold_file(f);
    auto back = parse_hold_file(text);
    FUZZ_CHECK(back.generation == f.generation);
    FUZZ_CHECK(back.addresses == f.addresses);
    FUZZ_CHECK(format_hold_file(back) == text);

    HoldList h;
    FUZZ_CHECK(h.update(f.generation, f.addresses) == (f.generation != 0));
    FUZZ_CHECK(h.generation() == f.generation);
    FUZZ_CHECK(h.size() <= f.addresses.size());
    FUZZ_CHECK(h.empty() == f.addresses.empty());
    for (const auto& a : f.addresses) {
        FUZZ_CHECK(h.holds(a, ""));
        FUZZ_CHECK(h.holds(a, "+"));
        FUZZ_CHECK(h.holds(upper(a), "+-"));
    }
    FUZZ_CHECK(!h.update(f.generation, {}));
    FUZZ_CHECK(h.empty());
    for (const auto& a : f.addresses) FUZZ_CHECK(!h.holds(a, "+"));
    return 0;
}
