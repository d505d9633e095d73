// The pure code behind the mailgrid admin command: the hold list ldap_tablemap
// obeys during a move, the IMAP client codec, CSV import, apply_modifications
// (the LDIF writer's in-memory LDAP modify) and the JSON writer.
#include <doctest/doctest.h>

#include <limits>

#include "directory/directory_writer.hpp"
#include "lookup/hold_list.hpp"
#include "proto/imap.hpp"
#include "util/csv.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

using namespace mailgrid;

// ---------------------------------------------------------------- hold list

TEST_CASE("hold list: exact keys, case, surrounding space") {
    HoldList h;
    CHECK(h.empty());
    CHECK_FALSE(h.holds("joe@example.com", "+"));
    h.update(1, {"Joe@Example.COM", "  ann@example.org\t", "", "   "});
    CHECK(h.size() == 2);
    CHECK(h.holds("joe@example.com", "+"));
    CHECK(h.holds("JOE@EXAMPLE.COM", "+"));
    CHECK(h.holds(" joe@example.com ", ""));
    CHECK(h.holds("ann@example.org", "+"));
    CHECK_FALSE(h.holds("joe@example.org", "+"));
    CHECK_FALSE(h.holds("jo@example.com", "+"));
    CHECK_FALSE(h.holds("", "+"));
    CHECK(HoldList::normalize("  Joe@Example.COM\r\n") == "joe@example.com");
}

TEST_CASE("hold list: a key with its +extension is held as the address without it") {
    HoldList h;
    h.update(1, {"joe@example.com"});
    CHECK(h.holds("joe+lists@example.com", "+"));
    CHECK(h.holds("Joe+Lists@Example.com", "+"));
    CHECK(h.holds("joe-lists@example.com", "+-"));
    CHECK_FALSE(h.holds("joe-lists@example.com", "+"));
    // No delimiters configured: no stripping.
    CHECK_FALSE(h.holds("joe+lists@example.com", ""));
    // The extension is only stripped from the local part.
    CHECK_FALSE(h.holds("joe+x@other.example", "+"));

    // A held address that itself carries an extension is matched exactly.
    h.update(2, {"joe+special@example.com"});
    CHECK(h.holds("joe+special@example.com", "+"));
    CHECK_FALSE(h.holds("joe@example.com", "+"));
}

TEST_CASE("hold list: update() says whether the generation changed") {
    HoldList h;
    CHECK(h.generation() == 0);
    CHECK_FALSE(h.update(0, {"a@x"}));  // same generation, new contents
    CHECK(h.holds("a@x", ""));
    CHECK(h.update(3, {"a@x"}));
    CHECK(h.generation() == 3);
    CHECK_FALSE(h.update(3, {"b@x"}));
    CHECK(h.holds("b@x", ""));
    CHECK_FALSE(h.holds("a@x", ""));  // the list is replaced, not merged
    CHECK(h.update(2, {}));           // going back counts as a change too
    CHECK(h.generation() == 2);
    CHECK(h.empty());
    CHECK_FALSE(h.holds("b@x", ""));
}

TEST_CASE("hold list: the answer for each lookup style") {
    auto t = HoldList::answer(LookupStyle::Transport);
    CHECK(t.status == Status::Found);
    CHECK(t.value == std::string("retry:") + kHoldReason);
    CHECK(t.value.rfind("retry:4.2.0 ", 0) == 0);

    auto a = HoldList::answer(LookupStyle::Access);
    CHECK(a.status == Status::Found);
    CHECK(a.value == std::string("DEFER_IF_PERMIT ") + kHoldReason);
    CHECK(a.value.rfind("DEFER_IF_PERMIT 4.2.0 ", 0) == 0);

    for (auto style : {LookupStyle::Exact, LookupStyle::Virtual}) {
        auto r = HoldList::answer(style);
        CHECK(r.status == Status::TempFail);
        CHECK_FALSE(r.value.empty());
    }
}

TEST_CASE("hold file: parse, comments, blank lines, generation") {
    auto f = parse_hold_file(
        "# mail for these addresses is held\n"
        "# generation 42\n"
        "\n"
        "Joe@Example.com\r\n"
        "   \t \n"
        "  # an indented comment\n"
        "ann@example.org  \n"
        "#generation-ish but not a number\n"
        "last@example.net");
    CHECK(f.generation == 42);
    CHECK(f.addresses == std::vector<std::string>{"joe@example.com", "ann@example.org", "last@example.net"});

    CHECK(parse_hold_file("").generation == 0);
    CHECK(parse_hold_file("").addresses.empty());
    CHECK(parse_hold_file("#generation 7\n").generation == 7);
    CHECK(parse_hold_file("# generation -3\n").generation == 0);
    CHECK(parse_hold_file("# generation 12x\n").generation == 0);
    CHECK(parse_hold_file("# generation\n").generation == 0);
    CHECK(parse_hold_file("# generation 1\n# generation 9\n").generation == 9);
    CHECK(parse_hold_file("# generation 18446744073709551616\n").generation == 0);  // too big: ignored
}

TEST_CASE("hold file: format and parse round trip") {
    HoldFile f;
    f.generation = 1234567890123ULL;
    f.addresses = {"joe@example.com", "ann@example.org", "x+y@example.net"};
    auto text = format_hold_file(f);
    CHECK(text.find("# generation 1234567890123\n") != std::string::npos);
    CHECK(text.back() == '\n');
    auto back = parse_hold_file(text);
    CHECK(back.generation == f.generation);
    CHECK(back.addresses == f.addresses);

    HoldFile empty;
    auto e = parse_hold_file(format_hold_file(empty));
    CHECK(e.generation == 0);
    CHECK(e.addresses.empty());

    // A list built from a parsed file holds what the file names.
    HoldList h;
    CHECK(h.update(back.generation, back.addresses));
    CHECK(h.holds("X+Y@example.net", "+"));
    CHECK(h.holds("joe+z@example.com", "+"));
}

// ---------------------------------------------------------------- IMAP

TEST_CASE("imap: tagged, untagged and continuation responses") {
    imap::Response r;
    std::string wire = "A1 OK LOGIN completed\r\n";
    REQUIRE(imap::next_response(wire, r) == imap::Parse::Complete);
    CHECK(r.tag == "A1");
    CHECK(r.status == "OK");
    CHECK(r.text == "LOGIN completed");
    CHECK(r.consumed == wire.size());

    REQUIRE(imap::next_response("a2 no [AUTHORIZATIONFAILED] nope\r\n", r) == imap::Parse::Complete);
    CHECK(r.tag == "a2");
    CHECK(r.status == "NO");
    CHECK(r.text == "[AUTHORIZATIONFAILED] nope");

    REQUIRE(imap::next_response("A3 BAD\r\n", r) == imap::Parse::Complete);
    CHECK(r.tag == "A3");
    CHECK(r.status == "BAD");
    CHECK(r.text.empty());

    REQUIRE(imap::next_response("* OK [CAPABILITY IMAP4rev1] Cyrus ready\r\nA1 OK x\r\n", r) == imap::Parse::Complete);
    CHECK(r.tag == "*");
    CHECK(r.status == "OK");
    CHECK(r.text == "[CAPABILITY IMAP4rev1] Cyrus ready");
    CHECK(r.consumed == std::string("* OK [CAPABILITY IMAP4rev1] Cyrus ready\r\n").size());

    REQUIRE(imap::next_response("* BYE shutting down\r\n", r) == imap::Parse::Complete);
    CHECK(r.status == "BYE");
    REQUIRE(imap::next_response("* PREAUTH hi\r\n", r) == imap::Parse::Complete);
    CHECK(r.status == "PREAUTH");

    // Data responses have no status word.
    REQUIRE(imap::next_response("* 12 EXISTS\r\n", r) == imap::Parse::Complete);
    CHECK(r.tag == "*");
    CHECK(r.status.empty());
    CHECK(r.text == "12 EXISTS");
    REQUIRE(imap::next_response("* OKAY whatever\r\n", r) == imap::Parse::Complete);
    CHECK(r.status.empty());
    CHECK(r.text == "OKAY whatever");

    REQUIRE(imap::next_response("+ go ahead\r\n", r) == imap::Parse::Complete);
    CHECK(r.tag == "+");
    CHECK(r.status.empty());
    CHECK(r.text == "go ahead");
    // A continuation's text is never taken for a status.
    REQUIRE(imap::next_response("+ OK\r\n", r) == imap::Parse::Complete);
    CHECK(r.status.empty());
    CHECK(r.text == "OK");
    REQUIRE(imap::next_response("+\r\n", r) == imap::Parse::Complete);
    CHECK(r.tag == "+");
    CHECK(r.text.empty());
    CHECK(r.consumed == 3);
}

TEST_CASE("imap: a literal is part of its response, CRLFs inside included") {
    imap::Response r;
    std::string one = "* 1 FETCH (BODY[] {5}\r\nhello)\r\n";
    std::string wire = one + "A4 OK done\r\n";
    REQUIRE(imap::next_response(wire, r) == imap::Parse::Complete);
    CHECK(r.tag == "*");
    CHECK(r.text == "1 FETCH (BODY[] {5}");
    CHECK(r.consumed == one.size());
    CHECK(r.raw == one);
    CHECK(imap::literals(r.raw) == std::vector<std::string_view>{"hello"});
    REQUIRE(imap::next_response(std::string_view(wire).substr(r.consumed), r) == imap::Parse::Complete);
    CHECK(r.tag == "A4");
    CHECK(r.status == "OK");

    // The literal's bytes may hold CRLF and "{n}" without effect.
    std::string tricky = "* LIST () \"/\" {7}\r\na\r\n{9}\r\r\n";
    REQUIRE(imap::next_response(tricky, r) == imap::Parse::Complete);
    CHECK(r.consumed == tricky.size());

    // Two literals in one response; {n+} (LITERAL+) too.
    std::string two = "* X {2}\r\nab {3+}\r\ncde tail\r\n";
    REQUIRE(imap::next_response(two + "more", r) == imap::Parse::Complete);
    CHECK(r.consumed == two.size());
    CHECK(r.raw == two);
    CHECK(imap::literals(r.raw) == std::vector<std::string_view>{"ab", "cde"});

    // An empty literal.
    REQUIRE(imap::next_response("* X {0}\r\n\r\n", r) == imap::Parse::Complete);
    CHECK(r.consumed == 11);
}

TEST_CASE("imap: incomplete input, every prefix of a response") {
    std::string wire = "* 1 FETCH (BODY[] {5}\r\nhello)\r\n";
    imap::Response r;
    for (std::size_t n = 0; n < wire.size(); ++n) {
        CAPTURE(n);
        CHECK(imap::next_response(std::string_view(wire).substr(0, n), r) == imap::Parse::Incomplete);
    }
    CHECK(imap::next_response(wire, r) == imap::Parse::Complete);
    CHECK(imap::next_response("A1 OK done\r", r) == imap::Parse::Incomplete);
    CHECK(imap::next_response("* X {10}\r\nhello", r) == imap::Parse::Incomplete);
}

TEST_CASE("imap: invalid literal counts and overlong responses") {
    imap::Response r;
    CHECK(imap::next_response("* X {}\r\n", r) == imap::Parse::Invalid);
    CHECK(imap::next_response("* X {+}\r\n", r) == imap::Parse::Invalid);
    CHECK(imap::next_response("* X {-1}\r\n", r) == imap::Parse::Invalid);
    CHECK(imap::next_response("* X {1a}\r\n", r) == imap::Parse::Invalid);
    CHECK(imap::next_response("* X {1234567890}\r\n", r) == imap::Parse::Invalid);
    CHECK(imap::next_response("* X {999999999}\r\n", r) == imap::Parse::Invalid);
    CHECK(imap::next_response("* X {" + std::to_string(imap::kMaxResponse + 1) + "}\r\n", r) ==
          imap::Parse::Invalid);
    // Invalid even before the literal has arrived, and without its CRLF.
    CHECK(imap::next_response("* X {" + std::to_string(imap::kMaxResponse) + "}\r\nabc", r) == imap::Parse::Invalid);

    std::string long_line(imap::kMaxResponse + 1, 'a');
    CHECK(imap::next_response(long_line, r) == imap::Parse::Invalid);
    CHECK(imap::next_response(long_line + "\r\n", r) == imap::Parse::Invalid);
    std::string max_line(imap::kMaxResponse - 10, 'a');
    CHECK(imap::next_response(max_line, r) == imap::Parse::Incomplete);
    CHECK(imap::next_response("* " + max_line + "\r\n", r) == imap::Parse::Complete);
}

TEST_CASE("imap: quote() makes atoms or quoted strings") {
    CHECK(imap::quote("INBOX") == std::optional<std::string>("INBOX"));
    CHECK(imap::quote("user.joe@example.com") == std::optional<std::string>("user.joe@example.com"));
    CHECK(imap::quote("") == std::optional<std::string>("\"\""));
    CHECK(imap::quote("two words") == std::optional<std::string>("\"two words\""));
    CHECK(imap::quote("a\"b") == std::optional<std::string>("\"a\\\"b\""));
    CHECK(imap::quote("a\\b") == std::optional<std::string>("\"a\\\\b\""));
    CHECK(imap::quote("%") == std::optional<std::string>("\"%\""));
    CHECK(imap::quote("*") == std::optional<std::string>("\"*\""));
    CHECK(imap::quote("(x)") == std::optional<std::string>("\"(x)\""));
    CHECK(imap::quote("{5}") == std::optional<std::string>("\"{5}\""));
    CHECK(imap::quote("tab\there") == std::optional<std::string>("\"tab\there\""));
    CHECK(imap::quote("del\x7f") == std::optional<std::string>("\"del\x7f\""));
    CHECK_FALSE(imap::quote("a\rb"));
    CHECK_FALSE(imap::quote("a\nb"));
    CHECK_FALSE(imap::quote(std::string_view("a\0b", 3)));
    CHECK_FALSE(imap::quote("caf\xc3\xa9"));
}

TEST_CASE("imap: command() lines") {
    CHECK(imap::command("A1", "LOGIN", {"cyrus", "s3cret pass"}) ==
          std::optional<std::string>("A1 LOGIN cyrus \"s3cret pass\"\r\n"));
    CHECK(imap::command("A2", "CAPABILITY", {}) == std::optional<std::string>("A2 CAPABILITY\r\n"));
    CHECK(imap::command("A3", "SETQUOTA", {"user.joe", "(STORAGE 1024)"}) ==
          std::optional<std::string>("A3 SETQUOTA user.joe \"(STORAGE 1024)\"\r\n"));
    CHECK(imap::command("A4", "SELECT", {""}) == std::optional<std::string>("A4 SELECT \"\"\r\n"));
    CHECK_FALSE(imap::command("A5", "LOGIN", {"joe", "pa\r\nA6 LOGOUT"}));
    CHECK_FALSE(imap::command("A5", "LOGIN", {"j\xc3\xb6", "x"}));
}

// ---------------------------------------------------------------- CSV

namespace {
std::vector<std::vector<std::string>> fields_of(const csv::Parsed& p) {
    std::vector<std::vector<std::string>> out;
    for (const auto& r : p.records) out.push_back(r.fields);
    return out;
}
std::vector<std::size_t> lines_of(const csv::Parsed& p) {
    std::vector<std::size_t> out;
    for (const auto& r : p.records) out.push_back(r.line);
    return out;
}
using Rows = std::vector<std::vector<std::string>>;
using Lines = std::vector<std::size_t>;
}  // namespace

TEST_CASE("csv: plain records, LF and CRLF, blank lines skipped") {
    auto p = csv::parse("mail,name,quota\njoe@example.com,Joe,1G\r\n\r\n\nann@example.org,,\n");
    CHECK(p.error.empty());
    CHECK(fields_of(p) ==
          Rows{{"mail", "name", "quota"}, {"joe@example.com", "Joe", "1G"}, {"ann@example.org", "", ""}});
    CHECK(lines_of(p) == Lines{1, 2, 5});

    p = csv::parse("a,b");  // no final line end
    CHECK(p.error.empty());
    CHECK(fields_of(p) == Rows{{"a", "b"}});
    p = csv::parse("a,b\r");
    CHECK(fields_of(p) == Rows{{"a", "b"}});
    p = csv::parse("a,\n");
    CHECK(fields_of(p) == Rows{{"a", ""}});
    p = csv::parse(",\n");
    CHECK(fields_of(p) == Rows{{"", ""}});
    p = csv::parse(" a , b \n");  // spaces are data
    CHECK(fields_of(p) == Rows{{" a ", " b "}});
    p = csv::parse("a\rb,c\n");  // a lone CR is data
    CHECK(fields_of(p) == Rows{{"a\rb", "c"}});

    CHECK(csv::parse("").records.empty());
    CHECK(csv::parse("\n\r\n\n").records.empty());
    CHECK(csv::parse("\n\r\n\n").error.empty());
}

TEST_CASE("csv: quoted fields") {
    auto p = csv::parse("\"Doe, Joe\",\"say \"\"hi\"\"\",\"\"\n");
    CHECK(p.error.empty());
    CHECK(fields_of(p) == Rows{{"Doe, Joe", "say \"hi\"", ""}});

    p = csv::parse("\"a\"\r\nb\r\n");
    CHECK(fields_of(p) == Rows{{"a"}, {"b"}});
    CHECK(lines_of(p) == Lines{1, 2});

    p = csv::parse("x,\"a\"");
    CHECK(fields_of(p) == Rows{{"x", "a"}});

    // A quote inside an unquoted field is data.
    p = csv::parse("a\"b,c\n");
    CHECK(p.error.empty());
    CHECK(fields_of(p) == Rows{{"a\"b", "c"}});
}

TEST_CASE("csv: embedded line breaks and the lines of the records after them") {
    auto p = csv::parse("1,\"two\nlines\"\n2,\"three\r\nlines\nhere\"\n\n3,x\n");
    CHECK(p.error.empty());
    CHECK(fields_of(p) == Rows{{"1", "two\nlines"}, {"2", "three\r\nlines\nhere"}, {"3", "x"}});
    CHECK(lines_of(p) == Lines{1, 3, 7});
}

TEST_CASE("csv: errors name the line, the records before are kept") {
    auto p = csv::parse("a,b\nc,\"unterminated\nmore\n");
    CHECK(p.error == "line 2: unterminated quoted field");
    CHECK(fields_of(p) == Rows{{"a", "b"}});

    p = csv::parse("a\n\nb,\"x\"y\n");
    CHECK(p.error == "line 3: text after a closing quote");
    CHECK(fields_of(p) == Rows{{"a"}});

    p = csv::parse("\"multi\nline\" junk\n");
    CHECK(p.error == "line 2: text after a closing quote");
    CHECK(p.records.empty());

    p = csv::parse("\"a\"\rb\n");
    CHECK(p.error == "line 1: text after a closing quote");

    p = csv::parse("\"");
    CHECK(p.error == "line 1: unterminated quoted field");
}

TEST_CASE("csv: format and parse round trip") {
    CHECK(csv::format({"a", "b"}) == "a,b\n");
    CHECK(csv::format({"Doe, Joe", "say \"hi\"", "", "x\ny", "cr\r"}) ==
          "\"Doe, Joe\",\"say \"\"hi\"\"\",,\"x\ny\",\"cr\r\"\n");
    CHECK(csv::format({}) == "\n");

    std::vector<std::vector<std::string>> rows = {
        {"joe@example.com", "Joe Doe", "1G"},
        {"a,b", "\"", "\"\"", "", " lead", "trail "},
        {"multi\nline", "crlf\r\ninside", "lone\rcr", "\\back"},
        {"", ""},
        {"\"quoted\"", "x"},
        {"single"},
    };
    std::string text;
    for (const auto& r : rows) text += csv::format(r);
    auto p = csv::parse(text);
    CHECK(p.error.empty());
    CHECK(fields_of(p) == rows);
    CHECK(lines_of(p) == Lines{1, 2, 3, 6, 7, 8});
}

// ---------------------------------------------------------------- apply_modifications

namespace {
Entry user_entry() {
    Entry e;
    e.dn = "uid=joe,ou=people,dc=example,dc=com";
    e.attributes = {{"objectClass", {"inetOrgPerson", "mailRecipient"}},
                    {"mail", {"joe@example.com"}},
                    {"mailAlternateAddress", {"j.doe@example.com", "jd@example.com"}},
                    {"cn", {"Joe"}}};
    return e;
}
}  // namespace

TEST_CASE("apply_modifications: Replace") {
    using Op = Modification::Op;
    auto e = user_entry();
    auto r = apply_modifications(e, {{Op::Replace, "MAIL", {"joe@new.example"}}});
    CHECK(r.ok());
    REQUIRE(e.values("mail"));
    CHECK(*e.values("mail") == std::vector<std::string>{"joe@new.example"});
    int n = 0;
    for (const auto& a : e.attributes) n += iequals(a.name, "mail");
    CHECK(n == 1);

    // Replace of an absent attribute adds it.
    CHECK(apply_modifications(e, {{Op::Replace, "mailQuota", {"1024"}}}).ok());
    CHECK(e.first("mailquota") == "1024");
    // Replace with no values removes the attribute; absent is fine too.
    CHECK(apply_modifications(e, {{Op::Replace, "mailquota", {}}}).ok());
    CHECK(e.find("mailQuota") == nullptr);
    CHECK(apply_modifications(e, {{Op::Replace, "description", {}}}).ok());
    CHECK(e.find("description") == nullptr);
    // Multi-valued replace.
    CHECK(apply_modifications(e, {{Op::Replace, "mailAlternateAddress", {"a@x", "b@x", "c@x"}}}).ok());
    CHECK(*e.values("mailalternateaddress") == std::vector<std::string>{"a@x", "b@x", "c@x"});
}

TEST_CASE("apply_modifications: Add") {
    using Op = Modification::Op;
    auto e = user_entry();
    CHECK(apply_modifications(e, {{Op::Add, "MailAlternateAddress", {"new@example.com"}}}).ok());
    CHECK(*e.values("mailAlternateAddress") ==
          std::vector<std::string>{"j.doe@example.com", "jd@example.com", "new@example.com"});
    // A new attribute.
    CHECK(apply_modifications(e, {{Op::Add, "mailForwardingAddress", {"f@x", "g@x"}}}).ok());
    CHECK(*e.values("mailforwardingaddress") == std::vector<std::string>{"f@x", "g@x"});

    // A value that is already there, in any case, is refused.
    auto r = apply_modifications(e, {{Op::Add, "mailalternateaddress", {"JD@Example.COM"}}});
    CHECK_FALSE(r.ok());
    CHECK(r.code == WriteResult::Code::Invalid);
    CHECK(r.error.find("value exists") != std::string::npos);
    // So is the same value twice in one change.
    auto e2 = user_entry();
    r = apply_modifications(e2, {{Op::Add, "cn", {"Jo", "jo"}}});
    CHECK(r.code == WriteResult::Code::Invalid);
}

TEST_CASE("apply_modifications: Delete") {
    using Op = Modification::Op;
    auto e = user_entry();
    CHECK(apply_modifications(e, {{Op::Delete, "mailalternateaddress", {"J.Doe@example.com"}}}).ok());
    CHECK(*e.values("mailAlternateAddress") == std::vector<std::string>{"jd@example.com"});

    // Deleting a value that is not there is refused.
    auto r = apply_modifications(e, {{Op::Delete, "mailAlternateAddress", {"nobody@example.com"}}});
    CHECK(r.code == WriteResult::Code::Invalid);
    CHECK(r.error.find("no such value") != std::string::npos);
    CHECK(*e.values("mailAlternateAddress") == std::vector<std::string>{"jd@example.com"});
    // So is deleting from an attribute that is not there.
    r = apply_modifications(e, {{Op::Delete, "description", {"x"}}});
    CHECK(r.code == WriteResult::Code::Invalid);
    r = apply_modifications(e, {{Op::Delete, "description", {}}});
    CHECK(r.code == WriteResult::Code::Invalid);

    // Deleting the last value removes the attribute.
    CHECK(apply_modifications(e, {{Op::Delete, "MAILALTERNATEADDRESS", {"jd@example.com"}}}).ok());
    CHECK(e.find("mailAlternateAddress") == nullptr);
    // Delete with no values removes the whole attribute.
    CHECK(apply_modifications(e, {{Op::Delete, "ObjectClass", {}}}).ok());
    CHECK(e.find("objectclass") == nullptr);
    CHECK(e.first("mail") == "joe@example.com");
    CHECK(e.first("cn") == "Joe");
}

TEST_CASE("apply_modifications: several changes in order") {
    using Op = Modification::Op;
    auto e = user_entry();
    std::vector<Modification> changes = {
        {Op::Delete, "mail", {"joe@example.com"}},
        {Op::Add, "mail", {"joe@new.example"}},
        {Op::Add, "mailAlternateAddress", {"joe@example.com"}},
        {Op::Replace, "cn", {"Joe Doe"}},
    };
    CHECK(apply_modifications(e, changes).ok());
    CHECK(*e.values("mail") == std::vector<std::string>{"joe@new.example"});
    CHECK(*e.values("mailAlternateAddress") ==
          std::vector<std::string>{"j.doe@example.com", "jd@example.com", "joe@example.com"});
    CHECK(e.first("cn") == "Joe Doe");
    CHECK(apply_modifications(e, {}).ok());
}

// ---------------------------------------------------------------- JSON

TEST_CASE("json_string escapes") {
    CHECK(json_string("") == "\"\"");
    CHECK(json_string("plain text") == "\"plain text\"");
    CHECK(json_string("say \"hi\"") == "\"say \\\"hi\\\"\"");
    CHECK(json_string("C:\\dir") == "\"C:\\\\dir\"");
    CHECK(json_string("a\nb\rc\td") == "\"a\\nb\\rc\\td\"");
    CHECK(json_string(std::string_view("\0\x01\x1f", 3)) == "\"\\u0000\\u0001\\u001f\"");
    CHECK(json_string("\x08\x0c\x1b") == "\"\\u0008\\u000c\\u001b\"");
    CHECK(json_string(" ~\x7f") == "\" ~\x7f\"");
    CHECK(json_string("caf\xc3\xa9 /") == "\"caf\xc3\xa9 /\"");
}

TEST_CASE("JsonObject and json_array") {
    CHECK(JsonObject().text() == "{}");
    JsonObject o;
    o.str("mail", "joe@example.com")
        .num("quota", std::uint64_t{1024})
        .num("ratio", 0.5)
        .boolean("active", true)
        .boolean("held", false)
        .strings("aliases", {"a@x", "b\"@x"})
        .strings("none", {})
        .raw("obj", JsonObject().str("k", "v").text());
    CHECK(o.text() ==
          "{\"mail\":\"joe@example.com\",\"quota\":1024,\"ratio\":0.5,\"active\":true,\"held\":false,"
          "\"aliases\":[\"a@x\",\"b\\\"@x\"],\"none\":[],\"obj\":{\"k\":\"v\"}}");

    JsonObject odd;
    odd.str("we\"ird\n", "v").num("nan", std::numeric_limits<double>::quiet_NaN()).num("inf", 1.0 / 0.0);
    CHECK(odd.text() == "{\"we\\\"ird\\n\":\"v\",\"nan\":null,\"inf\":null}");
    JsonObject big;
    big.num("max", std::numeric_limits<std::uint64_t>::max()).num("third", 1.0 / 3.0);
    CHECK(big.text() == "{\"max\":18446744073709551615,\"third\":0.333333}");

    CHECK(json_array({}) == "[]");
    CHECK(json_array({"1"}) == "[1]");
    CHECK(json_array({"1", "\"two\"", "{}", "[]"}) == "[1,\"two\",{},[]]");
}

TEST_CASE("imap::tokens splits a response line into atoms, quoted strings and lists") {
    auto t = mailgrid::imap::tokens("LIST (\\HasNoChildren) \".\" \"user.a b\" x");
    REQUIRE(t.size() == 5);
    CHECK(t[0] == "LIST");
    CHECK(t[1] == "(\\HasNoChildren)");
    CHECK(t[2] == ".");
    CHECK(t[3] == "user.a b");
    CHECK(t[4] == "x");
    CHECK(mailgrid::imap::tokens("QUOTA user.a (STORAGE 10 (x) 100)")[2] == "(STORAGE 10 (x) 100)");
    CHECK(mailgrid::imap::tokens("\"esc\\\"aped\"")[0] == "esc\"aped");
    CHECK(mailgrid::imap::tokens("  ").empty());
}
