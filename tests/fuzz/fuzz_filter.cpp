// fuzz_filter - RFC 4515 filter parser, printer and evaluator.
//
// Invariants:
//  * a parsed filter prints to canonical text that re-parses, and printing
//    that again gives the same text (a fixed point), with the same verdict
//    on a fixed entry;
//  * matches() is safe on anything the parser accepts;
//  * the LDAP-injection guarantee: for any key bytes k,
//    "(mail=" + filter_escape(k) + ")" is exactly one Equal filter on "mail"
//    whose value is k (and which matches an entry whose mail is k); the
//    same for a substring assertion built from two escaped pieces.
#include <string>

#include "directory/escape.hpp"
#include "directory/filter.hpp"
#include "fuzz_check.hpp"

using namespace mailgrid;

namespace {

const Entry& fixed_entry() {
    static const Entry e = [] {
        Entry x;
        x.dn = "uid=alice,ou=people,dc=example,dc=com";
        x.attributes = {
            {"objectClass", {"top", "inetOrgPerson", "mailUser"}},
            {"uid", {"alice"}},
            {"mail", {"alice@example.com", "Alice.Smith@Example.COM"}},
            {"mailAlternateAddress", {"a+lists@example.com", "*@example.org"}},
            {"uidNumber", {"1001"}},
            {"mailQuota", {"-5", "9223372036854775807"}},
            {"userPassword", {"{SSHA}secret"}},
            {"cn", {"", "Alice (admin) \\ *"}},
            {"description", {std::string("nul\0byte", 8)}},
        };
        return x;
    }();
    return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);
    const Entry& e = fixed_entry();

    // 1. Arbitrary filter text.
    std::string err;
    if (auto f = parse_filter(input, &err)) {
        FUZZ_CHECK(err.empty());
        std::string t1 = to_string(*f);
        std::string err2;
        auto g = parse_filter(t1, &err2);
        FUZZ_CHECK(g.has_value());
        std::string t2 = to_string(*g);
        FUZZ_CHECK(t1 == t2);
        FUZZ_CHECK(matches(*f, e) == matches(*g, e));
    } else {
        FUZZ_CHECK(!err.empty());
    }

    // 2. Escaped key bytes in an equality assertion.
    std::string k(input);
    std::string text = "(mail=" + filter_escape(k) + ")";
    auto eq = parse_filter(text);
    FUZZ_CHECK(eq.has_value());
    FUZZ_CHECK(eq->kind == Filter::Kind::Equal);
    FUZZ_CHECK(eq->attr == "mail");
    FUZZ_CHECK(eq->value == k);
    FUZZ_CHECK(eq->children.empty());
    Entry own;
    own.dn = "cn=x";
    own.get_or_add("mail").values.push_back(k);
    FUZZ_CHECK(matches(*eq, own));
    FUZZ_CHECK(to_string(*eq) == text);

    // 3. Two escaped pieces around a wildcard.
    std::string a(input.substr(0, input.size() / 2)), b(input.substr(input.size() / 2));
    std::string sub_text = "(mail=" + filter_escape(a) + "*" + filter_escape(b) + ")";
    auto sub = parse_filter(sub_text);
    FUZZ_CHECK(sub.has_value());
    FUZZ_CHECK(sub->attr == "mail");
    if (a.empty() && b.empty()) {
        FUZZ_CHECK(sub->kind == Filter::Kind::Present);
    } else {
        FUZZ_CHECK(sub->kind == Filter::Kind::Substring);
        FUZZ_CHECK(sub->initial == a && sub->final_ == b && sub->any.empty());
    }
    Entry joined;
    joined.dn = "cn=y";
    joined.get_or_add("mail").values.push_back(a + b);
    FUZZ_CHECK(matches(*sub, joined));
    return 0;
}
