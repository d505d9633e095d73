// fuzz_mupdate - the MUPDATE codec (commands and responses), Cyrus's
// mailbox order and the mailbox list's store records.
//
// Invariants:
//  * a byte stream gives the same lines and errors whole or in 1-3 byte
//    fragments; consumed never passes the buffer; nothing follows a fatal
//    error;
//  * every line has an atom tag, an upper-case word and at most kMaxArgs
//    arguments of at most kMaxLiteral bytes, and re-encoding it as Cyrus's
//    client would (all literals) parses back to the same line, exactly;
//  * MAILBOX / RESERVE / DELETE / status responses built from any strings
//    parse back (status texts as their sanitised, single-line form);
//  * sort keys round-trip and order names as cyrus_less does; the mailbox
//    list visits names in that order; store records round-trip.
#include <algorithm>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "location/mailbox_list.hpp"
#include "proto/mupdate.hpp"

using namespace mailgrid;
using mupdate::Event;

namespace {

struct Feed {
    std::vector<Event> events;
    bool fatal = false;
};

// Takes every event from buf; true if a fatal error ended the stream.
bool drain(mupdate::Reader& r, std::string_view& buf, Feed& out) {
    for (;;) {
        std::size_t consumed = 7777;
        auto e = r.next(buf, consumed);
        FUZZ_CHECK(consumed <= buf.size());
        buf.remove_prefix(consumed);
        if (!e) return false;
        // The peer waits for "+ go ahead" (consumed may hold the rest of
        // an earlier bad command, skipped).
        if (e->kind == Event::Kind::Continue) return false;
        out.events.push_back(*e);
        if (e->kind == Event::Kind::Error && e->fatal) {
            out.fatal = true;
            return true;
        }
    }
}

std::optional<mupdate::Line> parse_one(std::string_view wire, bool server_side) {
    mupdate::Reader r(server_side);
    std::size_t consumed = 0;
    auto e = r.next(wire, consumed);
    if (!e || e->kind != Event::Kind::Line || consumed != wire.size()) return std::nullopt;
    return e->line;
}

void check_line(const mupdate::Line& l) {
    FUZZ_CHECK(mupdate::is_atom(l.tag));
    FUZZ_CHECK(!l.word.empty());
    for (char c : l.word) FUZZ_CHECK(!(c >= 'a' && c <= 'z'));
    FUZZ_CHECK(l.args.size() <= mupdate::kMaxArgs);
    for (const auto& a : l.args) FUZZ_CHECK(a.size() <= mupdate::kMaxLiteral);

    // As Cyrus's client would send it: every argument a literal.
    auto wire = mupdate::command(l.tag, l.word, l.args);
    auto back = parse_one(wire, true);
    FUZZ_CHECK(back && *back == l);

    // Responses built from the same strings.
    std::string a0 = l.args.empty() ? std::string() : l.args[0];
    std::string a1 = l.args.size() > 1 ? l.args[1] : std::string();
    std::string a2 = l.args.size() > 2 ? l.args[2] : std::string();
    std::string out;
    mupdate::append_mailbox(out, l.tag, a0, a1, a2);
    auto m = parse_one(out, false);
    FUZZ_CHECK(m && m->tag == l.tag && m->word == "MAILBOX" && m->args == (std::vector<std::string>{a0, a1, a2}));
    out.clear();
    mupdate::append_reserve(out, l.tag, a0, a1);
    m = parse_one(out, false);
    FUZZ_CHECK(m && m->word == "RESERVE" && m->args == (std::vector<std::string>{a0, a1}));
    out.clear();
    mupdate::append_delete(out, l.tag, a0);
    m = parse_one(out, false);
    FUZZ_CHECK(m && m->word == "DELETE" && m->args == std::vector<std::string>{a0});
    auto st = mupdate::status(l.tag, "NO", a0);
    FUZZ_CHECK(st.find('\n') == st.size() - 1);
    m = parse_one(st, false);
    FUZZ_CHECK(m && m->word == "NO" && m->args.size() == 1 && m->args[0].size() == a0.size());
    for (char c : m->args[0]) FUZZ_CHECK(c >= 0x20 && c < 0x7f && c != '"' && c != '\\');
}

void check_order(const std::vector<std::string>& names) {
    location::MailboxList list;
    std::vector<std::string> valid;
    for (const auto& n : names) {
        FUZZ_CHECK(mupdate::cyrus_less(n, n) == false);
        if (n.find('\x1f') == std::string::npos) FUZZ_CHECK(mupdate::name_from_sort_key(mupdate::sort_key(n)) == n);
        if (!location::valid_name(n)) continue;
        valid.push_back(n);
        list.set(n, location::Mailbox{n.size() % 2 == 0, "s" + std::to_string(n.size() % 3) + "!p", n});
    }
    std::sort(valid.begin(), valid.end(), [](const std::string& a, const std::string& b) { return mupdate::cyrus_less(a, b); });
    valid.erase(std::unique(valid.begin(), valid.end()), valid.end());
    for (std::size_t i = 1; i < valid.size(); ++i)
        FUZZ_CHECK((mupdate::sort_key(valid[i - 1]) < mupdate::sort_key(valid[i])));
    std::vector<std::string> seen;
    std::string after;
    while (list.visit(after, "", nullptr, 3, [&](const std::string& n, const location::Mailbox& m) {
        seen.push_back(n);
        FUZZ_CHECK(location::decode(location::encode(m)) == m);
    })) {
    }
    FUZZ_CHECK(seen == valid);
    FUZZ_CHECK(list.size() == valid.size());
    std::size_t on_servers = 0;
    for (const auto& [server, n] : list.servers()) on_servers += n;
    FUZZ_CHECK(on_servers == valid.size());
    for (const auto& n : valid) FUZZ_CHECK(list.erase(n).has_value());
    FUZZ_CHECK(list.size() == 0 && list.servers().empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);
    for (bool server_side : {true, false}) {
        Feed whole;
        {
            mupdate::Reader r(server_side);
            std::string_view rest = input;
            drain(r, rest, whole);
        }
        Feed pieces;
        {
            mupdate::Reader r(server_side);
            std::string buf;
            bool stop = false;
            fuzz::for_each_fragment(input, [&](std::string_view frag) {
                if (stop) return;
                buf.append(frag);
                std::string_view v = buf;
                stop = drain(r, v, pieces);
                buf.erase(0, buf.size() - v.size());
            });
        }
        FUZZ_CHECK(whole.events == pieces.events);
        FUZZ_CHECK(whole.fatal == pieces.fatal);
        if (server_side) {
            std::vector<std::string> names;
            for (const auto& e : whole.events) {
                if (e.kind == Event::Kind::Line) {
                    check_line(e.line);
                    for (const auto& a : e.line.args) names.push_back(a);
                } else {
                    FUZZ_CHECK(!e.message.empty() && !e.tag.empty());
                }
            }
            check_order(names);
        }
    }
    return 0;
}
