#include <doctest/doctest.h>

#include "proto/http.hpp"
#include "proto/netstring.hpp"
#include "proto/socketmap.hpp"
#include "proto/tcp_table.hpp"

using namespace mailgrid;

TEST_CASE("tcp_table %XX encoding is Postfix's hex_quote") {
    CHECK(tcp_table::hex_quote("caf\xc3\xa9 100%") == "caf%C3%A9%20100%25");
    CHECK(tcp_table::hex_unquote("caf%c3%A9") == "caf\xc3\xa9");
    CHECK_FALSE(tcp_table::hex_unquote("bad%2"));
    CHECK_FALSE(tcp_table::hex_unquote("bad%zz"));
}

TEST_CASE("tcp_table requests, fed whole or a byte at a time") {
    std::string wire = "get joe%40example.com\nget caf%C3%A9\nput x y\nget bad%G1\nfrob\n";
    std::vector<std::string> whole;
    {
        std::string buf = wire;
        std::size_t used;
        while (auto r = tcp_table::parse_request(buf, used)) {
            whole.push_back(r->ok ? "key:" + r->key : r->reply);
            buf.erase(0, used);
        }
    }
    CHECK(whole == std::vector<std::string>{"key:joe@example.com", "key:caf\xc3\xa9", "400 put is not implemented\n",
                                            "400 malformed %XX encoding in request\n", "400 unsupported request\n"});
    std::vector<std::string> pieces;
    std::string buf;
    for (char c : wire) {
        buf.push_back(c);
        std::size_t used;
        while (auto r = tcp_table::parse_request(buf, used)) {
            pieces.push_back(r->ok ? "key:" + r->key : r->reply);
            buf.erase(0, used);
        }
    }
    CHECK(pieces == whole);
}

TEST_CASE("tcp_table: over-long lines close, replies respect 4096 bytes") {
    std::string huge(tcp_table::kMaxRequestLine + 10, 'a');
    std::size_t used;
    auto r = tcp_table::parse_request(huge, used);
    REQUIRE(r);
    CHECK(r->close);
    CHECK(tcp_table::format_reply(Lookup::found("a b")) == "200 a%20b\n");
    CHECK(tcp_table::format_reply(Lookup::not_found()).rfind("500 ", 0) == 0);
    CHECK(tcp_table::format_reply(Lookup::temp_fail("ldap down\n%")) == "400 ldap down??\n");
    CHECK(tcp_table::format_reply(Lookup::found(std::string(4091, 'x'))).size() == tcp_table::kMaxReply);
    CHECK(tcp_table::format_reply(Lookup::found(std::string(4092, 'x'))).rfind("400 ", 0) == 0);
}

TEST_CASE("socketmap netstrings") {
    std::size_t used;
    auto r = socketmap::parse_request("26:virtual joe+ml@example.com,", used);
    REQUIRE(r);
    CHECK(r->ok);
    CHECK(r->name == "virtual");
    CHECK(r->key == "joe+ml@example.com");
    CHECK(used == 30);
    CHECK_FALSE(socketmap::parse_request("26:virtual joe", used));
    auto bad = socketmap::parse_request("3x:abc,", used);
    REQUIRE(bad);
    CHECK(bad->close);
    auto missing_comma = socketmap::parse_request("3:abc;", used);
    REQUIRE(missing_comma);
    CHECK(missing_comma->close);
    CHECK(socketmap::format_reply(Lookup::found("joe@mbox3")) == "12:OK joe@mbox3,");
    CHECK(socketmap::format_reply(Lookup::found("")) == "9:NOTFOUND ,");
    CHECK(socketmap::format_reply(Lookup::not_found()) == "9:NOTFOUND ,");
    CHECK(socketmap::format_reply(Lookup::temp_fail("down")) == "9:TEMP down,");
    auto too_long = socketmap::parse_request("999999:", used);
    REQUIRE(too_long);
    CHECK(too_long->close);
}

TEST_CASE("http request heads") {
    auto p = http::parse_request(
        "GET /auth HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: plain\r\nAuth-User: joe\r\n"
        "Auth-Pass: p%25ss%20word\r\n\r\nleftover");
    REQUIRE(p.state == http::Parsed::State::Ok);
    CHECK(p.request.header("auth-user") == "joe");
    CHECK(http::percent_decode(p.request.header("Auth-Pass")) == "p%ss word");
    CHECK_FALSE(p.request.keep_alive());
    CHECK(std::string("GET /auth HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: plain\r\nAuth-User: joe\r\n"
                      "Auth-Pass: p%25ss%20word\r\n\r\n")
              .size() == p.consumed);
    CHECK(http::parse_request("GET / HTTP/1.1\r\nHost: x\r\n").state == http::Parsed::State::Incomplete);
    CHECK(http::parse_request("GET / HTTP/1.1\r\n folded: x\r\n\r\n").status == 400);
    CHECK(http::parse_request("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").status == 413);
    CHECK(http::parse_request("GET / SPDY/9\r\n\r\n").status == 505);
    CHECK(http::parse_request(std::string(20000, 'a')).status == 431);
}

TEST_CASE("an HTTP head at exactly the limit is accepted however it arrives") {
    std::string head = "GET / HTTP/1.1\r\n\r\n";
    CHECK(http::parse_request(head, head.size()).state == http::Parsed::State::Ok);
    CHECK(http::parse_request(head.substr(0, head.size() - 1), head.size()).state ==
          http::Parsed::State::Incomplete);
}
