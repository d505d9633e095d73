#include <doctest/doctest.h>

#include "config/cf_file.hpp"
#include "config/ldap_table.hpp"
#include "config/suite_config.hpp"

using namespace mailgrid;

TEST_CASE("main.cf syntax: comments, continuation lines, '#' inside values") {
    auto cf = CfFile::parse(
        "# comment\n"
        "query_filter = (&(objectClass=mailUser)\n"
        "    (mail=%s))\n"
        "  # an indented comment line inside nothing\n"
        "result_format = smtp:[%d] # not a comment\n"
        "\n"
        "empty =\n",
        "x.cf");
    REQUIRE(cf.find("query_filter"));
    CHECK(cf.find("query_filter")->value == "(&(objectClass=mailUser)    (mail=%s))");
    CHECK(cf.find("query_filter")->line == 2);
    CHECK(cf.find("result_format")->value == "smtp:[%d] # not a comment");
    CHECK(cf.find("empty")->value == "");
}

TEST_CASE("main.cf syntax errors name file and line") {
    CHECK_THROWS_WITH_AS(CfFile::parse("a = 1\nbogus line\n", "t.cf"),
                         "t.cf, line 2: missing '=' after attribute name: \"bogus\"", ConfigError);
}

TEST_CASE("a later definition wins and the earlier one is reported") {
    auto cf = CfFile::parse("a = 1\na = 2\n", "t.cf");
    CHECK(cf.find("a")->value == "2");
    CHECK(cf.duplicates().size() == 1);
}

TEST_CASE("ldap_table defaults are Postfix's") {
    auto t = LdapTableConfig::from(CfFile::parse("search_base = dc=example,dc=com\n", "v.cf"));
    CHECK(t.server.urls == std::vector<std::string>{"ldap://localhost:389"});
    CHECK(t.query_filter == "(mailacceptinggeneralid=%s)");
    CHECK(t.result_attributes == std::vector<std::string>{"maildrop"});
    CHECK(t.server.version == 2);
    CHECK(t.server.timeout_seconds == 10);
    CHECK(t.scope == Scope::Sub);
    CHECK(t.server.bind == BindMode::Simple);
    CHECK(t.recursion_limit == 1000);
    CHECK_FALSE(t.templates.uses_key_parts());
}

TEST_CASE("ldap_table server_host forms and version bump for ldaps") {
    auto t = LdapTableConfig::from(CfFile::parse(
        "server_host = ldap1.example.com, ldap2:3389 ldaps://ldap3.example.com/\n"
        "server_port = 1389\nsearch_base = o=x\n",
        "v.cf"));
    CHECK(t.server.urls ==
          std::vector<std::string>{"ldap://ldap1.example.com:1389", "ldap://ldap2:3389", "ldaps://ldap3.example.com/"});
    CHECK(t.server.version == 3);
}

TEST_CASE("ldap_table: ldif: selects the embedded directory") {
    auto t = LdapTableConfig::from(CfFile::parse("server_host = ldif:/etc/mailgrid/users.ldif\nsearch_base = o=x\n", "v.cf"));
    CHECK(t.embedded);
    CHECK(t.ldif_path == "/etc/mailgrid/users.ldif");
    CHECK_THROWS_AS(LdapTableConfig::from(CfFile::parse("server_host = ldif:/a ldap://b\n", "v.cf")), ConfigError);
}

TEST_CASE("ldap_table: cache parameters are ignored with a warning, bad values fail") {
    auto t = LdapTableConfig::from(CfFile::parse("search_base = o=x\ncache = yes\ncache_size = 100\n", "v.cf"));
    int cache_warnings = 0;
    for (const auto& w : t.warnings)
        if (w.find("ignoring cache") != std::string::npos) ++cache_warnings;
    CHECK(cache_warnings == 2);
    CHECK_THROWS_WITH(LdapTableConfig::from(CfFile::parse("search_base = o=x\ntimeout = ten\n", "v.cf")),
                      "v.cf, line 2: bad numerical configuration: timeout = ten");
    CHECK_THROWS_AS(LdapTableConfig::from(CfFile::parse("search_base = o=x\nbind = maybe\n", "v.cf")), ConfigError);
    CHECK_THROWS_AS(LdapTableConfig::from(CfFile::parse("search_base = o=x\nquery_filter = (a=%x)\n", "v.cf")),
                    ConfigError);
}

TEST_CASE("ldap_table domain restriction") {
    auto t = LdapTableConfig::from(CfFile::parse("search_base = o=x\ndomain = example.com, !bad.example.com\n", "v.cf"));
    CHECK(t.domain_allows("joe@example.com"));
    CHECK(t.domain_allows("joe@EXAMPLE.com"));
    CHECK_FALSE(t.domain_allows("joe@other.com"));
    CHECK_FALSE(t.domain_allows("joe"));
    CHECK_FALSE(t.domain_allows("@example.com"));
}

TEST_CASE("suite config: $name expansion, -o overrides, typed values with locations") {
    SuiteConfig c;
    c.declare({{"base", "/srv", ""}, {"dir", "$base/mail", ""}, {"ttl", "60s", ""}, {"flag", "yes", ""}});
    CHECK(c.get("dir") == "/srv/mail");
    c.set("base", "/data");
    CHECK(c.get("dir") == "/data/mail");
    CHECK(c.get_duration("ttl") == std::chrono::seconds(60));
    CHECK(c.get_bool("flag"));
    c.set("ttl", "soon");
    CHECK_THROWS_WITH(c.get_duration("ttl"), "-o ttl: bad time value for ttl: soon");
}

TEST_CASE("suite config: a parameter declared again takes the later default; show lists by name") {
    SuiteConfig c;
    c.declare({{"zeta", "1", ""}, {"alpha", "2", ""}, {"mid", "3", ""}});
    c.declare({{"mid", "30", ""}, {"beta", "4", ""}});
    CHECK(c.get("mid") == "30");
    CHECK(c.get("alpha") == "2");
    CHECK(c.get("zeta") == "1");
    CHECK(c.get("nosuch").empty());
    CHECK(c.show(false) == "alpha = 2\nbeta = 4\nmid = 30\nzeta = 1\n");
    c.set("beta", "40");
    CHECK(c.show(true) == "beta = 40\n");
}

TEST_CASE("suite config: unknown parameters, except other programs'") {
    SuiteConfig c;
    c.declare({{"tablemap_tables", "", ""}});
    c.set("tablemap_tabels", "x");
    c.set("saslauth_socket", "y");
    auto u = c.unknown({"saslauth_"});
    REQUIRE(u.size() == 1);
    CHECK(u[0].find("tablemap_tabels") != std::string::npos);
}
