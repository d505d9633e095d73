#include <doctest/doctest.h>
#include <lber.h>
#include <ldap.h>

#include <cstring>

#include "config/ldap_table.hpp"
#include "directory/dn.hpp"
#include "directory/escape.hpp"
#include "directory/expand.hpp"
#include "directory/filter.hpp"
#include "directory/ldif.hpp"
#include "directory/ldif_directory.hpp"
#include "directory/replica_directory.hpp"
#include "directory/sync_messages.hpp"
#include "directory/table_results.hpp"

using namespace mailgrid;

TEST_CASE("filter escaping stops injection") {
    CHECK(filter_escape("o'brien*@ex.com") == "o'brien\\2A@ex.com");
    CHECK(filter_escape(std::string("a)(uid=*\0", 9)) == "a\\29\\28uid=\\2A\\00");
    CHECK(dn_escape("Smith, John #1") == "Smith\\2C\\20John\\20\\231");
}

TEST_CASE("Postfix %-expansion of query templates") {
    ExpandContext ctx;
    ctx.add_template("(mail=%s)", true);
    CHECK(ctx.expand_query("(mail=%s)", "joe@example.com", Quote::Filter) == "(mail=joe@example.com)");

    ExpandContext parts;
    parts.add_template("(&(uid=%u)(dc=%2)(dc=%1))", true);
    CHECK(parts.uses_key_parts());
    CHECK(parts.expand_query("(&(uid=%u)(dc=%2)(dc=%1))", "joe@mail.example.com", Quote::Filter) ==
          "(&(uid=joe)(dc=example)(dc=com))");
    // Too few labels, no domain, empty local part: the key is not searched.
    CHECK_FALSE(parts.expand_query("(&(uid=%u)(dc=%2)(dc=%1))", "joe@com", Quote::Filter));
    CHECK_FALSE(parts.expand_query("(&(uid=%u)(dc=%2)(dc=%1))", "joe", Quote::Filter));
    CHECK_FALSE(parts.expand_query("(&(uid=%u)(dc=%2)(dc=%1))", "@example.com", Quote::Filter));

    ExpandContext dn;
    dn.add_template("ou=%d,o=mail", true);
    CHECK(dn.expand_query("ou=%d,o=mail", "a@ex,ample.com", Quote::Dn) == "ou=ex\\2Cample.com,o=mail");
    CHECK_THROWS_AS(dn.add_template("(x=%z)", true), std::invalid_argument);
}

TEST_CASE("Postfix result_format: %d skips values without a domain") {
    ExpandContext ctx;
    ctx.add_template("(mail=%s)", true);
    ctx.add_template("smtp:[%d]", false);
    CHECK(ctx.expand_result("smtp:[%d]", "joe@mbox3.example.net", "joe@example.com") == "smtp:[mbox3.example.net]");
    CHECK_FALSE(ctx.expand_result("smtp:[%d]", "nodomain", "joe@example.com"));
    ExpandContext pct;
    pct.add_template("%%%s", false);
    CHECK(pct.expand_result("%%%s", "v", "k") == "%v");
}

TEST_CASE("filters: parse, print, evaluate like slapd") {
    std::string err;
    auto f = parse_filter("(&(objectClass=mailUser)  (|(mail=Joe@Example.com)(uid=j*e)))", &err);
    REQUIRE(f);
    Entry e;
    e.dn = "uid=joe,dc=example,dc=com";
    e.attributes = {{"objectClass", {"top", "mailUser"}}, {"mail", {"joe@example.com"}}, {"uid", {"joe"}},
                    {"mailQuotaBytes", {"1000"}}, {"userPassword", {"Secret"}}};
    CHECK(matches(*f, e));
    CHECK(matches(*parse_filter("uid=JOE"), e));  // bare item, case-insensitive
    CHECK(matches(*parse_filter("(mailQuotaBytes>=999)"), e));
    CHECK_FALSE(matches(*parse_filter("(mailQuotaBytes>=1001)"), e));
    CHECK(matches(*parse_filter("(!(uid=bob))"), e));
    CHECK(matches(*parse_filter("(uid=*)"), e));
    CHECK_FALSE(matches(*parse_filter("(userPassword=secret)"), e));  // octet string: exact
    CHECK(matches(*parse_filter("(userPassword=Secret)"), e));
    CHECK(to_string(*parse_filter("(mail=a\\2ab)")) == "(mail=a\\2Ab)");
    CHECK_FALSE(parse_filter("(mail=a", &err));
    CHECK_FALSE(parse_filter("(&(a=b)", &err));
    CHECK_FALSE(parse_filter("(mail=a(b)", &err));
}

TEST_CASE("an escaped key is one literal value, whatever it contains") {
    std::string nasty("*)(uid=*)(|(mail=\0x\\", 20);
    auto f = parse_filter("(mail=" + filter_escape(nasty) + ")");
    REQUIRE(f);
    CHECK(f->kind == Filter::Kind::Equal);
    CHECK(f->value == nasty);
}

TEST_CASE("DN normalisation and scope") {
    CHECK(normalize_dn("UID=Joe, OU=People,dc=Example,DC=com") == "uid=joe,ou=people,dc=example,dc=com");
    CHECK(normalize_dn("cn=Smith\\2C John,o=x") == normalize_dn("cn=smith\\, john,o=x"));
    CHECK_FALSE(normalize_dn("no equals sign"));
    CHECK(dn_in_scope("uid=a,ou=p,dc=x", "dc=x", -1));
    CHECK_FALSE(dn_in_scope("uid=a,ou=p,dc=x", "dc=x", 1));
    CHECK(dn_in_scope("ou=p,dc=x", "dc=x", 1));
    CHECK(dn_in_scope("dc=x", "dc=x", 0));
    CHECK_FALSE(dn_in_scope("uid=a,ou=pdc=x", "dc=x", -1));
}

TEST_CASE("LDIF: folding, base64, comments, errors with line numbers") {
    auto r = parse_ldif(
        "version: 1\n\n"
        "# a comment\n"
        "#  folded comment\n"
        "dn: uid=joe,dc=ex\n"
        "cn: Jo\n"
        " e Doe\n"
        "description:: w6lsw6h2ZQ==\n"
        "\n"
        "dn: uid=bad,dc=ex\n"
        "this line is broken\n"
        "\n"
        "dn: uid=ann,dc=ex\n"
        "changetype: modify\n",
        "u.ldif");
    REQUIRE(r.entries.size() == 1);
    CHECK(r.entries[0].first("cn") == "Joe Doe");
    CHECK(r.entries[0].first("description") == "\xc3\xa9l\xc3\xa8ve");
    REQUIRE(r.errors.size() == 2);
    CHECK(r.errors[0] == "u.ldif, line 11: missing ':' after attribute name");
    CHECK(to_ldif(r.entries[0]).find("description:: ") != std::string::npos);
}

TEST_CASE("embedded directory: indexed equality, scope, size limit, attributes") {
    std::vector<Entry> entries(3);
    entries[0].dn = "uid=a,ou=people,dc=ex";
    entries[0].attributes = {{"mail", {"a@ex"}}, {"maildrop", {"a@m1"}}, {"cn", {"A"}}};
    entries[1].dn = "uid=b,ou=people,dc=ex";
    entries[1].attributes = {{"mail", {"b@ex"}}, {"maildrop", {"b@m2"}}};
    entries[2].dn = "uid=c,ou=other,dc=ex";
    entries[2].attributes = {{"mail", {"a@ex"}}, {"maildrop", {"c@m3"}}};
    std::vector<std::string> errors;
    auto snap = LdifSnapshot::from_entries(entries, errors);
    SearchRequest req;
    req.base = "ou=people,dc=ex";
    req.filter = "(mail=A@EX)";
    req.attributes = {"maildrop"};
    auto r = snap->search(req);
    REQUIRE(r.entries.size() == 1);
    CHECK(r.entries[0].attributes.size() == 1);
    CHECK(r.entries[0].first("maildrop") == "a@m1");
    req.base = "dc=ex";
    CHECK(snap->search(req).entries.size() == 2);
    req.size_limit = 1;
    CHECK(snap->search(req).code == SearchResult::Code::SizeLimit);
    req.size_limit = 0;
    req.filter = "(|(mail=b@ex)(cn=a))";
    CHECK(snap->search(req).entries.size() == 2);
    req.base = "dc=nowhere";
    CHECK(snap->search(req).code == SearchResult::Code::NoSuchObject);
    req.base = "dc=ex";
    req.filter = "(mail=";
    CHECK(snap->search(req).code == SearchResult::Code::TempFail);
}

TEST_CASE("Postfix result rules: terminal, leaf, special attributes, limits") {
    auto cfg = LdapTableConfig::from(CfFile::parse(
        "search_base = dc=ex\nresult_attribute = maildrop\nterminal_result_attribute = forward\n"
        "leaf_result_attribute = mail\nspecial_result_attribute = member\n",
        "t.cf"));
    TableResults tr(cfg, "list@ex");
    Entry list;
    list.attributes = {{"maildrop", {"list@m1"}}, {"mail", {"list@ex"}}, {"member", {"uid=a,dc=ex"}}};
    auto items = tr.items(list, 0, 1);
    // mail is leaf-only: skipped because this entry has a special attribute
    REQUIRE(items.size() == 2);
    CHECK_FALSE(items[0].reference);
    CHECK(items[0].text == "list@m1");
    CHECK(items[1].reference);
    CHECK(items[1].text == "uid=a,dc=ex");

    Entry fwd;
    fwd.attributes = {{"maildrop", {"x@m1"}}, {"forward", {"elsewhere@out"}}, {"member", {"uid=b,dc=ex"}}};
    items = tr.items(fwd, 0, 2);
    REQUIRE(items.size() == 1);  // terminal: only the terminal attribute, no recursion
    CHECK(items[0].text == "elsewhere@out");

    auto limited = LdapTableConfig::from(CfFile::parse("search_base = dc=ex\nexpansion_limit = 1\n", "t.cf"));
    TableResults one(limited, "k");
    one.append("a");
    CHECK_FALSE(one.failed());
    one.append("b");
    CHECK(one.failed());
}

TEST_CASE("normalising a DN twice changes nothing (escaped edge spaces stay)") {
    auto once = normalize_dn("cn=\\20x\\20,dc=x");
    REQUIRE(once);
    CHECK(normalize_dn(*once) == once);
    CHECK(normalize_dn(*normalize_dn("cn=\\20")) == normalize_dn("cn=\\20"));
}

TEST_CASE("replica: which searches the in-memory copy may answer") {
    auto base = *normalize_dn("dc=Example, dc=com");
    SearchRequest r;
    r.base = "ou=people,dc=example,dc=com";
    r.attributes = {"maildrop"};
    CHECK(ReplicaDirectory::covers(base, r));
    r.base = "DC=EXAMPLE,DC=COM";
    CHECK(ReplicaDirectory::covers(base, r));
    r.base = "dc=example,dc=org";  // another tree
    CHECK_FALSE(ReplicaDirectory::covers(base, r));
    r.base = "dc=com";  // above the copy: it holds only part of the answer
    CHECK_FALSE(ReplicaDirectory::covers(base, r));
    r.base = "not a dn";
    CHECK_FALSE(ReplicaDirectory::covers(base, r));
    r.base = "dc=example,dc=com";
    r.attributes = {"maildrop", "modifyTimestamp"};  // operational: not in the copy
    CHECK_FALSE(ReplicaDirectory::covers(base, r));
    r.attributes = {"+"};
    CHECK_FALSE(ReplicaDirectory::covers(base, r));
    r.attributes = {"1.1"};
    CHECK(ReplicaDirectory::covers(base, r));
}

TEST_CASE("project_entry: what a search for these attributes returns") {
    Entry e{"uid=a,dc=x", {{"uid", {"a"}}, {"mail", {"a@x"}}, {"mailAcceptingGeneralId", {"a@x", "b@x"}}}};
    CHECK(project_entry(e, {}).attributes.size() == 3);
    CHECK(project_entry(e, {"1.1"}).attributes.empty());
    auto m = project_entry(e, {"MAILACCEPTINGGENERALID"});
    REQUIRE(m.attributes.size() == 1);
    CHECK(m.attributes[0].values.size() == 2);
    CHECK(m.dn == "uid=a,dc=x");
}

// ---------------------------------------------------------- RFC 4533 values

namespace {

// Encodes with liblber, as slapd's syncprov does, so the decoder is held
// to what a real server sends.
template <class... Args>
std::string ber_encode(const char* fmt, Args... args) {
    BerElement* ber = ber_alloc_t(LBER_USE_DER);
    REQUIRE(ber);
    REQUIRE(ber_printf(ber, fmt, args...) != -1);
    berval bv{};
    REQUIRE(ber_flatten2(ber, &bv, 0) == 0);
    std::string out(bv.bv_val, bv.bv_len);
    ber_free(ber, 1);
    return out;
}

berval bv_of(const char* s) { return berval{std::strlen(s), const_cast<char*>(s)}; }

}  // namespace

TEST_CASE("sync state control: state and entryUUID, with or without a cookie") {
    using namespace ldapsync;
    const char uuid[] = "0123456789abcdef";
    berval u = bv_of(uuid);
    berval cookie = bv_of("rid=001,csn=20261205000000.000000Z#000000#000#000000");
    auto add = parse_state_control(ber_encode("{eO}", static_cast<ber_int_t>(LDAP_SYNC_ADD), &u));
    REQUIRE(add);
    CHECK(add->state == State::Add);
    CHECK(add->uuid == uuid);
    auto del = parse_state_control(ber_encode("{eOO}", static_cast<ber_int_t>(LDAP_SYNC_DELETE), &u, &cookie));
    REQUIRE(del);
    CHECK(del->state == State::Delete);
    CHECK(parse_state_control(ber_encode("{eO}", static_cast<ber_int_t>(LDAP_SYNC_PRESENT), &u))->state ==
          State::Present);
    CHECK(parse_state_control(ber_encode("{eO}", static_cast<ber_int_t>(LDAP_SYNC_MODIFY), &u))->state ==
          State::Modify);

    berval empty = bv_of("");
    CHECK_FALSE(parse_state_control(ber_encode("{eO}", static_cast<ber_int_t>(LDAP_SYNC_ADD), &empty)));
    CHECK_FALSE(parse_state_control(ber_encode("{eO}", static_cast<ber_int_t>(7), &u)));
    CHECK_FALSE(parse_state_control(ber_encode("{OO}", &u, &u)));  // no ENUMERATED
    std::string whole = ber_encode("{eO}", static_cast<ber_int_t>(LDAP_SYNC_ADD), &u);
    for (std::size_t n = 0; n < whole.size(); ++n) CHECK_FALSE(parse_state_control(whole.substr(0, n)));
    CHECK_FALSE(parse_state_control(""));
    // Indefinite length, and a length past the end.
    CHECK_FALSE(parse_state_control(std::string("\x30\x80\x0a\x01\x01\x04\x01x\x00\x00", 10)));
    CHECK_FALSE(parse_state_control(std::string("\x30\x84\xff\xff\xff\xff", 6)));
}

TEST_CASE("sync info: refresh done, refresh not done, deleted ids, new cookie") {
    using namespace ldapsync;
    berval cookie = bv_of("rid=001,csn=x");
    auto present_done = parse_sync_info(ber_encode("t{}", static_cast<ber_tag_t>(LDAP_TAG_SYNC_REFRESH_PRESENT)));
    REQUIRE(present_done);
    CHECK(present_done->kind == SyncInfo::Kind::RefreshPresent);
    CHECK(present_done->refresh_done);  // DEFAULT TRUE
    auto delete_not_done = parse_sync_info(ber_encode("t{Ob}", static_cast<ber_tag_t>(LDAP_TAG_SYNC_REFRESH_DELETE),
                                                      &cookie, static_cast<ber_int_t>(0)));
    REQUIRE(delete_not_done);
    CHECK(delete_not_done->kind == SyncInfo::Kind::RefreshDelete);
    CHECK_FALSE(delete_not_done->refresh_done);

    berval ids[] = {bv_of("0123456789abcdef"), bv_of("fedcba9876543210"), {0, nullptr}};
    auto idset = parse_sync_info(ber_encode("t{Ob[W]}", static_cast<ber_tag_t>(LDAP_TAG_SYNC_ID_SET), &cookie,
                                            static_cast<ber_int_t>(1), ids));
    REQUIRE(idset);
    CHECK(idset->kind == SyncInfo::Kind::IdSet);
    CHECK(idset->refresh_deletes);
    CHECK(idset->uuids == std::vector<std::string>{"0123456789abcdef", "fedcba9876543210"});
    auto present_ids = parse_sync_info(ber_encode("t{[W]}", static_cast<ber_tag_t>(LDAP_TAG_SYNC_ID_SET), ids));
    REQUIRE(present_ids);
    CHECK_FALSE(present_ids->refresh_deletes);  // DEFAULT FALSE
    CHECK(present_ids->uuids.size() == 2);

    auto fresh = parse_sync_info(ber_encode("tO", static_cast<ber_tag_t>(LDAP_TAG_SYNC_NEW_COOKIE), &cookie));
    REQUIRE(fresh);
    CHECK(fresh->kind == SyncInfo::Kind::NewCookie);

    std::string whole = ber_encode("t{Ob[W]}", static_cast<ber_tag_t>(LDAP_TAG_SYNC_ID_SET), &cookie,
                                   static_cast<ber_int_t>(1), ids);
    for (std::size_t n = 0; n < whole.size(); ++n) CHECK_FALSE(parse_sync_info(whole.substr(0, n)));
    CHECK_FALSE(parse_sync_info(ber_encode("t{}", static_cast<ber_tag_t>(0xa7))));
}
