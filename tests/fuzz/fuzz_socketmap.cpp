// fuzz_socketmap - socketmap_table(5) request codec and netstring framing.
//
// Invariants:
//  * a request stream parses to the same requests whole or in 1-3 byte
//    fragments; consumed stays within the buffer;
//  * an ok request has a non-empty name without ' ' and a non-empty key,
//    and re-encoding it parses back to the same name and key;
//  * every reply (and every error reply) is exactly one netstring, and a
//    found value comes back as "OK <value>" unless it is too long (TEMP);
//  * netstring::parse(netstring::encode(x)) == x for any bytes, and a limit
//    one byte short of x is rejected.
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "proto/netstring.hpp"
#include "proto/socketmap.hpp"

using namespace mailgrid;

namespace {

struct Seen {
    bool ok;
    std::string name, key, reply;
    bool close;
    bool operator==(const Seen&) const = default;
};

// The payload of s if s is exactly one well-formed netstring.
std::string single_netstring(std::string_view s) {
    std::size_t consumed = 0;
    auto f = netstring::parse(s, s.size(), consumed);
    FUZZ_CHECK(f && f->ok && consumed == s.size());
    return std::string(f->payload);
}

void check_request(const socketmap::Request& r) {
    if (!r.ok) {
        if (!r.reply.empty()) {
            std::string p = single_netstring(r.reply);
            FUZZ_CHECK(p.rfind("PERM ", 0) == 0 || p.rfind("NOTFOUND ", 0) == 0);
        }
        return;
    }
    FUZZ_CHECK(!r.close);
    FUZZ_CHECK(!r.name.empty() && r.name.find(' ') == std::string::npos);
    FUZZ_CHECK(!r.key.empty());

    std::string found = socketmap::format_reply(Lookup::found(r.key));
    std::string p = single_netstring(found);
    if (r.key.size() + 3 <= socketmap::kMaxReply) FUZZ_CHECK(p == "OK " + r.key);
    else FUZZ_CHECK(p.rfind("TEMP ", 0) == 0);
    FUZZ_CHECK(p.size() <= socketmap::kMaxReply);

    for (const Lookup& l : {Lookup::not_found(), Lookup::found(""), Lookup::temp_fail(r.key),
                            Lookup::perm_fail(r.key), Lookup::temp_fail(""), Lookup::perm_fail("")}) {
        std::string q = single_netstring(socketmap::format_reply(l));
        FUZZ_CHECK(q.size() <= socketmap::kMaxReply);
        FUZZ_CHECK(q != "OK" && q.rfind("OK", 0) != 0);  // never a bare or empty OK
        for (unsigned char c : q) FUZZ_CHECK(l.status == Status::Found || c >= 0x20);
    }

    std::string again = netstring::encode(r.name + " " + r.key);
    std::size_t consumed = 0;
    auto r2 = socketmap::parse_request(again, consumed);
    FUZZ_CHECK(r2 && r2->ok && r2->name == r.name && r2->key == r.key && consumed == again.size());
}

bool drain(std::string_view& buf, std::vector<Seen>& out) {
    for (;;) {
        std::size_t consumed = 12345;
        auto r = socketmap::parse_request(buf, consumed);
        if (!r) {
            FUZZ_CHECK(consumed == 0);
            return false;
        }
        FUZZ_CHECK(consumed > 0 && consumed <= buf.size());
        check_request(*r);
        out.push_back({r->ok, r->name, r->key, r->reply, r->close});
        buf.remove_prefix(consumed);
        if (r->close) return true;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);

    std::vector<Seen> whole;
    std::string_view rest = input;
    bool whole_closed = drain(rest, whole);

    std::vector<Seen> pieces;
    std::string buf;
    bool closed = false;
    fuzz::for_each_fragment(input, [&](std::string_view frag) {
        if (closed) return;
        buf.append(frag);
        std::string_view v = buf;
        closed = drain(v, pieces);
        buf.erase(0, buf.size() - v.size());
    });
    FUZZ_CHECK(closed == whole_closed);
    FUZZ_CHECK(pieces == whole);
    if (!closed) FUZZ_CHECK(buf == rest);

    // netstring round trip on arbitrary bytes, alone and back to back.
    std::string enc = netstring::encode(input);
    FUZZ_CHECK(single_netstring(enc) == input);
    std::string two = enc + netstring::encode(input.substr(input.size() / 2));
    std::size_t consumed = 0;
    auto f1 = netstring::parse(two, input.size(), consumed);
    FUZZ_CHECK(f1 && f1->ok && f1->payload == input && consumed == enc.size());
    auto f2 = netstring::parse(std::string_view(two).substr(consumed), input.size(), consumed);
    FUZZ_CHECK(f2 && f2->ok && f2->payload == input.substr(input.size() / 2));
    if (!input.empty()) {
        auto f3 = netstring::parse(enc, input.size() - 1, consumed);
        FUZZ_CHECK(f3 && !f3->ok && consumed == enc.size());
    }
    // Every proper prefix of a netstring is incomplete.
    for (std::size_t n = 0; n < enc.size(); n += 1 + n / 4) {
        auto f = netstring::parse(std::string_view(enc).substr(0, n), input.size(), consumed);
        FUZZ_CHECK(!f && consumed == 0);
    }
    return 0;
}
