// fuzz_imap - the IMAP client codec the mailgrid admin command talks to
// Cyrus with: server responses split into whole responses, astrings.
//
// Invariants:
//  * next_response never reads past the buffer (each response is parsed
//    again from an exactly-sized heap copy, so ASan sees any overread);
//    consumed stays within the buffer and is at least one CRLF;
//  * a Complete response parses the same alone as with the bytes after it,
//    and every strict prefix of it is Incomplete;
//  * the stream gives the same responses and end state whole or fed in 1-3
//    byte fragments, and taking it response by response terminates;
//  * a response's tag holds no space, its status is one of OK NO BAD
//    PREAUTH BYE or empty (always empty for "+"), its text no CRLF; raw is
//    exactly the consumed bytes, and literals(raw) are views inside it, in
//    order, each right after a CRLF;
//  * quote() refuses exactly CR, LF, NUL and 8-bit bytes; an atom is the
//    input itself with no special characters, a quoted string unescapes to
//    the input; command() with such arguments is one tagged line.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "proto/imap.hpp"

using namespace mailgrid;

namespace {

struct Seen {
    std::string tag, status, text, raw;
    std::size_t consumed;
    bool operator==(const Seen&) const = default;
};

Seen seen(const imap::Response& r) { return {r.tag, r.status, r.text, r.raw, r.consumed}; }

// next_response on an exactly-sized heap copy of s.
imap::Parse parse_copy(std::string_view s, imap::Response& out) {
    std::unique_ptr<char[]> p(new char[s.size() ? s.size() : 1]);
    if (!s.empty()) std::memcpy(p.get(), s.data(), s.size());
    return imap::next_response(std::string_view(p.get(), s.size()), out);
}

void check_response(std::string_view buf, const imap::Response& r) {
    FUZZ_CHECK(r.consumed >= 2 && r.consumed <= buf.size());
    FUZZ_CHECK(buf.substr(r.consumed - 2, 2) == "\r\n");
    FUZZ_CHECK(r.tag.find(' ') == std::string::npos);
    FUZZ_CHECK(r.text.find("\r\n") == std::string::npos);
    FUZZ_CHECK(r.status.empty() || r.status == "OK" || r.status == "NO" || r.status == "BAD" ||
               r.status == "PREAUTH" || r.status == "BYE");
    if (r.tag == "+") FUZZ_CHECK(r.status.empty());
    FUZZ_CHECK(buf.substr(0, r.tag.size()) == r.tag);
    // The first line is tag [SP status] [SP text].
    auto eol = buf.find("\r\n");
    FUZZ_CHECK(eol != std::string_view::npos && eol + 2 <= r.consumed);
    FUZZ_CHECK(r.tag.size() + r.text.size() + (r.status.empty() ? 0 : r.status.size() + 1) <= eol + 1);
    FUZZ_CHECK(buf.substr(eol - r.text.size(), r.text.size()) == r.text);
    // raw is the whole response; its literals lie inside it, in order.
    FUZZ_CHECK(r.raw == buf.substr(0, r.consumed));
    const char* after = r.raw.data();
    for (auto lit : imap::literals(r.raw)) {
        FUZZ_CHECK(lit.data() >= after && lit.data() + lit.size() <= r.raw.data() + r.raw.size());
        FUZZ_CHECK(lit.data() >= r.raw.data() + 2 && std::string_view(lit.data() - 2, 2) == "\r\n");
        after = lit.data() + lit.size();
    }

    // Alone, without what follows: the same response.
    std::string_view alone = buf.substr(0, r.consumed);
    imap::Response a;
    FUZZ_CHECK(parse_copy(alone, a) == imap::Parse::Complete);
    FUZZ_CHECK(seen(a) == seen(r));
    // Any strict prefix is incomplete (a few of them, the fuzzer picks).
    std::size_t step = alone.size() / 7 + 1;
    for (std::size_t n = 0; n < alone.size(); n += step) {
        imap::Response p;
        FUZZ_CHECK(parse_copy(alone.substr(0, n), p) == imap::Parse::Incomplete);
    }
    imap::Response p;
    FUZZ_CHECK(parse_copy(alone.substr(0, alone.size() - 1), p) == imap::Parse::Incomplete);
}

// Takes every response from buf; the state that ended it.
imap::Parse drain(std::string_view& buf, std::vector<Seen>& out, bool check) {
    for (;;) {
        imap::Response r;
        auto st = imap::next_response(buf, r);
        if (st != imap::Parse::Complete) return st;
        FUZZ_CHECK(r.consumed >= 2 && r.consumed <= buf.size());
        if (check) check_response(buf, r);
        out.push_back(seen(r));
        buf.remove_prefix(r.consumed);
    }
}

bool needs_literal(std::string_view s) {
    for (unsigned char c : s)
        if (c == 0 || c == '\r' || c == '\n' || c >= 0x80) return true;
    return false;
}

bool special(unsigned char c) {
    return c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '{' || c == '%' || c == '*' || c == '"' ||
           c == '\\' || c == ']';
}

void check_quote(std::string_view arg) {
    auto q = imap::quote(arg);
    FUZZ_CHECK(q.has_value() == !needs_literal(arg));
    if (!q) return;
    FUZZ_CHECK(!q->empty());
    if (q->front() != '"') {
        FUZZ_CHECK(*q == arg);
        for (unsigned char c : *q) FUZZ_CHECK(!special(c));
        return;
    }
    FUZZ_CHECK(q->size() >= 2 && q->back() == '"');
    std::string un;
    for (std::size_t i = 1; i + 1 < q->size(); ++i) {
        char c = (*q)[i];
        FUZZ_CHECK(c != '"');
        if (c == '\\') {
            ++i;
            FUZZ_CHECK(i + 1 < q->size());
            FUZZ_CHECK((*q)[i] == '"' || (*q)[i] == '\\');
            c = (*q)[i];
        }
        un += c;
    }
    FUZZ_CHECK(un == arg);
}

void check_command(std::string_view input) {
    // Arguments: the input split at every 0x01 byte.
    std::vector<std::string> args;
    std::size_t start = 0;
    for (;;) {
        auto pos = input.find('\x01', start);
        args.emplace_back(input.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
        if (pos == std::string_view::npos) break;
        start = pos + 1;
    }
    std::string expect = "A1 SETQUOTA";
    bool ok = true;
    for (const auto& a : args) {
        check_quote(a);
        auto q = imap::quote(a);
        if (!q) ok = false;
        else expect += ' ' + *q;
    }
    auto cmd = imap::command("A1", "SETQUOTA", args);
    FUZZ_CHECK(cmd.has_value() == ok);
    if (!cmd) return;
    FUZZ_CHECK(*cmd == expect + "\r\n");
    // One line: read as a response it is one whole tagged line, unless
    // it ends in '}' (an atom may hold '}', and a '{' in an earlier quoted
    // argument would make it look like a literal announcement).
    if (expect.back() == '}') return;
    imap::Response r;
    FUZZ_CHECK(imap::next_response(*cmd, r) == imap::Parse::Complete);
    FUZZ_CHECK(r.consumed == cmd->size() && r.tag == "A1" && r.status.empty());
    FUZZ_CHECK(r.text == expect.substr(3));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);

    // tokens(): every word is a piece of the line (quoted strings are
    // shorter once unquoted), and there are no more words than bytes.
    {
        auto words = imap::tokens(input);
        FUZZ_CHECK(words.size() <= input.size());
        std::size_t total = 0;
        for (const auto& w : words) total += w.size();
        FUZZ_CHECK(total <= input.size());
    }

    std::vector<Seen> whole;
    std::string_view rest = input;
    auto end_whole = drain(rest, whole, true);

    std::vector<Seen> pieces;
    std::string buf;
    imap::Parse end_pieces = imap::Parse::Incomplete;
    fuzz::for_each_fragment(input, [&](std::string_view frag) {
        if (end_pieces == imap::Parse::Invalid) return;
        buf.append(frag);
        std::string_view v = buf;
        end_pieces = drain(v, pieces, false);
        buf.erase(0, buf.size() - v.size());
    });
    FUZZ_CHECK(whole == pieces);
    FUZZ_CHECK(end_whole == end_pieces);

    check_quote(input);
    check_command(input);
    return 0;
}
