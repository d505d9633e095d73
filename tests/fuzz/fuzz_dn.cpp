// fuzz_dn - DN normalisation (RFC 4514) and DN value quoting.
//
// Invariants:
//  * normalize_dn is idempotent: a normalised DN normalises to itself;
//  * a normalised DN is in scope of its parent (depth 1 and subtree) and of
//    itself (base);
//  * for any bytes x, "cn=" + dn_escape(x) normalises, to a single RDN (no
//    unescaped ',' or '+'), and with ",dc=example,dc=com" appended its
//    parent is exactly "dc=example,dc=com".
#include <string>

#include "directory/dn.hpp"
#include "directory/escape.hpp"
#include "fuzz_check.hpp"

using namespace mailgrid;

namespace {

void check_normalized(const std::string& n) {
    auto again = normalize_dn(n);
    if (!again || *again != n) {
        std::fprintf(stderr, "normalize not idempotent:\n  once:  \"%s\"\n  twice: %s%s%s\n", n.c_str(),
                     again ? "\"" : "", again ? again->c_str() : "(malformed)", again ? "\"" : "");
    }
    FUZZ_CHECK(again && *again == n);
    if (n.empty()) return;
    auto parent = parent_dn(n);
    FUZZ_CHECK(parent.size() < n.size());
    FUZZ_CHECK(dn_in_scope(n, parent, 1));
    FUZZ_CHECK(dn_in_scope(n, parent, -1));
    FUZZ_CHECK(dn_in_scope(n, n, 0));
    FUZZ_CHECK(!dn_in_scope(n, n, 1));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);

    if (auto n = normalize_dn(input)) check_normalized(*n);

    std::string rdn = "cn=" + dn_escape(input);
    auto n = normalize_dn(rdn);
    FUZZ_CHECK(n.has_value());
    FUZZ_CHECK(n->rfind("cn=", 0) == 0);
    FUZZ_CHECK(n->find(',') == std::string::npos && n->find('+') == std::string::npos);
    check_normalized(*n);

    auto full = normalize_dn(rdn + ",dc=example,dc=com");
    FUZZ_CHECK(full.has_value());
    FUZZ_CHECK(parent_dn(*full) == "dc=example,dc=com");
    FUZZ_CHECK(*full == *n + ",dc=example,dc=com");
    check_normalized(*full);
    return 0;
}
