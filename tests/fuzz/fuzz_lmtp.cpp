// fuzz_lmtp - the LMTP server codec (core/proto/lmtp).
//
// Invariants:
//  * a byte stream gives the same events whole or in 1-3 byte fragments
//    (the application refuses recipients of odd length and answers every
//    message with one line per accepted recipient);
//  * every reply the session writes is made of lines "ddd-..." / "ddd ..."
//    ending in CRLF with no other CR or LF, codes 2xx-5xx, a multi-line
//    reply keeps its code and ends with "ddd ", and only QUIT's 221 closes;
//  * a Message event comes only with accepted recipients, within the size
//    limit;
//  * message text encoded for DATA (dots doubled, CRLF) comes back as it
//    was, whole and in fragments;
//  * a bracketed path parses back to itself.
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "proto/lmtp.hpp"

using namespace mailgrid;

namespace {

constexpr std::size_t kLimit = 2000;

struct Seen {
    int kind;
    std::string reply, address, params, message;
    std::size_t recipients;
    bool close;
    bool operator==(const Seen&) const = default;
};

// One or more replies (LMTP answers a message once per recipient): each
// a run of "ddd-" lines with one code, ended by a "ddd " line.
void check_reply(std::string_view r, bool close) {
    FUZZ_CHECK(!r.empty());
    FUZZ_CHECK(r.size() >= 2 && r.substr(r.size() - 2) == "\r\n");
    std::size_t i = 0;
    std::string_view open_code;
    while (i < r.size()) {
        auto end = r.find("\r\n", i);
        FUZZ_CHECK(end != std::string_view::npos);
        auto line = r.substr(i, end - i);
        FUZZ_CHECK(line.size() >= 4);
        FUZZ_CHECK(line[0] >= '2' && line[0] <= '5' && line[1] >= '0' && line[1] <= '9' && line[2] >= '0' &&
                   line[2] <= '9');
        FUZZ_CHECK(line[3] == ' ' || line[3] == '-');
        if (!open_code.empty()) FUZZ_CHECK(line.substr(0, 3) == open_code);
        open_code = line[3] == '-' ? line.substr(0, 3) : std::string_view();
        for (char c : line) FUZZ_CHECK(c != '\r' && c != '\n');
        if (close) FUZZ_CHECK(line.substr(0, 3) == "221");
        i = end + 2;
    }
    FUZZ_CHECK(open_code.empty());
}

struct Driver {
    lmtp::Session session{lmtp::Options{"fuzz.example", kLimit, 50}};
    std::vector<Seen> seen;
    bool closed = false;

    // Takes events from buf; returns the bytes consumed.
    std::size_t drain(std::string_view buf) {
        std::size_t total = 0;
        while (!closed) {
            std::size_t used = 99999;
            auto e = session.next(buf.substr(total), used);
            FUZZ_CHECK(used <= buf.size() - total);
            total += used;
            if (!e) break;
            Seen s{static_cast<int>(e->kind), e->reply, e->address, e->params, {}, 0, e->close};
            switch (e->kind) {
                case lmtp::Event::Kind::Reply:
                    check_reply(e->reply, e->close);
                    closed = e->close;
                    break;
                case lmtp::Event::Kind::Recipient:
                    FUZZ_CHECK(!e->address.empty());
                    session.recipient(e->address.size() % 2 == 0);
                    break;
                case lmtp::Event::Kind::Message:
                    FUZZ_CHECK(!session.recipients().empty());
                    FUZZ_CHECK(session.message().size() <= kLimit);
                    s.message = session.message();
                    s.recipients = session.recipients().size();
                    session.end_transaction();
                    break;
            }
            seen.push_back(std::move(s));
        }
        return total;
    }
};

std::string data_round_trip(std::string_view text, std::size_t piece) {
    const std::string head = "LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<ab@cd>\r\nDATA\r\n";
    std::string wire = head + lmtp::encode_data(text);
    lmtp::Session s(lmtp::Options{"h", 1u << 20, 10});
    std::string buf, message;
    bool got = false;
    for (std::size_t i = 0; i < wire.size() && !got; i += piece) {
        buf.append(wire.substr(i, piece));
        for (;;) {
            std::size_t used = 0;
            auto e = s.next(buf, used);
            buf.erase(0, used);
            if (!e) break;
            if (e->kind == lmtp::Event::Kind::Recipient) s.recipient(true);
            if (e->kind == lmtp::Event::Kind::Message) {
                message = s.message();
                got = true;
                break;
            }
        }
    }
    FUZZ_CHECK(got);
    return message;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);

    Driver whole;
    whole.drain(input);

    Driver pieces;
    std::string buf;
    fuzz::for_each_fragment(input, [&](std::string_view frag) {
        if (pieces.closed) return;
        buf.append(frag);
        buf.erase(0, pieces.drain(buf));
    });
    FUZZ_CHECK(pieces.seen == whole.seen);
    FUZZ_CHECK(pieces.closed == whole.closed);

    // Message text survives DATA encoding (as a Maildir stores it: LF line
    // ends, no CR).
    if (size <= 4096) {
        std::string text;
        for (char c : input)
            if (c != '\r') text += c;
        std::string expected = text;
        if (!expected.empty() && expected.back() != '\n') expected += '\n';
        FUZZ_CHECK(data_round_trip(text, text.size() + 100) == expected);
        FUZZ_CHECK(data_round_trip(text, 1 + size % 5) == expected);
    }

    // Bracketed paths parse back to themselves.
    std::string why;
    if (auto p = lmtp::parse_path(input, &why); p && !input.empty() && input.front() == '<') {
        std::string again = "<" + p->address + ">" + (p->params.empty() ? "" : " " + p->params);
        auto q = lmtp::parse_path(again, &why);
        FUZZ_CHECK(q && q->address == p->address && q->params == p->params);
    }
    return 0;
}
