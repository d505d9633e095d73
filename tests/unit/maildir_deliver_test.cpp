// maildir_deliver_test - Maildir++ names and layout, the maildirsize rules,
// the LMTP server codec, safe delivery into a real temporary Maildir, the
// deliver_* directory query, and maildir_deliver's address checks and
// outcomes.
#include <doctest/doctest.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "config/suite_ldap.hpp"
#include "cli.hpp"
#include "command_line.hpp"
#include "delivery_journal.hpp"
#include "mail/maildir.hpp"
#include "mail/maildir_name.hpp"
#include "mail/maildirsize.hpp"
#include "mailbox.hpp"
#include "proto/lmtp.hpp"

using namespace mailgrid;

namespace {

// A temporary directory, removed with everything in it.
struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/mailgrid-unit-maildir-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
    std::string operator/(const std::string& rel) const { return path + "/" + rel; }
};

std::vector<std::string> list(const std::string& dir) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (auto* e = ::readdir(d))
            if (e->d_name[0] != '.') out.emplace_back(e->d_name);
        ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void spit(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

maildir::Fd open_dir(const std::string& path) {
    auto o = maildir::open_root(path);
    REQUIRE(o);
    return std::move(o.fd);
}

// dir/md made into an empty Maildir, open.
maildir::Fd new_maildir(const TempDir& dir) {
    ::mkdir((dir / "md").c_str(), 0700);
    auto md = open_dir(dir / "md");
    int e = 0;
    REQUIRE(maildir::make_maildir(md.get(), false, &e));
    return md;
}

// deliver_params() with these overrides.
SuiteConfig deliver_config(std::vector<std::string> overrides) {
    auto c = SuiteConfig::load("", overrides, false);
    c.declare(deliver_params());
    return c;
}

}  // namespace

// ---------------------------------------------------------------- names

TEST_CASE("maildir names: what may become a path component") {
    using maildir::component_problem;
    CHECK_FALSE(component_problem("alice", "user"));
    CHECK_FALSE(component_problem("j\xc3\xb6rg", "user"));
    CHECK_FALSE(component_problem("a..b", "user"));  // one component, harmless
    CHECK(*component_problem("", "user") == "user is empty");
    CHECK(component_problem(".", "user"));
    CHECK(component_problem("..", "user"));
    CHECK(*component_problem(".hidden", "user") == "user starts with '.'");
    CHECK(*component_problem("a/b", "user") == "user contains '/'");
    CHECK(*component_problem(std::string("a\0b", 3), "user") == "user contains a NUL byte");
    CHECK(*component_problem("a\nb", "user") == "user contains a control character");
    CHECK(component_problem("a\x7f", "user"));
    CHECK(component_problem("\xff\xfe", "user"));
    CHECK(*component_problem(std::string(300, 'a'), "user") == "user is longer than 255 bytes");
    CHECK_FALSE(component_problem(std::string(255, 'a'), "user"));
}

TEST_CASE("maildir names: extensions become Maildir++ folders") {
    std::string why;
    CHECK(maildir::folder_for_extension("lists", &why) == ".lists");
    CHECK(maildir::folder_for_extension("lists.debian", &why) == ".lists.debian");
    CHECK(maildir::folder_for_extension("a&b", &why) == ".a&-b");
    CHECK_FALSE(maildir::folder_for_extension("a..b", &why));
    CHECK(why == "extension contains \"..\"");
    CHECK_FALSE(maildir::folder_for_extension("a.", &why));
    CHECK_FALSE(maildir::folder_for_extension(".a", &why));
    CHECK_FALSE(maildir::folder_for_extension("a/b", &why));
    CHECK_FALSE(maildir::folder_for_extension("\xc3\xbc", &why));
    CHECK(why == "extension is not ASCII");
    CHECK_FALSE(maildir::folder_for_extension(std::string(255, 'x'), &why));
}

TEST_CASE("maildir layout: classic, stable:N and none") {
    std::string why;
    auto classic = maildir::Layout::parse("classic", &why);
    REQUIRE(classic);
    CHECK(maildir::mailbox_components(*classic, "alice", "example.com") ==
          std::vector<std::string>{"example.com", "al", "alice"});
    CHECK(maildir::hash_components(*classic, "a") == std::vector<std::string>{"a_"});
    CHECK(maildir::hash_components(*classic, "\xc3\xa9x") == std::vector<std::string>{"\xc3\xa9x"});
    CHECK(maildir::hash_components(*classic, "\xc3\xa9") == std::vector<std::string>{"\xc3\xa9_"});
    auto stable = maildir::Layout::parse("stable:2", &why);
    REQUIRE(stable);
    // FNV-1a 32 of "alice" is 0x872213e7: the layout must never change.
    CHECK(maildir::hash_components(*stable, "alice") == std::vector<std::string>{"87", "22"});
    auto none = maildir::Layout::parse("none", &why);
    REQUIRE(none);
    CHECK(maildir::mailbox_components(*none, "alice", "example.com") ==
          std::vector<std::string>{"example.com", "alice"});
    CHECK_FALSE(maildir::Layout::parse("stable:5", &why));
    CHECK_FALSE(maildir::Layout::parse("hashed", &why));
    CHECK(stable->describe() == "stable:2");
}

TEST_CASE("maildir paths from a directory attribute stay inside the store") {
    std::string why;
    CHECK(maildir::components_below("example.com/al/alice/", "/store", &why) ==
          std::vector<std::string>{"example.com", "al", "alice"});
    CHECK(maildir::components_below("/store/example.com//alice", "/store/", &why) ==
          std::vector<std::string>{"example.com", "alice"});
    CHECK_FALSE(maildir::components_below("/store2/alice", "/store", &why));
    CHECK(why.find("outside the store") != std::string::npos);
    CHECK_FALSE(maildir::components_below("/etc", "/store", &why));
    CHECK_FALSE(maildir::components_below("a/../../etc", "/store", &why));
    CHECK(why.find("\"..\"") != std::string::npos);
    CHECK_FALSE(maildir::components_below("a/.hidden", "/store", &why));
    CHECK_FALSE(maildir::components_below("/store", "/store", &why));
}

TEST_CASE("maildir file names: sizes, flags, unique names") {
    auto f = maildir::parse_file_name("1700000000.M1P2V3I4.host,S=1234,W=1260:2,FS");
    CHECK(f.base == "1700000000.M1P2V3I4.host");
    CHECK(f.size == 1234u);
    CHECK(f.vsize == 1260u);
    CHECK(f.has_info);
    CHECK(f.flags == "FS");
    CHECK(maildir::has_flag("x,S=1:2,FS", 'F'));
    CHECK_FALSE(maildir::has_flag("x,S=1:2,S", 'F'));
    CHECK_FALSE(maildir::has_flag("x.F", 'F'));
    CHECK_FALSE(maildir::parse_file_name("x,S=abc").size);
    CHECK_FALSE(maildir::parse_file_name("x").size);
    CHECK(maildir::safe_host("a/b:c,d") == "a\\057b\\072c\\054d");
    maildir::UniqueParts u{1700000000, 42, 99, 7, "mx"};
    CHECK(maildir::tmp_name(u) == "1700000000.M000042P99Q7.mx");
    auto fin = maildir::final_name(u, 0xfe00, 0xa7, 18, 21);
    CHECK(fin == "1700000000.M000042P99V000000000000FE00I00000000000000A7Q7.mx,S=18,W=21");
    CHECK(maildir::parse_file_name(fin).size == 18u);
    CHECK(maildir::crlf_size("a\nb\r\nc\n") == 9u);
    // W= counts a CR for each bare LF: at the start, in a row, at the end.
    CHECK(maildir::crlf_size("") == 0u);
    CHECK(maildir::crlf_size("no newline") == 10u);
    CHECK(maildir::crlf_size("\n") == 2u);
    CHECK(maildir::crlf_size("\r\n") == 2u);
    CHECK(maildir::crlf_size("\n\n\r\n\n") == 8u);
    CHECK(maildir::crlf_size("x\r") == 2u);
}

TEST_CASE("crlf_size agrees with a byte-by-byte count at every length and boundary") {
    // The count runs 16 bytes at a time and adds up every 127 blocks: CR
    // and LF on either side of a block edge, runs longer than a lane can
    // hold, and every tail length are where it could go wrong.
    auto reference = [](const std::string& m) {
        std::uint64_t n = m.size();
        for (std::size_t i = 0; i < m.size(); ++i)
            if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r')) ++n;
        return n;
    };
    std::uint32_t seed = 12345;
    auto next = [&seed] { return seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff; };
    const char alphabet[] = {'\n', '\r', 'a', '\n', '\r', '\n'};
    for (std::size_t len : {0, 1, 2, 15, 16, 17, 31, 32, 33, 2031, 2032, 2033, 2048, 4097, 40000}) {
        for (int round = 0; round < 20; ++round) {
            std::string m(len, 'x');
            for (auto& c : m) c = alphabet[next() % sizeof alphabet];
            CHECK_MESSAGE(maildir::crlf_size(m) == reference(m), "length ", len, " round ", round);
        }
        std::string lfs(len, '\n');
        CHECK(maildir::crlf_size(lfs) == 2 * len);
        std::string crlfs;
        while (crlfs.size() + 2 <= len) crlfs += "\r\n";
        CHECK(maildir::crlf_size(crlfs) == crlfs.size());
    }
}

// ---------------------------------------------------------------- maildirsize

TEST_CASE("maildirsize limits: Courier's and Dovecot's spellings") {
    using maildirsize::parse_limit;
    CHECK(parse_limit("1000000S,1000C") == maildirsize::Limit{1000000, 1000});
    CHECK(parse_limit("1000C,1000000S") == maildirsize::Limit{1000000, 1000});
    CHECK(parse_limit(" 1000S ") == maildirsize::Limit{1000, 0});
    CHECK(parse_limit("0S")->unlimited());
    CHECK(parse_limit("1073741824") == maildirsize::Limit{1073741824, 0});  // an LDAP attribute
    CHECK_FALSE(parse_limit("10X"));
    CHECK_FALSE(parse_limit("S"));
    CHECK_FALSE(parse_limit("1S,2S"));
    CHECK_FALSE(parse_limit(""));
    CHECK_FALSE(parse_limit("99999999999999999999S"));
    CHECK(maildirsize::format_limit({1000000, 1000}) == "1000000S,1000C");
    CHECK(maildirsize::format_limit({0, 10}) == "10C");
    CHECK(maildirsize::format_limit({}) == "0S");
}

TEST_CASE("maildirsize files as Courier's deliverquota and Dovecot write them") {
    // Courier pads to 12 (what deliverquota wrote in the lab), Dovecot not.
    auto courier = maildirsize::parse("1000S,10C\n           0            0\n          18            1\n");
    CHECK(courier.valid);
    CHECK(courier.limit == maildirsize::Limit{1000, 10});
    CHECK(courier.usage == maildirsize::Usage{18, 1});
    CHECK(courier.lines == 2);
    auto dovecot = maildirsize::parse("0S\n26 1\n-2048 -1\n\n4096 2\n");
    CHECK(dovecot.valid);
    CHECK(dovecot.usage == maildirsize::Usage{26 - 2048 + 4096, 2});
    CHECK(dovecot.lines == 3);
    CHECK(maildirsize::format_line(18, 1) == "          18            1\n");
    CHECK(maildirsize::format_line(-2048, -1) == "       -2048           -1\n");
    auto again = maildirsize::parse(maildirsize::format_file({5000, 0}, {1234, 5}));
    CHECK((again.valid && again.usage == maildirsize::Usage{1234, 5} && again.lines == 1));

    CHECK_FALSE(maildirsize::parse("").valid);
    CHECK_FALSE(maildirsize::parse("1000S").valid);             // no newline: torn
    CHECK_FALSE(maildirsize::parse("1000S\n18 1\n5").valid);    // torn append
    CHECK_FALSE(maildirsize::parse("1000S\n18\n").valid);       // one number
    CHECK_FALSE(maildirsize::parse("1000S\n18 1 7\n").valid);   // three
    CHECK_FALSE(maildirsize::parse("1000S\n1x 1\n").valid);
    CHECK_FALSE(maildirsize::parse("bogus\n18 1\n").valid);
    // Sums that would wrap are refused, not wrapped.
    CHECK_FALSE(maildirsize::parse("0S\n9223372036854775807 1\n1 1\n").valid);
    CHECK_FALSE(maildirsize::parse("0S\n99999999999999999999 1\n").valid);
}

TEST_CASE("maildirsize: when to count the Maildir again") {
    using maildirsize::recount_reason;
    maildirsize::FileState f;
    CHECK(recount_reason(f, std::nullopt, 10, 1));  // missing
    f.exists = true;
    f.parsed = maildirsize::parse("1000S\n500 1\n");
    f.size = 20;
    CHECK_FALSE(recount_reason(f, std::nullopt, 10, 1));
    CHECK_FALSE(recount_reason(f, maildirsize::Limit{1000, 0}, 10, 1));
    CHECK(recount_reason(f, maildirsize::Limit{2000, 0}, 10, 1));  // the directory changed it
    f.size = maildirsize::kRecountSize;
    CHECK(recount_reason(f, std::nullopt, 10, 1));
    f.size = 20;
    // Over quota with one line: trusted while fresh, recounted when stale.
    CHECK_FALSE(recount_reason(f, std::nullopt, 600, 1));
    f.age = std::chrono::minutes(16);
    CHECK(recount_reason(f, std::nullopt, 600, 1));
    f.age = std::chrono::seconds(0);
    f.parsed = maildirsize::parse("1000S\n500 1\n100 1\n");
    CHECK(recount_reason(f, std::nullopt, 600, 1));   // over, several lines
    CHECK_FALSE(recount_reason(f, std::nullopt, 10, 1));
    f.parsed = maildirsize::parse("1000S\n500 1\n-600 -2\n");
    CHECK(*recount_reason(f, std::nullopt, 10, 1) == "maildirsize sums to a negative usage");
    f.parsed = maildirsize::parse("1000S\n500 1\n-6");
    CHECK(recount_reason(f, std::nullopt, 10, 1));
}

TEST_CASE("maildirsize: exceeding a limit, at its edges") {
    using maildirsize::exceeds;
    CHECK_FALSE(exceeds({100, 0}, {90, 3}, 10, 1));
    CHECK(exceeds({100, 0}, {90, 3}, 11, 1));
    CHECK_FALSE(exceeds({0, 4}, {90, 3}, 1000, 1));
    CHECK(exceeds({0, 3}, {90, 3}, 1, 1));
    CHECK_FALSE(exceeds({}, {1 << 30, 1 << 20}, 1 << 30, 1));
    CHECK(exceeds({UINT64_MAX, 0}, {INT64_MAX, 0}, INT64_MAX, 1) == false);
    CHECK_FALSE(exceeds({100, 0}, {-50, 0}, 100, 1));  // negative usage counts as none
}

// ---------------------------------------------------------------- LMTP

namespace {

struct Transcript {
    std::vector<std::string> replies;
    std::vector<std::string> messages;
    std::vector<std::string> recipients;
};

// Feeds wire to a session in pieces of `step` bytes; refuses recipients
// whose address starts with "nobody", and answers every message with one
// "250" per recipient, as the application would.
Transcript run_session(const std::string& wire, std::size_t step, lmtp::Options options = {}) {
    lmtp::Session s(options);
    Transcript t;
    std::string buf;
    for (std::size_t i = 0; i < wire.size(); i += step) {
        buf.append(wire.substr(i, step));
        for (;;) {
            std::size_t used = 0;
            auto e = s.next(buf, used);
            buf.erase(0, used);
            if (!e) break;
            if (e->kind == lmtp::Event::Kind::Reply) {
                t.replies.push_back(e->reply);
            } else if (e->kind == lmtp::Event::Kind::Recipient) {
                bool ok = e->address.rfind("nobody", 0) != 0;
                s.recipient(ok);
                t.replies.push_back(ok ? "250 2.1.5 ok\r\n" : "550 5.1.1 unknown\r\n");
                if (ok) t.recipients.push_back(e->address);
            } else {
                t.messages.push_back(s.message());
                for (const auto& r : s.recipients()) t.replies.push_back("250 2.0.0 " + r + " delivered\r\n");
                s.end_transaction();
            }
        }
    }
    return t;
}

}  // namespace

TEST_CASE("LMTP: Postfix's transaction, pipelined, whole and a byte at a time") {
    // As Postfix lmtp(8) talks to Cyrus in transcripts/lmtp-postfix-cyrus.txt.
    std::string wire =
        "LHLO mx.lab.test\r\n"
        "MAIL FROM:<sender@example.org> SIZE=433\r\n"
        "RCPT TO:<alice@lab.test>\r\n"
        "RCPT TO:<nobody@lab.test>\r\n"
        "RCPT TO:<bob@lab.test>\r\n"
        "DATA\r\n"
        "Subject: via postfix\r\n"
        "\r\n"
        "..leading dot\r\n"
        "...\r\n"
        "last\r\n"
        ".\r\n"
        "QUIT\r\n";
    lmtp::Options options;
    options.hostname = "mbox3";
    options.max_message_size = 1000;
    auto whole = run_session(wire, wire.size(), options);
    REQUIRE(whole.messages.size() == 1);
    CHECK(whole.messages[0] == "Subject: via postfix\n\n.leading dot\n..\nlast\n");
    CHECK(whole.recipients == std::vector<std::string>{"alice@lab.test", "bob@lab.test"});
    REQUIRE(whole.replies.size() == 9);
    CHECK(whole.replies[0] ==
          "250-mbox3\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SIZE 1000\r\n");
    CHECK(whole.replies[1] == "250 2.1.0 ok\r\n");
    CHECK(whole.replies[4] == "250 2.1.5 ok\r\n");
    CHECK(whole.replies[5].rfind("354 ", 0) == 0);
    CHECK(whole.replies[6] == "250 2.0.0 alice@lab.test delivered\r\n");
    CHECK(whole.replies[7] == "250 2.0.0 bob@lab.test delivered\r\n");
    CHECK(whole.replies[8] == "221 2.0.0 bye\r\n");
    for (std::size_t step : {1u, 2u, 3u, 7u}) {
        auto pieces = run_session(wire, step, options);
        CHECK(pieces.replies == whole.replies);
        CHECK(pieces.messages == whole.messages);
    }
}

TEST_CASE("LMTP: sequence and syntax errors are answered by the session") {
    auto t = run_session(
        "MAIL FROM:<a@b>\r\n"           // 503: no LHLO
        "EHLO x\r\n"                    // 500: this is LMTP
        "LHLO\r\n"                      // 501
        "LHLO x\n"                      // bare LF is fine
        "RCPT TO:<a@b>\r\n"             // 503: no MAIL
        "DATA\r\n"                      // 503
        "MAIL FROM:<a@b> SIZE=99999\r\n"  // 552
        "MAIL FROM:<a@b\r\n"            // 501 unbalanced
        "MAIL FROM:<>\r\n"              // null sender ok
        "MAIL FROM:<c@d>\r\n"           // 503 nested
        "RCPT TO:<nobody@x>\r\n"        // refused by the application
        "DATA\r\n"                      // 503: no valid recipients
        "RCPT TO:<>\r\n"                // 501
        "NOOP\r\nVRFY x\r\nBDAT 10\r\nfrob\r\n\r\nRSET\r\nDATA\r\n",
        1000, lmtp::Options{"h", 1000, 10});
    std::vector<std::string> codes;
    for (const auto& r : t.replies) codes.push_back(r.substr(0, 3));
    CHECK(codes == std::vector<std::string>{"503", "500", "501", "250", "503", "503", "552", "501", "250", "503",
                                            "550", "503", "501", "250", "252", "502", "500", "500", "250", "503"});
}

TEST_CASE("LMTP: long lines, NUL, oversized messages") {
    std::string longline = "NOOP " + std::string(lmtp::kMaxCommandLine, 'x') + "\r\nNOOP\r\n";
    for (std::size_t step : {longline.size(), std::size_t{100}}) {
        auto t = run_session(longline, step);
        REQUIRE(t.replies.size() == 2);
        CHECK(t.replies[0] == "500 5.5.2 line too long\r\n");
        CHECK(t.replies[1] == "250 2.0.0 ok\r\n");
    }
    auto nul = run_session(std::string("NOOP\0x\r\n", 8), 8);
    CHECK(nul.replies.at(0).rfind("500 5.5.2", 0) == 0);
    // Too big: one 552 per accepted recipient after the final dot, and the
    // session goes on.
    std::string big = "LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n" +
                      std::string(200, 'y') + "\r\n.\r\nNOOP\r\n";
    auto t = run_session(big, 13, lmtp::Options{"h", 100, 10});
    CHECK(t.messages.empty());
    REQUIRE(t.replies.size() == 7);
    CHECK(t.replies[5] == "552 5.3.4 message exceeds size limit\r\n552 5.3.4 message exceeds size limit\r\n");
    CHECK(t.replies[6] == "250 2.0.0 ok\r\n");
    // A message line longer than a buffer is taken in pieces.
    std::string huge = "LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@x>\r\nDATA\r\n." +
                       std::string(3 * lmtp::kMaxDataPiece, 'z') + "\r\n.\r\n";
    auto h1 = run_session(huge, huge.size()), h2 = run_session(huge, 4096);
    REQUIRE(h1.messages.size() == 1);
    CHECK(h1.messages[0] == std::string(3 * lmtp::kMaxDataPiece, 'z') + "\n");
    CHECK(h2.messages == h1.messages);
}

TEST_CASE("LMTP: paths and DATA encoding") {
    std::string why;
    auto p = lmtp::parse_path("<joe@example.com> SIZE=10 BODY=8BITMIME", &why);
    REQUIRE(p);
    CHECK(p->address == "joe@example.com");
    CHECK(p->params == "SIZE=10 BODY=8BITMIME");
    CHECK(lmtp::parse_path("<\"a>b\"@example.com>", &why)->address == "\"a>b\"@example.com");
    CHECK(lmtp::parse_path("<@relay,@hop:joe@example.com>", &why)->address == "joe@example.com");
    CHECK(lmtp::parse_path("joe@example.com", &why)->address == "joe@example.com");
    CHECK(lmtp::parse_path("<>", &why)->address.empty());
    CHECK_FALSE(lmtp::parse_path("<joe@example.com", &why));
    CHECK_FALSE(lmtp::parse_path("<a>b", &why));
    CHECK(lmtp::encode_data("a\n.b\n") == "a\r\n..b\r\n.\r\n");
    CHECK(lmtp::encode_data("no newline") == "no newline\r\n.\r\n");
    CHECK(lmtp::reply(451, "4.3.0", "bad\r\nthing") == "451 4.3.0 bad  thing\r\n");
}

// ---------------------------------------------------------------- delivery

TEST_CASE("maildir delivery: tmp, fsync, link into new/, quota line") {
    TempDir dir;
    auto md = new_maildir(dir);
    CHECK(maildir::is_maildir(md.get()));
    maildir::DeliveryOptions o;
    o.limit = maildirsize::Limit{100, 0};
    o.header = "Return-Path: <a@b>\n";
    auto r = maildir::deliver(md.get(), "Subject: x\n\nhi\n", o);
    REQUIRE(r.status == maildir::DeliveryResult::Status::Delivered);
    CHECK(r.size == 34);
    auto files = list(dir / "md/new");
    REQUIRE(files.size() == 1);
    CHECK(maildir::parse_file_name(files[0]).size == 34u);
    CHECK(slurp(dir / "md/new/" + files[0]) == "Return-Path: <a@b>\nSubject: x\n\nhi\n");
    CHECK(list(dir / "md/tmp").empty());
    CHECK(slurp(dir / "md/maildirsize") == "100S\n" + maildirsize::format_line(0, 0) + maildirsize::format_line(34, 1));
    CHECK(r.recount == "no maildirsize file");

    // Over the limit: refused, nothing written.
    o.header = {};
    auto over = maildir::deliver(md.get(), std::string(70, 'x'), o);
    CHECK(over.status == maildir::DeliveryResult::Status::OverQuota);
    CHECK(list(dir / "md/new").size() == 1);
    CHECK(list(dir / "md/tmp").empty());
    // Without a limit given, the file's is kept.
    o.limit.reset();
    CHECK(maildir::deliver(md.get(), std::string(70, 'x'), o).status == maildir::DeliveryResult::Status::OverQuota);
    CHECK(maildir::deliver(md.get(), std::string(60, 'x'), o).status == maildir::DeliveryResult::Status::Delivered);
}

TEST_CASE("maildir delivery: the name is announced before the link, and found after a reader moved it") {
    TempDir dir;
    auto md = new_maildir(dir);
    std::vector<std::string> announced;
    maildir::DeliveryOptions o;
    o.before_link = [&](const std::string& file) {
        // Not yet there when announced.
        CHECK_FALSE(maildir::holds(md.get(), file));
        announced.push_back(file);
    };
    REQUIRE(maildir::deliver(md.get(), "Subject: a\n\nhi\n", o).status == maildir::DeliveryResult::Status::Delivered);
    o.folder = ".work";
    auto r = maildir::deliver(md.get(), "Subject: b\n\nhi\n", o);
    REQUIRE(r.status == maildir::DeliveryResult::Status::Delivered);
    REQUIRE(announced.size() == 2);
    CHECK(announced[0] == "new/" + list(dir / "md/new").at(0));
    CHECK(announced[1] == r.file);
    CHECK(announced[1].rfind(".work/new/", 0) == 0);
    CHECK(maildir::holds(md.get(), announced[0]));
    CHECK(maildir::holds(md.get(), announced[1]));
    // Read: moved to cur/ with flags. Deleted: gone.
    auto name = announced[0].substr(4);
    REQUIRE(::rename((dir / "md/new/" + name).c_str(), (dir / "md/cur/" + name + ":2,S").c_str()) == 0);
    CHECK(maildir::holds(md.get(), announced[0]));
    REQUIRE(::unlink((dir / "md/cur/" + name + ":2,S").c_str()) == 0);
    CHECK_FALSE(maildir::holds(md.get(), announced[0]));
    // A longer name that starts with it is another message.
    spit(dir / "md/cur/" + name + "x:2,", "other");
    CHECK_FALSE(maildir::holds(md.get(), announced[0]));
    // Only names before_link could have given.
    for (const char* bad : {"", "new/", "cur/x", "../md/new/x", ".work/../new/x", "new/../cur", "..//new/x", "/etc/passwd"})
        CHECK_FALSE(maildir::holds(md.get(), bad));
}

TEST_CASE("delivery journal: remembers within the window, expires, survives a broken file") {
    TempDir dir;
    std::uint64_t now = 1'000'000;
    auto clock = [&now] { return now; };
    const std::string path = dir / "journal";
    std::string id;
    {
        LmdbDeliveryJournal j(path, std::chrono::hours(1), clock);
        auto message = j.digest("Return-Path: <a@b>\n", "Subject: x\n\nhi\n");
        id = j.id("joe@example.com", message);
        CHECK(id.size() == 16);
        // Any part that differs makes another message; the boundaries count.
        CHECK(j.digest("Return-Path: <a@b>\nS", "ubject: x\n\nhi\n") != message);
        CHECK(j.id("joe@example.com", j.digest("Return-Path: <a@b>\n", "Subject: x\n\nhi!\n")) != id);
        CHECK(j.id("jim@example.com", message) != id);
        CHECK(j.id("joe@example.com", j.digest("Return-Path: <a@b>\n", "Subject: x\n\nhi\n")) == id);
        CHECK_FALSE(j.find(id));
        j.remember(id, {"/store/example.com/jo/joe", "new/123.M1P2Q3.host,S=20"});
        auto e = j.find(id);
        REQUIRE(e);
        CHECK(e->mailbox == "/store/example.com/jo/joe");
        CHECK(e->file == "new/123.M1P2Q3.host,S=20");
    }
    {
        // Opened again (a restart): still there until the window is over.
        LmdbDeliveryJournal j(path, std::chrono::hours(1), clock);
        now += 3600;
        CHECK(j.find(id));
        now += 1;
        CHECK_FALSE(j.find(id));
        std::string young = j.id("ann@example.com", j.digest("", "x"));
        j.remember(young, {"/m", "new/y"});
        CHECK(j.expire() == 1);
        CHECK(j.find(young));
        CHECK(j.expire() == 0);
    }
    // A journal LMDB cannot read is moved aside and begun anew.
    spit(path + "/data.mdb", std::string(8192, 'x'));
    LmdbDeliveryJournal j(path, std::chrono::hours(1), clock);
    CHECK_FALSE(j.find(id));
    j.remember(id, {"/m", "new/z"});
    CHECK(j.find(id));
    CHECK(list(dir.path).size() == 2);
    // A relative path is refused.
    CHECK_THROWS_WITH(LmdbDeliveryJournal("relative", std::chrono::hours(1)),
                      doctest::Contains("absolute path"));
}

TEST_CASE("maildir delivery: folders, symbolic links, recounts") {
    TempDir dir;
    ::mkdir((dir / "store").c_str(), 0755);
    auto root = open_dir(dir / "store");
    auto md = maildir::open_below(root.get(), {"example.com", "al", "alice"}, true, 0700, "alice");
    REQUIRE(md);
    int e = 0;
    REQUIRE(maildir::make_maildir(md.fd.get(), false, &e));
    maildir::DeliveryOptions o;
    o.folder = ".lists";
    o.create_folder = false;
    CHECK(maildir::deliver(md.fd.get(), "x\n", o).status == maildir::DeliveryResult::Status::FolderMissing);
    o.create_folder = true;
    CHECK(maildir::deliver(md.fd.get(), "x\n", o).status == maildir::DeliveryResult::Status::Delivered);
    struct stat st {};
    CHECK(::stat((dir / "store/example.com/al/alice/.lists/maildirfolder").c_str(), &st) == 0);
    CHECK(list(dir / "store/example.com/al/alice/.lists/new").size() == 1);

    // A symbolic link anywhere below the root is refused.
    ::mkdir((dir / "outside").c_str(), 0755);
    ::symlink((dir / "outside").c_str(), (dir / "store/example.com/bo").c_str());
    auto via_link = maildir::open_below(root.get(), {"example.com", "bo", "bob"}, true, 0700, "bob");
    CHECK_FALSE(via_link);
    CHECK(via_link.why.find("symbolic link") != std::string::npos);
    CHECK(list(dir / "outside").empty());
    ::symlink((dir / "outside").c_str(), (dir / "store/example.com/al/alice/.evil").c_str());
    o.folder = ".evil";
    auto r = maildir::deliver(md.fd.get(), "x\n", o);
    CHECK(r.status == maildir::DeliveryResult::Status::Failed);
    CHECK(r.why.find("symbolic link") != std::string::npos);
    CHECK(list(dir / "outside").empty());

    // A recount: cur/ and new/ of the INBOX and of folders, sizes from
    // ,S= or stat, .Trash only when asked.
    spit(dir / "store/example.com/al/alice/cur/1.M1P1.h,S=100:2,S", "short");
    spit(dir / "store/example.com/al/alice/cur/2.M1P1.h:2,", "seven b");
    ::mkdir((dir / "store/example.com/al/alice/.Trash").c_str(), 0700);
    REQUIRE(maildir::make_maildir(open_dir(dir / "store/example.com/al/alice/.Trash").get(), true, &e));
    spit(dir / "store/example.com/al/alice/.Trash/cur/3.M1P1.h,S=1000:2,T", "x");
    maildirsize::Usage u;
    std::string why;
    REQUIRE(maildir::recount(md.fd.get(), {5000, 0}, false, &why, &u));
    CHECK(u == maildirsize::Usage{100 + 7 + 2, 3});
    REQUIRE(maildir::recount(md.fd.get(), {5000, 0}, true, &why, &u));
    CHECK(u == maildirsize::Usage{100 + 7 + 2 + 1000, 4});
    CHECK(slurp(dir / "store/example.com/al/alice/maildirsize") == "5000S\n" + maildirsize::format_line(1109, 4));
}

TEST_CASE("maildir delivery: concurrent deliveries keep maildirsize exact") {
    TempDir dir;
    auto md = new_maildir(dir);
    // A small file limit forces recounts while others append.
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&md, t] {
            maildir::DeliveryOptions o;
            o.limit = maildirsize::Limit{1u << 30, 0};
            for (int i = 0; i < 40; ++i) maildir::deliver(md.get(), std::string(static_cast<std::size_t>(10 + t), 'm'), o);
        });
    for (auto& th : threads) th.join();
    CHECK(list(dir / "md/new").size() == 320);
    auto state = maildir::read_quota_file(md.get());
    REQUIRE(state.parsed.valid);
    std::int64_t bytes = 0;
    for (int t = 0; t < 8; ++t) bytes += 40 * (10 + t);
    CHECK(state.parsed.usage == maildirsize::Usage{bytes, 320});
}

TEST_CASE("maildir delivery: one message for several Maildirs, written once") {
    TempDir dir;
    std::vector<maildir::Fd> fds;
    for (const char* name : {"a", "b", "c"}) {
        ::mkdir((dir / name).c_str(), 0700);
        fds.push_back(open_dir(dir / name));
        int e = 0;
        REQUIRE(maildir::make_maildir(fds.back().get(), false, &e));
    }
    std::vector<maildir::Delivery> ds(3);
    for (int i = 0; i < 3; ++i) ds[i].maildir_fd = fds[i].get();
    ds[0].options.limit = maildirsize::Limit{1000, 0};
    ds[1].options.limit = maildirsize::Limit{10, 0};  // too small
    ds[2].options.folder = ".lists";
    ds[2].options.create_folder = false;
    ds[2].options.inbox_if_missing = true;  // no such folder: the INBOX
    auto results = maildir::deliver_all(ds, "Return-Path: <a@b>\n", "Subject: all\n\nhi\n");
    REQUIRE(results.size() == 3);
    CHECK(results[0].status == maildir::DeliveryResult::Status::Delivered);
    CHECK(results[1].status == maildir::DeliveryResult::Status::OverQuota);
    CHECK(results[2].status == maildir::DeliveryResult::Status::Delivered);
    CHECK(results[2].folder.empty());
    auto a = list(dir / "a/new"), c = list(dir / "c/new");
    REQUIRE((a.size() == 1 && c.size() == 1));
    CHECK(list(dir / "b/new").empty());
    struct stat sa {}, sc {};
    REQUIRE(::stat((dir / "a/new/" + a[0]).c_str(), &sa) == 0);
    REQUIRE(::stat((dir / "c/new/" + c[0]).c_str(), &sc) == 0);
    CHECK(sa.st_ino == sc.st_ino);  // one file, two links
    CHECK(sa.st_nlink == 2);
    CHECK(slurp(dir / "c/new/" + c[0]) == "Return-Path: <a@b>\nSubject: all\n\nhi\n");
    for (const char* name : {"a", "b", "c"}) CHECK(list(dir / name + "/tmp").empty());
    const std::string header = "Return-Path: <a@b>\n", body = "Subject: all\n\nhi\n";
    CHECK(maildir::read_quota_file(fds[0].get()).parsed.usage ==
          maildirsize::Usage{static_cast<std::int64_t>(header.size() + body.size()), 1});
    CHECK(maildir::read_quota_file(fds[1].get()).parsed.usage == maildirsize::Usage{0, 0});
    CHECK_FALSE(maildir::read_quota_file(fds[2].get()).exists);
}

TEST_CASE("maildir purge: old unflagged mail in cur/ only") {
    TempDir dir;
    auto md = new_maildir(dir);
    spit(dir / "md/maildirsize", "0S\n300 3\n");
    spit(dir / "md/cur/1.M1P1.h,S=100:2,S", "x");
    spit(dir / "md/cur/2.M1P1.h,S=100:2,FS", "x");
    spit(dir / "md/cur/3.M1P1.h,S=100:2,", "x");
    spit(dir / "md/new/4.M1P1.h,S=100", "x");
    spit(dir / "md/tmp/5.M1P1.h", "x");
    struct timeval old[2] = {{std::time(nullptr) - 40 * 86400, 0}, {std::time(nullptr) - 40 * 86400, 0}};
    for (auto f : {"cur/1.M1P1.h,S=100:2,S", "cur/2.M1P1.h,S=100:2,FS", "new/4.M1P1.h,S=100", "tmp/5.M1P1.h"})
        ::utimes((dir / "md/" + f).c_str(), old);
    auto dry = maildir::purge(md.get(), std::time(nullptr) - 30 * 86400, true);
    CHECK(dry.deleted == 1);
    CHECK(list(dir / "md/cur").size() == 3);
    auto s = maildir::purge(md.get(), std::time(nullptr) - 30 * 86400, false);
    CHECK(s.deleted == 1);
    CHECK(s.bytes == 100);
    CHECK(s.kept_flagged == 1);
    CHECK(s.tmp_removed == 1);
    CHECK(list(dir / "md/cur") == std::vector<std::string>{"2.M1P1.h,S=100:2,FS", "3.M1P1.h,S=100:2,"});
    CHECK(list(dir / "md/new").size() == 1);
    CHECK(maildir::read_quota_file(md.get()).parsed.usage == maildirsize::Usage{200, 2});
}

// ---------------------------------------------------------------- configuration

TEST_CASE("deliver_* parameters make an ldap_table query") {
    auto c = SuiteConfig::load("", {"deliver_server_host=ldap://ldap1 ldap://ldap2:3389",
                                    "deliver_search_base=ou=people,dc=example,dc=com",
                                    "deliver_query_filter=(mail=%s)", "deliver_bind=no"},
                               false);
    c.declare(deliver_params());
    auto q = ldap_query_from_suite(c, "deliver_");
    CHECK(q.server.urls == std::vector<std::string>{"ldap://ldap1", "ldap://ldap2:3389"});
    CHECK(q.search_base == "ou=people,dc=example,dc=com");
    CHECK(q.server.version == 3);
    CHECK(q.server.bind == BindMode::None);
    auto filter = q.templates.expand_query(q.query_filter, "a*)(uid=*@x", Quote::Filter);
    CAPTURE(*filter);
    CHECK(filter == "(mail=a\\2A\\29\\28uid=\\2A@x)");
    auto bad = SuiteConfig::load("", {"deliver_server_host=ldif:/x", "deliver_timeout=soon"}, false);
    bad.declare(deliver_params());
    try {
        ldap_query_from_suite(bad, "deliver_");
        FAIL("no error");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()).find("-o deliver_timeout: deliver_timeout:") == 0);
    }
}

TEST_CASE("maildir_deliver: addresses, hostile names, outcomes") {
    auto c = SuiteConfig::load("", {"deliver_root=/var/mail/vhosts"}, false);
    c.declare(deliver_params());
    MailboxStore store(c);
    std::string why;
    auto r = store.parse_address("Alice+Lists@Example.COM", &why);
    REQUIRE(r);
    CHECK(r->user == "alice");
    CHECK(r->domain == "example.com");
    CHECK(r->extension == "Lists");
    CHECK(r->key() == "alice@example.com");
    CHECK(store.parse_address("+x@example.com", &why)->user == "+x");
    for (const std::string& bad : std::vector<std::string>{"../etc@example.com", ".x@example.com", "a/b@example.com", "a@..", "a@.example.com",
                            "a@ex/ample.com", "a+../x@example.com", "a+.x@example.com", "a+x/y@example.com",
                            "a\nb@example.com", "noat", "a@", std::string(300, 'u') + "@example.com",
                            "a@" + std::string(300, 'd')}) {
        CAPTURE(bad);
        CHECK_FALSE(store.parse_address(bad, &why));
    }
    CHECK_FALSE(store.make_recipient("alice", "example.com", std::string("x\0y", 3), &why));

    Outcome o;
    o.kind = Outcome::Kind::OverQuota;
    CHECK(o.enhanced() == "4.2.2");
    CHECK(o.exit_code() == EX_TEMPFAIL);
    CHECK(o.lmtp_reply("a@b") == "452 4.2.2 <a@b> mailbox full\r\n");
    CHECK(std::string(o.status()) == "deferred");
    o.permanent = true;
    CHECK(o.enhanced() == "5.2.2");
    CHECK(o.exit_code() == EX_NOPERM);
    CHECK(o.lmtp_reply("a@b") == "552 5.2.2 <a@b> mailbox full\r\n");
    o.kind = Outcome::Kind::UnknownUser;
    CHECK(o.exit_code() == EX_NOUSER);
    CHECK(o.lmtp_reply("a@b") == "550 5.1.1 <a@b> user unknown\r\n");
    auto t = Outcome::temporary("4.3.1", "mail system full", "/store/x: No space left on device");
    CHECK(t.exit_code() == EX_TEMPFAIL);
    CHECK(t.lmtp_reply("a@b") == "452 4.3.1 <a@b> mail system full\r\n");
    // Every failure to write or read defers, each in its own words.
    CHECK(Outcome::io_failure(ENOSPC, "").lmtp_reply("a@b") == "452 4.3.1 <a@b> mail system full\r\n");
    CHECK(Outcome::io_failure(EDQUOT, "").lmtp_reply("a@b") == "452 4.2.2 <a@b> mailbox full (file system quota)\r\n");
    CHECK(Outcome::io_failure(ENOMEM, "").lmtp_reply("a@b") == "451 4.3.0 <a@b> insufficient system resources\r\n");
    CHECK(Outcome::io_failure(EIO, "").lmtp_reply("a@b") ==
          "451 4.3.0 <a@b> cannot write the mailbox: Input/output error\r\n");
    for (int e : {ENOSPC, EDQUOT, EFBIG, EROFS, ENOMEM, EIO}) CHECK(Outcome::io_failure(e, "").exit_code() == EX_TEMPFAIL);
}

TEST_CASE("maildir_deliver: a Maildir that goes away during a delivery defers, never bounces") {
    TempDir dir;
    MailboxStore store(deliver_config({"deliver_root=" + dir.path}));
    std::string why;
    auto r = store.parse_address("alice@example.com", &why);
    REQUIRE(r);
    auto missing = store.on_disk(*r);
    CHECK(missing.kind == Target::Kind::Unknown);  // no directory to ask: unknown
    REQUIRE(std::system(("mkdir -p '" + missing.mailbox + "'/cur '" + missing.mailbox + "'/new '" +
                         missing.mailbox + "'/tmp").c_str()) == 0);
    auto t = store.on_disk(*r);
    REQUIRE(t.kind == Target::Kind::Mailbox);
    CHECK(t.exists);
    CHECK(store.deliver(*r, t, "", "Subject: one\n\nfirst\n").kind == Outcome::Kind::Delivered);
    // Moved away (an admin move, an attic) after it was seen there.
    REQUIRE(::rename(missing.mailbox.c_str(), (dir / "moved").c_str()) == 0);
    auto o = store.deliver(*r, t, "", "Subject: two\n\nsecond\n");
    CHECK(o.kind == Outcome::Kind::TempFail);
    CHECK(o.enhanced() == "4.2.1");
    CHECK(o.exit_code() == EX_TEMPFAIL);
    CHECK(list(dir / "moved/new").size() == 1);
}

TEST_CASE("maildir_deliver: without deliver_root_marker the store counts as not mounted") {
    TempDir dir;
    MailboxStore store(deliver_config({"deliver_root=" + dir.path, "deliver_root_marker=.mounted"}));
    std::string why;
    auto r = store.parse_address("bob@example.com", &why);
    REQUIRE(r);
    // Not mounted: the Maildir is not "missing" (a bounce), the store is
    // unavailable (a deferral), and nothing is made in the empty directory.
    auto t = store.on_disk(*r);
    CHECK(t.kind == Target::Kind::TempFail);
    CHECK(t.why.find("no .mounted in it") != std::string::npos);
    Target create = t;
    create.kind = Target::Kind::Mailbox;
    create.create = true;
    create.looked_up = true;
    auto o = store.deliver(*r, create, "", "Subject: x\n\nbody\n");
    CHECK(o.kind == Outcome::Kind::TempFail);
    CHECK(o.exit_code() == EX_TEMPFAIL);
    CHECK(list(dir.path).empty());
    // Mounted: delivered as usual.
    spit(dir / ".mounted", "");
    o = store.deliver(*r, create, "", "Subject: x\n\nbody\n");
    CHECK(o.kind == Outcome::Kind::Delivered);
    CHECK(list(dir / "example.com").size() == 1);

    for (std::string bad : {"a/b", "..", "."})
        CHECK_THROWS_AS(MailboxStore{deliver_config({"deliver_root=" + dir.path, "deliver_root_marker=" + bad})},
                        ConfigError);
}

namespace {

// What read_all gives, as the view and as the file handed on to maildir_deliverd.
std::string read_through(int fd, std::size_t cap) {
    InputBuffer b;
    REQUIRE(b.read_all(fd, cap));
    std::string in_file(b.view().size(), '\0');
    REQUIRE(b.file() >= 0);
    CHECK(::pread(b.file(), in_file.data(), in_file.size(), 0) == static_cast<ssize_t>(in_file.size()));
    CHECK(::lseek(b.file(), 0, SEEK_END) == static_cast<off_t>(in_file.size()));
    CHECK(in_file == b.view());
    return std::string(b.view());
}

// `data` written into one end of a pipe or socket pair (by a thread: it
// may not fit in the pipe) and read from the other.
std::string through(bool socket, const std::string& data, std::size_t cap) {
    int fds[2];
    REQUIRE((socket ? ::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) : ::pipe(fds)) == 0);
    std::thread writer([&] {
        std::string_view rest = data;
        while (!rest.empty()) {
            ssize_t n = ::write(fds[1], rest.data(), std::min<std::size_t>(rest.size(), 70000));
            if (n <= 0) break;  // the reader stopped at its cap
            rest.remove_prefix(static_cast<std::size_t>(n));
        }
        ::close(fds[1]);
    });
    std::string got = read_through(fds[0], cap);
    ::close(fds[0]);
    writer.join();
    return got;
}

// From the file's current offset, as read(2) would.
std::string from_file(const std::string& data, std::size_t cap, off_t offset = 0) {
    TempDir dir;
    std::string path = dir / "message";
    spit(path, data);
    int fd = ::open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    REQUIRE(::lseek(fd, offset, SEEK_SET) == offset);
    std::string got = read_through(fd, cap);
    ::close(fd);
    return got;
}

}  // namespace

TEST_CASE("InputBuffer: standard input from a pipe, a file or a socket, up to a cap") {
    // The writer meets a closed pipe when the reader stops at its cap.
    auto previous = std::signal(SIGPIPE, SIG_IGN);
    std::string big(1'300'000, 'x');  // more than a pipe holds, more than one splice moves
    for (std::size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>('a' + i % 26);
    const std::string small = "From a\nSubject: x\n\nbody\n";
    // splice (pipe), or through a buffer (socket); sendfile (file) below.
    for (bool socket : {false, true}) {
        CAPTURE(socket);
        CHECK(through(socket, "", SIZE_MAX).empty());
        CHECK(through(socket, small, SIZE_MAX) == small);
        CHECK(through(socket, big, SIZE_MAX) == big);
        CHECK(through(socket, big, 1001) == big.substr(0, 1001));  // a message size limit + 1
    }
    CHECK(from_file("", SIZE_MAX).empty());
    CHECK(from_file(small, SIZE_MAX) == small);
    CHECK(from_file(big, SIZE_MAX) == big);
    CHECK(from_file(big, 1001) == big.substr(0, 1001));
    CHECK(from_file(small, SIZE_MAX, 7) == small.substr(7));
    CHECK(from_file(big, 1001, 4099) == big.substr(4099, 1001));
    std::signal(SIGPIPE, previous);

    // OneMessage is returned by value: the mapping and the file move.
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    REQUIRE(::write(fds[1], "Subject: moved\n", 15) == 15);
    ::close(fds[1]);
    InputBuffer moved_from;
    REQUIRE(moved_from.read_all(fds[0], SIZE_MAX));
    ::close(fds[0]);
    const char* block = moved_from.view().data();
    int file = moved_from.file();
    InputBuffer moved(std::move(moved_from));
    CHECK(moved.view() == "Subject: moved\n");
    CHECK(moved.view().data() == block);
    CHECK(moved.file() == file);
    CHECK(moved_from.view().empty());
    CHECK(moved_from.file() == -1);
}

// ---------------------------------------------------------- command line

namespace {

// What the front reads without CLI11 must be what CLI11 reads: either the
// same invocation, or the front declines and maildir_deliverd decides.
std::optional<Invocation> lean(std::vector<const char*> args) {
    args.insert(args.begin(), "maildir_deliver");
    Invocation inv;
    if (!parse_delivery_line(static_cast<int>(args.size()), args.data(), inv)) return std::nullopt;
    return inv;
}

Invocation full(std::vector<const char*> args) {
    args.insert(args.begin(), "maildir_deliver");
    CLI::App app;
    Invocation inv;
    REQUIRE_NOTHROW(read_command_line(app, inv, static_cast<int>(args.size()), args.data()));
    return inv;
}

void same(const Invocation& a, const Invocation& b) {
    CHECK(a.common.config_path == b.common.config_path);
    CHECK(a.common.overrides == b.common.overrides);
    CHECK(a.common.verbose == b.common.verbose);
    CHECK(a.common.foreground == b.common.foreground);
    CHECK(a.destination == b.destination);
    CHECK(a.extension == b.extension);
    CHECK(a.sender == b.sender);
    CHECK(a.queue_id == b.queue_id);
    CHECK(a.maildir == b.maildir);
    CHECK(a.quota == b.quota);
    CHECK(a.delivering() == b.delivering());
}

}  // namespace

TEST_CASE("front's command line: Postfix's delivery forms read as CLI11 reads them") {
    const std::vector<std::vector<const char*>> forms = {
        {},
        {"-d", "joe@example.com", "-e", "", "-f", "", "-i", "4XyZ12"},
        {"-d", "joe@example.com", "-e", "lists", "-f", "a@b.example"},
        {"--destination=joe@example.com", "--extension=x", "--queue-id=Q1", "--from=s@x"},
        {"--maildir", "/srv/mail/joe", "--quota", "1000000S,1000C"},
        {"--maildir=/srv/mail/joe", "--quota=5S"},
        {"-c", "/etc/mailgrid/other.cf", "-o", "deliver_root=/srv", "-o", "deliver_create=no", "-v", "-v"},
        {"--config", "x.cf", "--foreground", "--verbose", "-d", "a@b"},
    };
    for (const auto& args : forms) {
        CAPTURE(args.size());
        auto mine = lean(args);
        REQUIRE(mine);
        CHECK(mine->delivering());
        same(*mine, full(args));
    }
}

TEST_CASE("front's command line: everything else is left to maildir_deliverd") {
    const std::vector<std::vector<const char*>> others = {
        {"--help"}, {"--version"}, {"--check"}, {"--show"}, {"--lmtp"}, {"--lmtp", "unix:/run/x"},
        {"purge", "--dry-run"}, {"reconcile"}, {"-d"}, {"-d", "-e"}, {"-d", "a@b", "-d", "c@d"},
        {"-dfoo@bar"}, {"-vv"}, {"stray"}, {"-o", "a=1", "b=2"}, {"-d", "purge"}, {"--"},
        {"--foreground", "--foreground"}, {"--maildirx", "y"}, {"-x"}, {""}, {"", "x=1"}, {"-d", "a@b", ""},
        {"--extension="}, {"-d", "a@b", "--from="}, {"-o", "[]"}, {"-o", "[a=1,b=2]"},
    };
    for (const auto& args : others) {
        CAPTURE(args.front());
        CHECK_FALSE(lean(args));
    }
}
