// mailgrid_policy: the policy delegation codec, sending limits and their
// counters, the milter address forms, and the rule engine against an LDIF
// directory, a maildirsize file on disk and an LDAP server that is not
// there.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "daemon/daemon.hpp"
#include "milter.hpp"
#include "policy/limits.hpp"
#include "policy/rules.hpp"
#include "policy_server.hpp"
#include "proto/milter.hpp"
#include "proto/policy.hpp"

using namespace mailgrid;

namespace {

const std::string kRcpt =
    "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=192.0.2.7\n"
    "client_name=mx.example.net\nhelo_name=mx.example.net\nsender=a@b.example\nrecipient=joe@example.com\n"
    "recipient_count=0\nqueue_id=\ninstance=4f1.67a0c3e1.2\nsize=1234\nsasl_method=\nsasl_username=\n"
    "ccert_subject=\nencryption_protocol=TLSv1.3\nstress=\nmail_version=3.7.11\n\n";

std::vector<std::string> parse_all(std::string_view wire, bool bytewise, std::string* error = nullptr) {
    std::vector<std::string> out;
    std::string buf;
    auto drain = [&]() -> bool {
        for (;;) {
            std::size_t used = 0;
            auto p = policy::parse_request(buf, used);
            if (!p) return true;
            buf.erase(0, used);
            if (!p->ok) {
                if (error) *error = p->error;
                out.push_back("error");
                return false;
            }
            out.push_back(p->request.protocol_state + " " + p->request.recipient + " " + p->request.sasl_username +
                          " " + std::to_string(p->request.size));
        }
    };
    if (bytewise) {
        for (char c : wire) {
            buf.push_back(c);
            if (!drain()) break;
        }
    } else {
        buf = wire;
        drain();
    }
    return out;
}

}  // namespace

TEST_CASE("policy requests as Postfix sends them, whole or a byte at a time") {
    std::size_t used = 0;
    auto p = policy::parse_request(kRcpt, used);
    REQUIRE(p);
    REQUIRE(p->ok);
    CHECK(used == kRcpt.size());
    CHECK(p->request.stage == policy::Stage::Rcpt);
    CHECK(p->request.recipient == "joe@example.com");
    CHECK(p->request.client_address == "192.0.2.7");
    CHECK(p->request.instance == "4f1.67a0c3e1.2");
    CHECK(p->request.size == 1234);
    CHECK(p->request.queue_id.empty());
    CHECK(p->request.ignored == 4);  // ccert_subject, encryption_protocol, stress, mail_version
    CHECK(p->request.attributes == 18);

    std::string two = kRcpt + "request=smtpd_access_policy\r\nprotocol_state=END-OF-MESSAGE\r\nsize=99\r\n"
                              "sasl_username=alice\r\n\r\n";
    auto whole = parse_all(two, false);
    CHECK(whole == std::vector<std::string>{"RCPT joe@example.com  1234", "END-OF-MESSAGE  alice 99"});
    CHECK(parse_all(two, true) == whole);

    // Incomplete: nothing consumed until the empty line.
    CHECK_FALSE(policy::parse_request(kRcpt.substr(0, kRcpt.size() - 1), used));
    CHECK(used == 0);

    // Round trip through the formatter.
    auto again = policy::format_request(p->request);
    auto q = policy::parse_request(again, used);
    REQUIRE(q);
    REQUIRE(q->ok);
    CHECK(q->request.same_fields(p->request));
}

TEST_CASE("malformed policy requests are errors with a reason, never a reply") {
    std::string why;
    CHECK(parse_all("request=smtpd_access_policy\ngarbage\n\n", false, &why) == std::vector<std::string>{"error"});
    CHECK(why.find("no '='") != std::string::npos);
    CHECK(parse_all("request=smtpd_access_policy\n=x\n\n", false, &why).back() == "error");
    CHECK(why.find("empty name") != std::string::npos);
    CHECK(parse_all("request=smtpd_access_policy\nsize=12k\n\n", false, &why).back() == "error");
    CHECK(why.find("size is not a number") != std::string::npos);
    CHECK(parse_all("request=junk\n\n", false, &why).back() == "error");
    CHECK(why.find("unsupported request type") != std::string::npos);
    CHECK(parse_all("protocol_state=RCPT\n\n", false, &why).back() == "error");
    CHECK(why.find("no request attribute") != std::string::npos);
    CHECK(parse_all(std::string("request=smtpd_access_policy\nsender=a\0b\n\n", 41), false, &why).back() == "error");
    CHECK(why.find("NUL") != std::string::npos);

    // 100 KB in one attribute: refused as soon as the line is too long,
    // without waiting for its end.
    std::string huge = "request=smtpd_access_policy\nsender=" + std::string(100 * 1024, 'x');
    std::size_t used = 0;
    auto p = policy::parse_request(huge, used);
    REQUIRE(p);
    CHECK_FALSE(p->ok);
    CHECK(p->error.find("longer than") != std::string::npos);
    CHECK(used == huge.size());
    CHECK(parse_all(huge + "\n\n", true) == std::vector<std::string>{"error"});

    // Many short lines without the empty one: refused at kMaxRequest.
    std::string endless = "request=smtpd_access_policy\n";
    while (endless.size() < policy::kMaxRequest + 100) endless += "x_unknown=yyyyyyyyyyyyyyyyyyyyyyyy\n";
    p = policy::parse_request(endless, used);
    REQUIRE(p);
    CHECK_FALSE(p->ok);
    CHECK(p->error.find("without its ending empty line") != std::string::npos);

    // Attributes at Postfix's own limit are fine.
    std::string big = "request=smtpd_access_policy\nsender=" + std::string(policy::kMaxAttribute, 's') + "\n\n";
    p = policy::parse_request(big, used);
    REQUIRE(p);
    CHECK(p->ok);
}

TEST_CASE("policy replies are one attribute, whatever the text") {
    CHECK(policy::format_reply("DUNNO") == "action=DUNNO\n\n");
    CHECK(policy::format_reply(std::string_view("550 5.1.1 a\nb\r\0c", 16)) == "action=550 5.1.1 a b  c\n\n");
    CHECK(policy::format_reply(std::string(5000, 'x')).size() == 7 + policy::kMaxAction + 2);
    CHECK(policy::parse_stage("end-of-message") == policy::Stage::EndOfMessage);
    CHECK(std::string(policy::stage_name(policy::Stage::Rcpt)) == "RCPT");
}

TEST_CASE("sending limits: defaults, per-user overrides, windows") {
    std::string why;
    auto r = limits::parse_rates("100/minute, 1000/h 5000/day", &why);
    REQUIRE(r);
    CHECK((*r)[0] == 100u);
    CHECK((*r)[1] == 1000u);
    CHECK((*r)[2] == 5000u);
    CHECK_FALSE(limits::parse_rates("100/minute, 5/minute", &why));
    CHECK(why.find("given twice") != std::string::npos);
    CHECK_FALSE(limits::parse_rates("100/week", &why));
    CHECK_FALSE(limits::parse_rates("lots/day", &why));
    CHECK_FALSE(limits::parse_rates("100", &why));
    CHECK(limits::parse_rates("")->at(0) == std::nullopt);

    limits::Limits base;
    base.messages = {100, 1000, 0};
    base.recipients = {500, 0, 0};
    auto o = limits::parse_override({"messages:5/minute", "recipients:0/minute, recipients:20/day"}, &why);
    REQUIRE(o);
    auto l = limits::apply(base, *o);
    CHECK(l.messages == std::array<std::uint64_t, 3>{5, 1000, 0});
    CHECK(l.recipients == std::array<std::uint64_t, 3>{0, 0, 20});
    CHECK(limits::apply(base, *limits::parse_override({"unlimited"})).none());
    CHECK_FALSE(limits::parse_override({"bytes:5/minute"}, &why));
    CHECK_FALSE(limits::parse_override({"5/minute"}, &why));
    CHECK(limits::describe(limits::Kind::Messages, limits::Window::Minute, 100) == "100 messages per minute");
    CHECK(limits::describe(limits::Kind::Recipients, limits::Window::Day, 1) == "1 recipient per day");

    // 2026-11-23 10:00:30 UTC: minute window 30 s from its end.
    std::int64_t now = 1795428030000;
    auto first = limits::charges(base, "alice", true, now, "mailgrid:");
    REQUIRE(first.size() == 3);  // messages per minute and hour, recipients per minute
    CHECK(first[0].key == "mailgrid:limit:m:minute:" + std::to_string(now / 60000) + ":alice");
    CHECK(first[0].expires_ms == 30000 + 1000);
    CHECK(limits::charges(base, "alice", false, now, "mailgrid:").size() == 1);  // recipients only
}

TEST_CASE("in-process counters check every window before adding to any") {
    limits::Limits l;
    l.messages = {2, 3, 0};
    limits::LocalCounters counters;
    std::int64_t t = 1795428000000;  // the start of a minute
    CHECK(counters.check_and_add(limits::charges(l, "bob", true, t, ""), t) == -1);
    CHECK(counters.check_and_add(limits::charges(l, "bob", true, t + 1000, ""), t + 1000) == -1);
    CHECK(counters.check_and_add(limits::charges(l, "bob", true, t + 2000, ""), t + 2000) == 0);  // 3rd this minute
    CHECK(counters.check_and_add(limits::charges(l, "eve", true, t + 2000, ""), t + 2000) == -1);  // others untouched
    // The refused message used up nothing: one more fits the hour.
    std::int64_t next = t + 61000;
    CHECK(counters.check_and_add(limits::charges(l, "bob", true, next, ""), next) == -1);
    CHECK(counters.check_and_add(limits::charges(l, "bob", true, next + 10, ""), next + 10) == 1);  // the hour's 4th
    CHECK(counters.check_and_add(limits::charges(l, "bob", true, t + 3600000, ""), t + 3600000) == -1);
}

TEST_CASE("milter listener addresses in every form libmilter and Postfix use") {
    CHECK(milter_socket("127.0.0.1:10041") == "inet:10041@127.0.0.1");
    CHECK(milter_socket("inet:127.0.0.1:10041") == "inet:10041@127.0.0.1");
    CHECK(milter_socket("inet:10041@127.0.0.1") == "inet:10041@127.0.0.1");
    CHECK(milter_socket("[::1]:10041") == "inet6:10041@::1");
    CHECK(milter_socket("/run/mailgrid/milter") == "unix:/run/mailgrid/milter");
    CHECK(milter_socket("local:/run/m") == "unix:/run/m");
    std::string why;
    CHECK_FALSE(milter_socket("unix:relative", &why));
    CHECK_FALSE(milter_socket("127.0.0.1:0", &why));
    CHECK_FALSE(milter_socket("smtp:10041@host", &why));
}

namespace {

// A directory, a mail store and an engine with mailgrid.cf overrides.
struct EngineLab {
    std::filesystem::path dir;
    asio::io_context io;
    std::unique_ptr<SuiteConfig> config;
    std::unique_ptr<PolicyEngine> engine;
    MetricsRegistry metrics;
    std::vector<std::string> warnings;

    explicit EngineLab(std::vector<std::string> overrides, bool with_store = true) {
        char tmpl[] = "/tmp/mailgrid-policy-unit-XXXXXX";
        dir = ::mkdtemp(tmpl);
        std::ofstream(dir / "users.ldif") << R"(dn: dc=example,dc=com
objectClass: dcObject
dc: example

dn: associatedDomain=example.com,dc=example,dc=com
objectClass: domainRelatedObject
associatedDomain: example.com

dn: uid=alice,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
mail: alice@example.com
mailacceptinggeneralid: alice@example.com
mailacceptinggeneralid: al@example.com
mailQuotaBytes: 1000

dn: uid=bob,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
mail: bob@example.com
mailacceptinggeneralid: bob@example.com
mailSendLimits: messages:1/minute

dn: cn=staff,dc=example,dc=com
objectClass: organizationalRole
cn: staff
mailacceptinggeneralid: staff@example.com
maildrop: alice@example.com
maildrop: bob@example.com
)";
        if (with_store) {
            std::filesystem::create_directories(dir / "store/example.com/al/alice/new");
            std::ofstream(dir / "store/example.com/al/alice/maildirsize") << "1000S\n900 3\n";
        }
        std::vector<std::string> o = {"policy_server_host=ldif:" + (dir / "users.ldif").string(),
                                      "policy_search_base=dc=example,dc=com", "policy_quota_usage=maildirsize",
                                      "policy_maildir_root=" + (dir / "store").string()};
        for (auto& x : overrides) o.push_back(std::move(x));
        config = std::make_unique<SuiteConfig>(SuiteConfig::load("", o, false));
        config->declare(common_params());
        config->declare(policy_rule_params());
        engine = std::make_unique<PolicyEngine>(io, *config, &metrics);
        engine->load(warnings);
        engine->open();
    }
    ~EngineLab() {
        engine->shutdown();
        std::filesystem::remove_all(dir);
    }

    Verdict ask(policy::Stage stage, std::string sender, std::string rcpt, std::string login = "",
                std::uint64_t size = 0, std::shared_ptr<MessageState> state = nullptr) {
        CheckRequest r;
        r.stage = stage;
        r.sender = std::move(sender);
        r.recipient = std::move(rcpt);
        r.login = std::move(login);
        r.size = size;
        r.client = "test[127.0.0.1]";
        std::optional<Verdict> out;
        asio::co_spawn(
            io, [&]() -> awaitable<void> { out = co_await engine->check(r, state); }, asio::detached);
        // Run until the answer is there: an LDAP pool keeps timers of its own.
        io.restart();
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!out && std::chrono::steady_clock::now() < deadline) io.run_one_for(std::chrono::milliseconds(100));
        REQUIRE(out);
        return *out;
    }
    Verdict rcpt(std::string rcpt, std::string login = "", std::uint64_t size = 0,
                 std::shared_ptr<MessageState> state = nullptr) {
        return ask(policy::Stage::Rcpt, login.empty() ? "someone@example.net" : login + "@example.com",
                   std::move(rcpt), login, size, std::move(state));
    }
};

}  // namespace

namespace {

std::string frame(char cmd, std::string_view payload) { return milter::encode_frame(cmd, payload); }

std::optional<std::string> why(char cmd, std::string_view payload) { return milter::check_mta_command(cmd, payload); }

}  // namespace

TEST_CASE("milter frames: whole, split across reads, and impossible lengths") {
    using namespace std::string_literals;
    std::string stream = frame('O', "\0\0\0\6\0\0\1\xff\0\0\0\0"s) + frame('C', "mx.example.net\0004\0\x19" "192.0.2.1\0"s);
    std::size_t used = 0;
    // Every prefix short of the first frame is incomplete and consumes nothing.
    for (std::size_t n = 0; n < 17; ++n) {
        CHECK_FALSE(milter::next_frame(std::string_view(stream).substr(0, n), used));
        CHECK(used == 0);
    }
    auto f = milter::next_frame(stream, used);
    REQUIRE(f);
    CHECK(f->ok);
    CHECK(f->command == 'O');
    CHECK(f->payload.size() == 12);
    CHECK(used == 17);
    auto g = milter::next_frame(std::string_view(stream).substr(used), used);
    REQUIRE(g);
    CHECK(g->command == 'C');
    CHECK_FALSE(why(g->command, g->payload));

    std::string zero("\0\0\0\0"s);
    auto z = milter::next_frame(zero, used);
    REQUIRE(z);
    CHECK_FALSE(z->ok);
    CHECK(z->error.find("no command") != std::string::npos);
    CHECK(used == zero.size());
    std::string huge("\x7f\xff\xff\xffO"s);
    auto h = milter::next_frame(huge, used);
    REQUIRE(h);
    CHECK_FALSE(h->ok);
    CHECK(h->error.find("over the limit") != std::string::npos);
}

TEST_CASE("milter commands as Postfix sends them pass; what libmilter would misread does not") {
    using namespace std::string_literals;
    // Postfix 3.7, one SMTP session.
    for (auto [cmd, payload] : std::vector<std::pair<char, std::string>>{
             {'O', "\0\0\0\6\0\0\1\xff\0\x1f\xff\xff"s},
             {'D', "Cj\0mx.example.com\0{daemon_name}\0smtpd\0{client_addr}\0" "192.0.2.7\0"s},
             {'C', "client.example.net\0004\0\x30\x39" "192.0.2.7\0"s},
             {'C', "unknown\0U"s},
             {'C', "localhost\0L\0\0/run/postfix/smtpd\0"s},
             {'H', "client.example.net\0"s},
             {'D', "M{mail_addr}\0a@example.net\0{auth_authen}\0alice\0"s},
             {'M', "<a@example.net>\0SIZE=1234\0BODY=8BITMIME\0"s},
             {'D', "R{rcpt_addr}\0b@example.com\0"s},
             {'R', "<b@example.com>\0"s},
             {'D', "T"s},
             {'T', ""s},
             {'D', "L{hdr}\0x\0"s},
             {'L', "Subject\0 hello\0"s},
             {'N', ""s},
             {'B', "body\r\n"s},
             {'D', "Ei\0" "4F1A2B\0"s},
             {'E', ""s},
             {'A', ""s},
             {'U', "XYZZY\0"s},
             {'Q', ""s},
         }) {
        INFO("command " << cmd);
        CHECK_FALSE(why(cmd, payload));
    }
    // The crash this guards against: a macro list with an odd count.
    CHECK(why('D', "M{mail_addr}\0"s) == "macros whose names and values do not pair up");
    CHECK(why('D', "M{mail_addr}\0a\0{x}"s));
    CHECK(why('D', ""s) == "macros without a stage");
    CHECK(why('D', "Z{x}\0y\0"s) == "macros for stage 'Z'");
    CHECK(why('O', "\0\0\0\6"s));
    CHECK(why('C', "host"s));
    CHECK(why('C', "host\0"s));
    CHECK(why('C', "host\0004"s) == "connect without port and address");
    CHECK(why('C', "host\0X\0\0a\0"s) == "connect with address family 'X'");
    CHECK(why('H', "name"s));
    CHECK(why('M', ""s));
    CHECK(why('R', "<b@example.com>"s));
    CHECK(why('L', "Subject\0"s) == "header that is not a name and a value");
    CHECK(why('L', "a\0b\0c\0"s));
    CHECK(why('U', ""s));
    CHECK(why('Z', ""s) == "unknown command 'Z'");
    CHECK(why('\0', ""s) == "unknown command 0x00");
}

TEST_CASE("rule engine: recipients, aliases, catch-all and foreign domains") {
    EngineLab lab({"policy_message_limits=", "policy_recipient_limits="});
    auto v = lab.rcpt("nobody@example.com");
    CHECK(v.reply() == "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown");
    CHECK(v.policy_action() == "550 5.1.1 User unknown");  // Postfix writes the rest itself
    CHECK(v.rule == Verdict::Rule::Recipient);
    CHECK(lab.rcpt("bob@example.com").dunno());
    CHECK(lab.rcpt("Bob+lists@Example.COM").dunno());     // extension and case
    CHECK(lab.rcpt("staff@example.com").dunno());         // an alias entry: no mailbox, no quota
    CHECK(lab.rcpt("someone@elsewhere.example").dunno());  // not our domain
    CHECK(lab.rcpt("*)(uid=*@example.com").policy_action().rfind("550 5.1.1", 0) == 0);  // escaped, not a wildcard
    CHECK(lab.ask(policy::Stage::Connect, "", "").dunno());

    EngineLab listed({"policy_domain=example.org", "policy_message_limits=", "policy_recipient_limits="});
    CHECK(listed.rcpt("nobody@example.com").dunno());  // not in policy_domain
    CHECK(listed.rcpt("nobody@example.org").policy_action().rfind("550 5.1.1", 0) == 0);
}

TEST_CASE("rule engine: quota from the directory and maildirsize, SIZE and the real size") {
    EngineLab lab({"policy_message_limits=", "policy_recipient_limits="});
    CHECK(lab.rcpt("alice@example.com", "", 50).dunno());  // 900 + 50 <= 1000
    auto v = lab.rcpt("al@example.com", "", 200);
    CHECK(v.reply() ==
          "452 4.2.2 <al@example.com>: Recipient address rejected: Mailbox has no room for a message of 200 bytes");
    CHECK(v.policy_action() == "452 4.2.2 Mailbox has no room for a message of 200 bytes");
    CHECK(v.rule == Verdict::Rule::Quota);
    CHECK(lab.ask(policy::Stage::EndOfMessage, "a@b.example", "alice@example.com", "", 150).code == 452);

    std::ofstream(lab.dir / "store/example.com/al/alice/maildirsize", std::ios::app) << "100 1\n";
    CHECK(lab.rcpt("alice@example.com").reply() ==
          "452 4.2.2 <alice@example.com>: Recipient address rejected: Mailbox full");

    EngineLab reject({"policy_over_quota=reject", "policy_message_limits=", "policy_recipient_limits="});
    std::ofstream(reject.dir / "store/example.com/al/alice/maildirsize") << "1000S\n1000 4\n";
    CHECK(reject.rcpt("alice@example.com").reply().rfind("552 5.2.2 ", 0) == 0);

    // Without a maildirsize the usage is unknown: accepted.
    EngineLab empty({"policy_message_limits=", "policy_recipient_limits="}, false);
    CHECK(empty.rcpt("alice@example.com", "", 5000).dunno());
}

TEST_CASE("rule engine: sender login mismatch") {
    EngineLab lab({"policy_message_limits=", "policy_recipient_limits="});
    CHECK(lab.ask(policy::Stage::Mail, "al@example.com", "", "alice").dunno());
    auto v = lab.ask(policy::Stage::Mail, "bob@example.com", "", "alice");
    CHECK(v.reply() == "553 5.7.1 <bob@example.com>: Sender address rejected: not owned by user alice");
    CHECK(v.policy_action() == "553 5.7.1 Sender address <bob@example.com> is not owned by user alice");
    CHECK(lab.ask(policy::Stage::Mail, "alice@gmail.example", "", "alice").code == 553);
    CHECK(lab.ask(policy::Stage::Mail, "", "", "alice").dunno());                  // null sender
    CHECK(lab.ask(policy::Stage::Mail, "bob@example.com", "", "").dunno());        // not logged in
    CHECK(lab.ask(policy::Stage::Rcpt, "bob@example.com", "alice@example.com", "alice").code == 553);

    EngineLab known({"policy_sender_login_check=reject_known_sender_login_mismatch", "policy_message_limits=",
                     "policy_recipient_limits="});
    CHECK(known.ask(policy::Stage::Mail, "alice@gmail.example", "", "alice").dunno());  // nobody's
    CHECK(known.ask(policy::Stage::Mail, "bob@example.com", "", "alice").code == 553);

    EngineLab unauth({"policy_sender_login_check=reject_sender_login_mismatch", "policy_message_limits=",
                      "policy_recipient_limits="});
    CHECK(unauth.ask(policy::Stage::Mail, "bob@example.com", "", "").reply() ==
          "553 5.7.1 <bob@example.com>: Sender address rejected: not logged in");
}

TEST_CASE("rule engine: sending limits per message and recipient, per-user override") {
    EngineLab lab({"policy_message_limits=2/minute", "policy_recipient_limits=3/minute"});
    auto m1 = std::make_shared<MessageState>();
    CHECK(lab.rcpt("x1@elsewhere.example", "alice", 0, m1).dunno());
    CHECK(lab.rcpt("x2@elsewhere.example", "alice", 0, m1).dunno());  // same message: one message, two recipients
    auto m2 = std::make_shared<MessageState>();
    CHECK(lab.rcpt("x3@elsewhere.example", "alice", 0, m2).dunno());
    auto v = lab.rcpt("x4@elsewhere.example", "alice", 0, m2);  // the 4th recipient this minute
    CHECK(v.reply() == "450 4.7.1 Sending limit exceeded: 3 recipients per minute for user alice; try again later");
    auto m3 = std::make_shared<MessageState>();
    v = lab.rcpt("x5@elsewhere.example", "alice", 0, m3);  // the 3rd message
    CHECK(v.reply().rfind("450 4.7.1 Sending limit exceeded: 2 messages per minute", 0) == 0);
    CHECK(lab.rcpt("x6@elsewhere.example", "alice", 0, m3).code == 450);  // the whole message
    CHECK(lab.rcpt("x1@elsewhere.example", "", 0).dunno());                // not logged in: no limits

    // bob's own limit: one message a minute.
    CHECK(lab.rcpt("x1@elsewhere.example", "bob").dunno());
    CHECK(lab.rcpt("x1@elsewhere.example", "bob").reply().find("1 message per minute for user bob") !=
          std::string::npos);
}

TEST_CASE("rule engine: a directory that cannot answer is never \"unknown user\"") {
    EngineLab lab({"policy_server_host=ldap://127.0.0.1:1/", "policy_timeout=2", "ldap_reconnect_delay=50ms",
                   "policy_message_limits=1/minute", "policy_recipient_limits="});
    auto v = lab.rcpt("nobody@example.com");
    CHECK(v.policy_action() == "DEFER_IF_PERMIT 4.3.0 Temporary lookup failure");
    CHECK(v.reply() == "451 4.3.0 <nobody@example.com>: Temporary lookup failure");
    CHECK(v.unavailable);
    CHECK(v.code == 451);
    // Limits go on with the defaults (and the sender check defers).
    CHECK(lab.ask(policy::Stage::Mail, "alice@example.com", "", "alice").code == 451);

    EngineLab open({"policy_server_host=ldap://127.0.0.1:1/", "policy_timeout=2", "ldap_reconnect_delay=50ms",
                    "policy_recipient_failure=accept", "policy_sender_failure=accept", "policy_message_limits=1/minute",
                    "policy_recipient_limits="});
    CHECK(open.rcpt("nobody@example.com").dunno());
    CHECK(open.rcpt("x@elsewhere.example", "alice").dunno());
    CHECK(open.rcpt("x@elsewhere.example", "alice").code == 450);  // the default limit still holds
}

TEST_CASE("rule engine configuration errors name the parameter") {
    auto fails = [](std::vector<std::string> o) {
        auto c = SuiteConfig::load("", o, false);
        c.declare(common_params());
        c.declare(policy_rule_params());
        asio::io_context io;
        PolicyEngine e(io, c, nullptr);
        std::vector<std::string> w;
        try {
            e.load(w);
        } catch (const ConfigError& err) {
            return std::string(err.what());
        }
        return std::string();
    };
    CHECK(fails({"policy_message_limits=100/fortnight"}).find("policy_message_limits") != std::string::npos);
    CHECK(fails({"policy_over_quota=bounce"}).find("policy_over_quota") != std::string::npos);
    CHECK(fails({"policy_limit_failure=maybe"}).find("local, accept or defer") != std::string::npos);
    CHECK(fails({"policy_quota_usage=maildirsize"}).find("policy_maildir_root") != std::string::npos);
    CHECK(fails({"policy_server_host=ldif:/x", "policy_query_filter=(mail=joe)"}).find("%s") != std::string::npos);
    CHECK(fails({"policy_sender_login_check=reject_everything"}).find("unknown check") != std::string::npos);
    CHECK(fails({}).empty());
}
