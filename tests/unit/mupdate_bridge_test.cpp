// Unit tests of mupdate_bridge's pure parts: the MUPDATE codec (against
// lines from the transcripts of a real Cyrus 3.6 murder), Cyrus's mailbox
// order, the in-memory mailbox list and its store records, and the bridge's
// write policy.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include "location/mailbox_list.hpp"
#include "location/store.hpp"
#include "policy.hpp"
#include "proto/mupdate.hpp"

using namespace mailgrid;
using mupdate::Event;
using mupdate::Line;

namespace {

// Every event of a stream fed whole, and fed one byte at a time (Continue
// events dropped: only the byte-at-a-time feed waits for them).
std::vector<Event> events(std::string_view wire, bool bytewise, bool server_side = true,
                          std::size_t* continues = nullptr) {
    mupdate::Reader r(server_side);
    std::vector<Event> out;
    std::string buf;
    auto drain = [&] {
        for (;;) {
            std::size_t used = 0;
            auto e = r.next(buf, used);
            buf.erase(0, used);
            if (!e) return;
            if (e->kind == Event::Kind::Continue) {
                if (continues) ++*continues;
                return;
            }
            out.push_back(*e);
            if (e->kind == Event::Kind::Error && e->fatal) return;
        }
    };
    if (bytewise) {
        for (char c : wire) {
            buf.push_back(c);
            drain();
        }
    } else {
        buf.assign(wire);
        drain();
    }
    return out;
}

Line line(std::string tag, std::string word, std::vector<std::string> args) {
    return Line{std::move(tag), std::move(word), std::move(args)};
}

}  // namespace

TEST_CASE("mupdate: commands as Cyrus's client sends them (literals everywhere)") {
    // transcripts/mupdate-live-ops.txt, connection #3
    std::string wire =
        "A01 AUTHENTICATE \"PLAIN\" {24+}\r\nAG11cGRhdGUAbXVwZGF0ZXB3\r\n"
        "X0 RESERVE {10+}\r\nuser.alice {23+}\r\n127.0.0.1:21143!default\r\n"
        "X1 ACTIVATE {10+}\r\nuser.alice {23+}\r\n127.0.0.1:21143!default {21+}\r\nalice\tlrswipkxtecdan\t\r\n"
        "Q01 LOGOUT\r\n";
    for (bool bytewise : {false, true}) {
        auto ev = events(wire, bytewise);
        REQUIRE(ev.size() == 4);
        CHECK(ev[0].line == line("A01", "AUTHENTICATE", {"PLAIN", "AG11cGRhdGUAbXVwZGF0ZXB3"}));
        CHECK(ev[1].line == line("X0", "RESERVE", {"user.alice", "127.0.0.1:21143!default"}));
        CHECK(ev[2].line == line("X1", "ACTIVATE", {"user.alice", "127.0.0.1:21143!default", "alice\tlrswipkxtecdan\t"}));
        CHECK(ev[3].line == line("Q01", "LOGOUT", {}));
    }
}

TEST_CASE("mupdate: mupdatetest's quoted strings, atoms, bare LF and lower case words") {
    std::string wire = "L1 list\nF1 FIND \"user.alice\"\r\nF2 find user.x \r\nF3 FIND \"a \\\"q\\\" \\\\b\"\r\n\r\n\nN1 NOOP\r\n";
    auto ev = events(wire, false);
    REQUIRE(ev.size() == 5);
    CHECK(ev[0].line == line("L1", "LIST", {}));
    CHECK(ev[1].line == line("F1", "FIND", {"user.alice"}));
    CHECK(ev[2].kind == Event::Kind::Error);  // trailing space
    CHECK(ev[2].tag == "F2");
    CHECK(ev[3].line == line("F3", "FIND", {"a \"q\" \\b"}));
    CHECK(ev[4].line == line("N1", "NOOP", {}));
    CHECK(events(wire, true) == ev);
}

TEST_CASE("mupdate: a synchronising literal waits for + go ahead") {
    mupdate::Reader r;
    std::string buf = "X1 FIND {10}\r\n";
    std::size_t used = 99;
    auto e = r.next(buf, used);
    REQUIRE(e);
    CHECK(e->kind == Event::Kind::Continue);
    CHECK(used == 0);
    CHECK_FALSE(r.next(buf, used));  // asked once only
    buf += "user.alice\r\n";
    e = r.next(buf, used);
    REQUIRE(e);
    CHECK(e->line == line("X1", "FIND", {"user.alice"}));
    CHECK(used == buf.size());
    // Without the server side (a client reading responses) nobody waits.
    mupdate::Reader client(false);
    std::string resp = "U01 MAILBOX {3}\r\nabc {1}\r\nx {0}\r\n\r\n";
    e = client.next(resp, used);
    REQUIRE(e);
    CHECK(e->line == line("U01", "MAILBOX", {"abc", "x", ""}));
}

TEST_CASE("mupdate: bad commands get BAD with their tag and never desynchronise the next ones") {
    std::string wire =
        "A1 FIND {5+}\r\nab\r\nc \"unterminated\r\n"   // bad quoted string after a literal
        "A2 FROB {4+}\r\nxy\r\n extra\r\n"                 // unknown words are parsed; the bridge refuses them
        "A3 FIND \"x\" {70000+}\r\n" + std::string(70000, 'z') + "\r\n"  // literal too large, skipped
        "A4 FIND \"ok\"\r\n"
        "A5 FIND {99999999999}\r\n"                                         // too large, sync: no data follows
        "A6 FIND \"after\"\r\n"
        "\"bad tag\r\n"
        "A7\r\n"
        "A8 \r\n"
        "A9 NOOP\r\n";
    for (bool bytewise : {false, true}) {
        auto ev = events(wire, bytewise);
        std::vector<std::string> seen;
        for (const auto& e : ev)
            seen.push_back(e.kind == Event::Kind::Line ? e.line.tag + " " + e.line.word
                                                       : "BAD " + e.tag + " " + e.message);
        CHECK(seen == std::vector<std::string>{
                          "BAD A1 Badly formed arguments", "A2 FROB", "BAD A3 Literal too large", "A4 FIND",
                          "BAD A5 Literal too large", "A6 FIND", "BAD * Need command", "BAD A7 Need command",
                          "BAD A8 Null command", "A9 NOOP"});
    }
}

TEST_CASE("mupdate: limits") {
    auto ev = events(std::string(100, 'T') + " NOOP\r\nA1 NOOP\r\n", false);
    REQUIRE(ev.size() == 2);
    CHECK(ev[0].message == "Tag too long");
    CHECK(ev[1].line.tag == "A1");
    std::string long_line = "A2 FIND " + std::string(mupdate::kMaxLine + 10, 'x') + "\r\nA3 NOOP\r\n";
    for (bool bytewise : {false, true}) {
        ev = events(long_line, bytewise);
        REQUIRE(ev.size() == 2);
        CHECK(ev[0].tag == "A2");
        CHECK(ev[0].message == "Command too long");
        CHECK(ev[1].line.tag == "A3");
    }
    // A huge non-synchronising literal cannot be followed: fatal.
    ev = events("A4 FIND {900000000+}\r\nxxxx", false);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].fatal);
    // A huge synchronising one gets no go-ahead, so nothing follows it.
    std::size_t continues = 0;
    ev = events("A5 FIND {900000000}\r\nA6 NOOP\r\n", true, true, &continues);
    REQUIRE(ev.size() == 2);
    CHECK_FALSE(ev[0].fatal);
    CHECK(continues == 0);
    CHECK(ev[1].line.tag == "A6");
    std::string args = "A7 UPDATE";
    for (int i = 0; i < 41; ++i) args += " h" + std::to_string(i);
    ev = events(args + "\r\n", false);
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].message == "Extra arguments");
}

TEST_CASE("mupdate: responses round-trip through the reader") {
    std::string out;
    mupdate::append_mailbox(out, "U01", "user.alice.My Stuff", "127.0.0.1:21143!default", "alice\tlrswipkxtecdan\t");
    mupdate::append_reserve(out, "U01", "user.bob", "mail2!");
    mupdate::append_delete(out, "U01", "user.alice.Projects");
    mupdate::append_status(out, "U01", "OK", "streaming starts");
    mupdate::append_status(out, "X1", "NO", "bad \"text\"\r\n\x01");
    // Byte for byte what Cyrus sends (transcripts/mupdate-slave-update.txt).
    CHECK(out.substr(0, out.find("U01 RESERVE")) ==
          "U01 MAILBOX {19+}\r\nuser.alice.My Stuff {23+}\r\n127.0.0.1:21143!default {21+}\r\nalice\tlrswipkxtecdan\t\r\n");
    auto ev = events(out, true, false);
    REQUIRE(ev.size() == 5);
    CHECK(ev[0].line == line("U01", "MAILBOX", {"user.alice.My Stuff", "127.0.0.1:21143!default", "alice\tlrswipkxtecdan\t"}));
    CHECK(ev[1].line == line("U01", "RESERVE", {"user.bob", "mail2!"}));
    CHECK(ev[2].line == line("U01", "DELETE", {"user.alice.Projects"}));
    CHECK(ev[3].line == line("U01", "OK", {"streaming starts"}));
    CHECK(ev[4].line == line("X1", "NO", {"bad ?text????"}));
    auto cmd = mupdate::command("X3", "ACTIVATE", {"user.a", "s!p", ""});
    CHECK(cmd == "X3 ACTIVATE {6+}\r\nuser.a {3+}\r\ns!p {0+}\r\n\r\n");
    CHECK(events(cmd, false)[0].line == line("X3", "ACTIVATE", {"user.a", "s!p", ""}));
}

TEST_CASE("mupdate: the banner as Cyrus clients read it") {
    auto b = mupdate::banner({"PLAIN"}, false, "mupdate.example.net", "mailgrid mupdate_bridge", "0.1.0", "(master)");
    CHECK(b == "* AUTH \"PLAIN\"\r\n* PARTIAL-UPDATE\r\n* OK MUPDATE \"mupdate.example.net\" \"mailgrid mupdate_bridge\" "
               "\"0.1.0\" \"(master)\"\r\n");
    CHECK(mupdate::banner({}, true, "m", "i", "v", "(master)").rfind("* AUTH\r\n* STARTTLS\r\n", 0) == 0);
    auto ev = events(b, false, false);
    REQUIRE(ev.size() == 3);
    CHECK(ev[0].line == line("*", "AUTH", {"PLAIN"}));
    CHECK(ev[2].line.args.size() == 5);  // MUPDATE and the four strings
}

TEST_CASE("mupdate: text lines of a SASL exchange") {
    std::size_t used;
    bool too_long;
    CHECK_FALSE(mupdate::next_text_line("abc", used, 10, &too_long));
    CHECK(mupdate::next_text_line("abc\r\nx", used, 10, &too_long) == "abc");
    CHECK(used == 5);
    CHECK(mupdate::next_text_line("\r\n", used, 10, &too_long) == "");
    CHECK(mupdate::next_text_line(std::string(20, 'a') + "\n", used, 10, &too_long) == "");
    CHECK(too_long);
}

TEST_CASE("mupdate: Cyrus's mailbox order ('.' sorts as 0x1F)") {
    // The order of `LIST` in transcripts/mupdate-initial-push.txt.
    std::vector<std::string> cyrus = {"DELETED.user.alice.Archive.6B04833E", "user.alice", "user.alice.Entw&APw-rfe",
                                      "user.alice.My Stuff", "user.alice.Sent", "user.alice.ViaFrontend",
                                      "user.alice-x", "user.carol", "user.robert"};
    auto shuffled = cyrus;
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(7));
    std::sort(shuffled.begin(), shuffled.end(), [](const std::string& a, const std::string& b) {
        return mupdate::cyrus_less(a, b);
    });
    CHECK(shuffled == cyrus);
    auto plain = cyrus;
    std::sort(plain.begin(), plain.end());
    CHECK(plain != cyrus);  // strcmp puts user.alice-x before user.alice.Sent
    CHECK(mupdate::name_from_sort_key(mupdate::sort_key("a.b.c")) == "a.b.c");
}

TEST_CASE("mailbox list: order, per-server index, resumable visits") {
    location::MailboxList l;
    auto mb = [](std::string loc, std::string acl = "a\tlr\t") { return location::Mailbox{true, loc, acl}; };
    l.set("user.robert", mb("s1!default"));
    l.set("user.alice-x", mb("s1!default"));
    l.set("user.alice.Sent", mb("s1!default"));
    l.set("user.carol", mb("s2!default"));
    l.set("user.alice", mb("s1!default"));
    l.set("user.dave", location::Mailbox{false, "s2!", ""});
    CHECK(l.size() == 6);
    CHECK(l.active() == 5);
    CHECK(l.count_on_server("s1") == 4);
    std::vector<std::string> names;
    std::string after;
    while (l.visit(after, "", nullptr, 2, [&](const std::string& n, const location::Mailbox&) { names.push_back(n); })) {
    }
    CHECK(names == std::vector<std::string>{"user.alice", "user.alice.Sent", "user.alice-x", "user.carol", "user.dave",
                                            "user.robert"});
    names.clear();
    after.clear();
    l.visit(after, "s2!", nullptr, 100, [&](const std::string& n, const location::Mailbox&) { names.push_back(n); });
    CHECK(names == std::vector<std::string>{"user.carol", "user.dave"});
    names.clear();
    after.clear();
    l.visit(after, "s2!default", nullptr, 100, [&](const std::string& n, const location::Mailbox&) { names.push_back(n); });
    CHECK(names == std::vector<std::string>{"user.carol"});
    names.clear();
    after.clear();
    std::set<std::string> only{"s2"};
    l.visit(after, "", &only, 100, [&](const std::string& n, const location::Mailbox&) { names.push_back(n); });
    CHECK(names == std::vector<std::string>{"user.carol", "user.dave"});
    // A move between servers re-indexes; resuming after a deleted key works.
    auto old = l.set("user.carol", mb("s1!other"));
    REQUIRE(old);
    CHECK(old->location == "s2!default");
    CHECK(l.count_on_server("s2") == 1);
    after = mupdate::sort_key("user.alice.Sent");
    l.erase("user.alice.Sent");
    names.clear();
    l.visit(after, "s1!", nullptr, 100, [&](const std::string& n, const location::Mailbox&) { names.push_back(n); });
    CHECK(names == std::vector<std::string>{"user.alice-x", "user.carol", "user.robert"});
    CHECK(l.erase("user.nosuch") == std::nullopt);
    CHECK(l.servers() == std::vector<std::pair<std::string, std::size_t>>{{"s1", 4}, {"s2", 1}});
}

TEST_CASE("mailbox list: records, names, users") {
    location::Mailbox m{true, "mail1:2143!default", "alice\tlrswipkxtecdan\tbob\tlrs\t"};
    CHECK(location::decode(location::encode(m)) == m);
    location::Mailbox r{false, "mail1!", ""};
    CHECK(location::decode(location::encode(r)) == r);
    CHECK_FALSE(location::decode(""));
    CHECK_FALSE(location::decode("A99:short"));
    CHECK_FALSE(location::decode("Xfoo"));
    CHECK(location::location_server("mail1:2143!default") == "mail1:2143");
    CHECK(location::location_server("default") == "default");
    CHECK(location::inbox_user("user.alice") == "alice");
    CHECK(location::inbox_user("user.john^doe") == "john.doe");
    CHECK(location::inbox_user("example.com!user.alice") == "alice@example.com");
    CHECK_FALSE(location::inbox_user("user.alice.Sent"));
    CHECK_FALSE(location::inbox_user("DELETED.user.alice.6B04833E"));
    CHECK_FALSE(location::inbox_user("shared.folder"));
    CHECK_FALSE(location::inbox_user("user."));
    CHECK(location::user_inbox("john.doe@example.com") == "example.com!user.john^doe");
    CHECK(location::user_inbox("alice") == "user.alice");
    CHECK(location::valid_name("user.alice.My Stuff"));
    CHECK_FALSE(location::valid_name("user.a\x1f" "b"));
    CHECK_FALSE(location::valid_name(""));
    CHECK_FALSE(location::valid_name(std::string(600, 'a')));
    CHECK(location::valid_location("127.0.0.1:21143!"));
    CHECK_FALSE(location::valid_location("a!b!c"));
    CHECK(location::valid_acl("alice\tlrs\t"));
    CHECK_FALSE(location::valid_acl(std::string("a\0b", 3)));
    location::Change c{"user.alice", m, std::nullopt};
    auto u = location::user_change(c);
    REQUIRE(u);
    CHECK(u->user == "alice");
    CHECK(u->server == "mail1:2143");
    c.value = r;
    CHECK(location::user_change(c)->server == std::nullopt);
    c.name = "user.alice.Sent";
    CHECK_FALSE(location::user_change(c));
}

TEST_CASE("bridge policy: a mailbox belongs to the server in its location") {
    using bridge::Decision;
    using bridge::Op;
    bridge::Writer shared{"mupdate", true, {}};
    bridge::Writer mail1{"mail1", true, {"mail1"}};
    location::Mailbox held{true, "mail1!default", "alice\tlrs\t"};
    auto kind = [](const Decision& d) { return d.kind; };

    // Creating: RESERVE then ACTIVATE on one's own server.
    CHECK(kind(bridge::decide(Op::Reserve, "user.a", "mail1!default", "", nullptr, shared)) == Decision::Kind::Apply);
    CHECK(kind(bridge::decide(Op::Activate, "user.a", "mail1!default", "a\tlrs\t", nullptr, shared)) == Decision::Kind::Apply);
    // The same ACTIVATE again changes nothing; a new ACL does.
    CHECK(kind(bridge::decide(Op::Activate, "user.alice", "mail1!default", "alice\tlrs\t", &held, shared)) ==
          Decision::Kind::Unchanged);
    CHECK(kind(bridge::decide(Op::Activate, "user.alice", "mail1!default", "alice\tlrs\tbob\tl\t", &held, shared)) ==
          Decision::Kind::Apply);
    // A rename's empty partition on the same server is accepted.
    CHECK(kind(bridge::decide(Op::Activate, "user.alice", "mail1!", "alice\tlrs\t", &held, shared)) == Decision::Kind::Apply);

    // Another server claiming it: refused and logged, never overwritten.
    auto d = bridge::decide(Op::Activate, "user.alice", "mail2!default", "x\tlrs\t", &held, shared);
    CHECK(d.kind == Decision::Kind::Refuse);
    CHECK(d.conflict);
    CHECK(d.reply == "mailbox is held by mail1");
    CHECK(d.why.find("mail2") != std::string::npos);
    d = bridge::decide(Op::Reserve, "user.alice", "mail2!default", "", &held, shared);
    CHECK(d.kind == Decision::Kind::Refuse);
    CHECK(d.reply == "mailbox already exists");
    CHECK(kind(bridge::decide(Op::Reserve, "user.alice", "mail1!default", "", &held, shared)) == Decision::Kind::Unchanged);
    // ... unless the holder moves it (XFER): a writer bound to mail1 may.
    CHECK(kind(bridge::decide(Op::Activate, "user.alice", "mail2!default", "alice\tlrs\t", &held, mail1)) ==
          Decision::Kind::Apply);
    // A bound writer writes for its own servers only.
    bridge::Writer mail2{"mail2", true, {"mail2"}};
    CHECK(kind(bridge::decide(Op::Activate, "user.b", "mail1!default", "", nullptr, mail2)) == Decision::Kind::Refuse);
    CHECK(kind(bridge::decide(Op::Delete, "user.alice", "", "", &held, mail2)) == Decision::Kind::Refuse);
    CHECK(kind(bridge::decide(Op::Delete, "user.alice", "", "", &held, mail1)) == Decision::Kind::Apply);

    // DELETE of an unknown name is OK (Cyrus aborts a local delete otherwise).
    CHECK(kind(bridge::decide(Op::Delete, "user.nosuch", "", "", nullptr, shared)) == Decision::Kind::Unchanged);
    // DEACTIVATE: only what is active.
    CHECK(kind(bridge::decide(Op::Deactivate, "user.nosuch", "mail1!default", "", nullptr, shared)) == Decision::Kind::Refuse);
    d = bridge::decide(Op::Deactivate, "user.alice", "mail1!default", "", &held, shared);
    REQUIRE(d.kind == Decision::Kind::Apply);
    CHECK_FALSE(d.value->active);
}

TEST_CASE("bridge policy: identities and the push guard") {
    auto ids = bridge::parse_identities({"mupdate", "mail1=mail1.example.com", "mail1=mail1b"}, {"frontend"});
    REQUIRE(ids.size() == 3);
    CHECK(ids["mail1"].servers == std::vector<std::string>{"mail1.example.com", "mail1b"});
    CHECK(ids["mupdate"].may_write);
    CHECK_FALSE(ids["frontend"].may_write);
    CHECK(bridge::find_identity(ids, "mupdate@realm") == &ids["mupdate"]);
    CHECK(bridge::find_identity(ids, "nobody") == nullptr);
    CHECK_THROWS(bridge::parse_identities({"=x"}, {}));
    CHECK_THROWS(bridge::parse_identities({}, {"frontend=x"}));

    bridge::PushGuard g(0.10, 3);
    CHECK(g.allow_delete("mail1"));  // no push in this session: a live delete
    g.listed("mail1", 100);
    CHECK(g.limit("mail1") == 10);
    for (int i = 0; i < 10; ++i) {
        CHECK(g.allow_delete("mail1"));
        g.deleted("user.u" + std::to_string(i), location::Mailbox{true, "mail1!default", ""});
    }
    CHECK_FALSE(g.allow_delete("mail1"));
    CHECK_FALSE(g.allow_delete("mail1"));  // stays refused for this session
    auto undo = g.take_deleted("mail1");
    CHECK(undo.size() == 10);
    CHECK(g.take_deleted("mail1").empty());
    g.listed("small", 5);
    CHECK(g.limit("small") == 3);  // the floor
}
