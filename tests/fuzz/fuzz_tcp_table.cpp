// fuzz_tcp_table - Postfix tcp_table(5) request codec.
//
// Invariants:
//  * a request stream parses to the same requests whether it arrives whole
//    or in 1-3 byte fragments (as a slow client's TCP segments would);
//  * consumed is always within the buffer and non-zero for a request;
//  * every reply is one line: exactly one '\n', at the end; a found value
//    fits in kMaxReply or the reply is a 400 (Postfix's "try again");
//  * a 200 reply decodes back to the value; "get " + hex_quote(key) parses
//    back to the key; hex_unquote(hex_quote(x)) == x for any bytes.
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "proto/tcp_table.hpp"

using namespace mailgrid;
using namespace mailgrid::tcp_table;

namespace {

struct Seen {
    bool ok;
    std::string key, reply;
    bool close;
    bool operator==(const Seen&) const = default;
};

Seen take(const Request& r) { return {r.ok, r.key, r.reply, r.close}; }

// Off for the padded run: the per-request checks on a 32 KB key cost
// milliseconds, and the unpadded run makes them on keys of every size
// around kMaxReply.
bool g_check_requests = true;

void check_request(const Request& r) {
    if (!r.ok) {
        FUZZ_CHECK(fuzz::one_line(r.reply));
        FUZZ_CHECK(r.reply.rfind("400 ", 0) == 0 || r.reply.rfind("500 ", 0) == 0);
        return;
    }
    FUZZ_CHECK(!r.key.empty());
    FUZZ_CHECK(!r.close);

    std::string found = format_reply(Lookup::found(r.key));
    FUZZ_CHECK(fuzz::one_line(found));
    FUZZ_CHECK(found.size() <= kMaxReply || found.rfind("400 ", 0) == 0);
    if (found.rfind("200 ", 0) == 0) {
        FUZZ_CHECK(found.size() <= kMaxReply);
        auto back = hex_unquote(std::string_view(found).substr(4, found.size() - 5));
        FUZZ_CHECK(back && *back == r.key);
    } else {
        FUZZ_CHECK(found.rfind("400 ", 0) == 0);
    }
    for (const Lookup& l : {Lookup::not_found(), Lookup::temp_fail(r.key), Lookup::perm_fail(r.key),
                            Lookup::temp_fail(""), Lookup::perm_fail("")}) {
        std::string reply = format_reply(l);
        FUZZ_CHECK(fuzz::one_line(reply));
        FUZZ_CHECK(reply.size() <= kMaxReply);
        FUZZ_CHECK(reply.rfind(l.status == Status::NotFound ? "500 " : "400 ", 0) == 0);
    }

    // Re-encoding the key gives a request for the same key.
    std::string again = "get " + hex_quote(r.key) + "\n";
    if (again.size() <= kMaxRequestLine) {
        std::size_t consumed = 0;
        auto r2 = parse_request(again, consumed);
        FUZZ_CHECK(r2 && r2->ok && r2->key == r.key && consumed == again.size());
    }
}

// Parses requests off the front of buf until it runs dry or a request
// closes the connection. Returns true if the connection was closed.
bool drain(std::string_view& buf, std::vector<Seen>& out) {
    for (;;) {
        std::size_t consumed = 12345;
        auto r = parse_request(buf, consumed);
        if (!r) {
            FUZZ_CHECK(consumed == 0);
            return false;
        }
        FUZZ_CHECK(consumed > 0 && consumed <= buf.size());
        if (g_check_requests) check_request(*r);
        out.push_back(take(*r));
        buf.remove_prefix(consumed);
        if (r->close) return true;
    }
}

void stream_equivalence(std::string_view prefix, std::string_view input) {
    std::string whole_text = std::string(prefix) + std::string(input);

    std::vector<Seen> whole;
    std::string_view rest = whole_text;
    bool whole_closed = drain(rest, whole);

    std::vector<Seen> pieces;
    std::string buf(prefix);
    bool closed = false;
    {
        std::string_view v = buf;
        closed = drain(v, pieces);
        buf.erase(0, buf.size() - v.size());
    }
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
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);

    stream_equivalence({}, input);

    // A first byte of 0xFF puts a long key in front, so the fuzzer can reach
    // the kMaxRequestLine boundary without megabyte inputs. (Only for short
    // inputs: every fragment rescans the 32 KB line.)
    if (!input.empty() && static_cast<unsigned char>(input[0]) == 0xFF && input.size() <= 512) {
        std::string pad = "get " + std::string(kMaxRequestLine - 4 - 64, 'k');
        g_check_requests = false;
        stream_equivalence(pad, input.substr(1));
        g_check_requests = true;
    }

    // Quoting round trip on arbitrary bytes.
    std::string q = hex_quote(input);
    for (unsigned char c : q) FUZZ_CHECK(c > 0x20 && c < 0x7F);
    auto back = hex_unquote(q);
    FUZZ_CHECK(back && *back == input);

    // hex_unquote on arbitrary text: a decoded result re-quotes to
    // something that decodes to the same bytes.
    if (auto u = hex_unquote(input)) {
        FUZZ_CHECK(u->size() <= input.size());
        auto again = hex_unquote(hex_quote(*u));
        FUZZ_CHECK(again && *again == *u);
    }

    // Any value gives a one-line reply.
    std::string reply = format_reply(Lookup::found(std::string(input)));
    FUZZ_CHECK(fuzz::one_line(reply));
    FUZZ_CHECK(reply.size() <= kMaxReply || reply.rfind("400 ", 0) == 0);
    return 0;
}
