#include <doctest/doctest.h>

#include "mail/address.hpp"

using namespace mailgrid;

namespace {
std::vector<std::string> keys(std::string_view k, LookupStyle s) {
    std::vector<std::string> out;
    for (auto& p : probe_keys(k, s, "+")) out.push_back(p.key);
    return out;
}
}  // namespace

TEST_CASE("extension stripping follows Postfix's split_addr") {
    auto s = strip_extension("joe+ml@example.com", "+");
    REQUIRE(s);
    CHECK(s->address == "joe@example.com");
    CHECK(s->extension == "+ml");
    CHECK_FALSE(strip_extension("+ml@example.com", "+"));
    CHECK_FALSE(strip_extension("joe@example.com", "+"));
    CHECK_FALSE(strip_extension("postmaster@example.com", "+"));
    CHECK_FALSE(strip_extension("owner-list@example.com", "-"));
    auto multi = strip_extension("joe-a+b@x", "+-");
    REQUIRE(multi);
    CHECK(multi->extension == "-a+b");
}

TEST_CASE("partial keys per table style, in Postfix's order") {
    CHECK(keys("joe+ml@example.com", LookupStyle::Exact) == std::vector<std::string>{"joe+ml@example.com"});
    CHECK(keys("joe+ml@example.com", LookupStyle::Virtual) ==
          std::vector<std::string>{"joe+ml@example.com", "joe@example.com", "@example.com"});
    CHECK(keys("joe@mail.example.com", LookupStyle::Transport) ==
          std::vector<std::string>{"joe@mail.example.com", "mail.example.com", ".example.com", ".com"});
    CHECK(keys("joe+x@mail.example.com", LookupStyle::Access) ==
          std::vector<std::string>{"joe+x@mail.example.com", "joe@mail.example.com", "mail.example.com", "example.com",
                                   "com", "joe@"});
    CHECK(keys("192.0.2.7", LookupStyle::Access) == std::vector<std::string>{"192.0.2.7", "192.0.2", "192.0", "192"});
    CHECK(keys("mx.example.com", LookupStyle::Access) ==
          std::vector<std::string>{"mx.example.com", "example.com", "com"});
    CHECK(keys("*", LookupStyle::Transport) == std::vector<std::string>{"*"});
}

TEST_CASE("virtual answers found through partial keys are rewritten as Postfix does") {
    auto probes = probe_keys("joe+ml@example.com", LookupStyle::Virtual, "+");
    CHECK(rewrite_virtual_result("joe@mbox3.example.net", "joe+ml@example.com", probes[1], true) ==
          "joe+ml@mbox3.example.net");
    CHECK(rewrite_virtual_result("a@x, b@y", "joe+ml@example.com", probes[1], true) == "a+ml@x,b+ml@y");
    CHECK(rewrite_virtual_result("joe@mbox3", "joe+ml@example.com", probes[1], false) == "joe@mbox3");
    // @domain catch-all answering "@other": the original local part is kept
    CHECK(rewrite_virtual_result("@other.example", "joe+ml@example.com", probes[2], true) == "joe+ml@other.example");
    CHECK(rewrite_virtual_result("all@m1", "joe+ml@example.com", probes[2], true) == "all@m1");
}

TEST_CASE("no empty partial keys from hostile names") {
    for (auto style : {LookupStyle::Virtual, LookupStyle::Transport, LookupStyle::Access})
        for (const char* k : {".02.92.110", "a@.", "@", "a@b..c", "..."})
            for (const auto& p : probe_keys(k, style, "+")) CHECK_FALSE(p.key.empty());
}
