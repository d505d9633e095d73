#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <string>

#include "auth/password.hpp"
#include "cache/lru_cache.hpp"
#include "metrics/metrics.hpp"
#include "net/receive_buffer.hpp"
#include "util/base64.hpp"
#include "util/fd_io.hpp"
#include "util/hmac.hpp"
#include "util/strings.hpp"

using namespace mailgrid;

TEST_CASE("durations, sizes, booleans as Postfix writes them") {
    CHECK(parse_duration("10") == std::chrono::seconds(10));
    CHECK(parse_duration("5m") == std::chrono::minutes(5));
    CHECK(parse_duration("250ms") == std::chrono::milliseconds(250));
    CHECK(parse_duration("10", 'm') == std::chrono::minutes(10));
    CHECK_FALSE(parse_duration("ten"));
    CHECK(parse_size("2G") == 2ULL << 30);
    CHECK(parse_bool("Yes") == true);
    CHECK_FALSE(parse_bool("maybe"));
    CHECK(split_list("a, b\tc,,d") == std::vector<std::string>{"a", "b", "c", "d"});
}

TEST_CASE("UTF-8 validation") {
    CHECK(valid_utf8("caf\xc3\xa9"));
    CHECK_FALSE(valid_utf8("caf\xc3"));
    CHECK_FALSE(valid_utf8("\xc0\x80"));        // overlong NUL
    CHECK_FALSE(valid_utf8("\xed\xa0\x80"));    // surrogate
    CHECK(valid_utf8("\xf0\x9f\x93\xa7"));
}

TEST_CASE("base64 round trip and strictness") {
    for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)})
        CHECK(base64_decode(base64_encode(s)) == s);
    CHECK_FALSE(base64_decode("ab$c"));
}

TEST_CASE("LRU cache: TTL, capacity, recency") {
    using C = LruCache<int>;
    C c(2);
    auto t0 = std::chrono::steady_clock::now();
    c.put("a", 1, std::chrono::seconds(10), t0);
    c.put("b", 2, std::chrono::seconds(1), t0);
    CHECK(c.get("a", t0) == 1);  // a is now most recent
    c.put("c", 3, std::chrono::seconds(10), t0);  // evicts b
    CHECK_FALSE(c.get("b", t0));
    CHECK(c.get("c", t0 + std::chrono::seconds(5)) == 3);
    CHECK_FALSE(c.get("c", t0 + std::chrono::seconds(10)));  // expired: never outlives its TTL
    c.put("z", 9, std::chrono::seconds(0), t0);
    CHECK_FALSE(c.get("z", t0));
}

TEST_CASE("password schemes") {
    // {SSHA} of "secret" with salt "salt" (OpenLDAP slappasswd -s secret
    // style, computed independently with Python's hashlib).
    CHECK(verify_password("{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0", "secret") == PasswordCheck::Match);
    CHECK(verify_password("{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0", "Secret") == PasswordCheck::Mismatch);
    CHECK(verify_password("{CRYPT}$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
                          "secret") == PasswordCheck::Match);
    CHECK(verify_password("plain", "plain") == PasswordCheck::Match);
    CHECK(verify_password("{CLEARTEXT}plain", "plain") == PasswordCheck::Match);
    CHECK(verify_password("{NOPE}x", "x") == PasswordCheck::UnsupportedScheme);
    auto s = hash_ssha512("pässwörd");
    CHECK(password_scheme(s) == "SSHA512");
    CHECK(verify_password(s, "pässwörd") == PasswordCheck::Match);
    CHECK(verify_password(s, "passwörd") == PasswordCheck::Mismatch);
    auto a = hash_argon2("pw");
    CHECK(verify_password(a, "pw") == PasswordCheck::Match);
    CHECK(verify_password(a, "pW") == PasswordCheck::Mismatch);
    std::string secret = "hunter2";
    secure_wipe(secret);
    CHECK(secret.empty());
}

TEST_CASE("metrics exposition") {
    MetricsRegistry m;
    m.counter("x_total", "things", {{"table", "v"}}).inc(3);
    m.histogram("lat_seconds", "latency", {}, {0.1, 1}).observe(0.5);
    auto text = m.render();
    CHECK(text.find("# TYPE x_total counter\nx_total{table=\"v\"} 3\n") != std::string::npos);
    CHECK(text.find("lat_seconds_bucket{le=\"0.10000000000000001\"} 0") != std::string::npos);
    CHECK(text.find("lat_seconds_bucket{le=\"1\"} 1") != std::string::npos);
    CHECK(text.find("lat_seconds_count 1") != std::string::npos);
}

TEST_CASE("HmacSha256 gives RFC 4231's answers, again and again on one key") {
    HmacSha256 jefe("Jefe");
    const std::string expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    CHECK(jefe.hex_digest("what do ya want for nothing?") == expected);
    CHECK(jefe.hex_digest("something else") != expected);
    CHECK(jefe.hex_digest("what do ya want for nothing?") == expected);  // the context starts over
    CHECK(jefe.digest("what do ya want for nothing?").size() == 32);
    // RFC 4231 test case 6: a key longer than the block is hashed first.
    HmacSha256 long_key(std::string(131, '\xaa'));
    CHECK(long_key.hex_digest("Test Using Larger Than Block-Size Key - Hash Key First") ==
          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    CHECK(HmacSha256("").hex_digest("").size() == 64);
}

TEST_CASE("write_all: a pipe gets every byte; a full disk and a closed reader are errors") {
    // More than a pipe holds, so the writer blocks and resumes while a
    // child reads it slowly in small pieces.
    std::string data(300000, '\0');
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 23);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(fds[1]);
        std::string got;
        char piece[1000];
        for (ssize_t n; (n = ::read(fds[0], piece, sizeof piece)) > 0;) got.append(piece, static_cast<std::size_t>(n));
        ::_exit(got == data ? 0 : 1);
    }
    ::close(fds[0]);
    int error = 0;
    CHECK(write_all(fds[1], data, &error));
    ::close(fds[1]);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));

    int full = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
    REQUIRE(full >= 0);
    CHECK_FALSE(write_all(full, "x", &error));
    CHECK(error == ENOSPC);
    ::close(full);

    REQUIRE(::pipe(fds) == 0);
    ::close(fds[0]);
    auto old = std::signal(SIGPIPE, SIG_IGN);
    CHECK_FALSE(write_all(fds[1], "x", &error));
    CHECK(error == EPIPE);
    std::signal(SIGPIPE, old);
    ::close(fds[1]);
    CHECK(write_all(-1, "", &error));  // nothing to write: no call made
}

TEST_CASE("ReceiveBuffer: reads land after what is unconsumed, never past the limit") {
    ReceiveBuffer b(40000);
    auto put = [&](std::string_view bytes) {
        auto room = b.room();
        REQUIRE(room.size() >= bytes.size());
        std::copy(bytes.begin(), bytes.end(), room.begin());
        b.commit(bytes.size());
    };
    CHECK(b.data().empty());
    put("LINE one\r\nLINE t");
    CHECK(b.data() == "LINE one\r\nLINE t");
    b.consume(10);
    CHECK(b.data() == "LINE t");
    put("wo\r\n");
    CHECK(b.data() == "LINE two\r\n");
    b.consume(b.data().size());
    CHECK(b.data().empty());

    // Filling up: the room shrinks to the limit, then there is none; what
    // was held survives every slide to the front.
    std::string sent;
    for (int i = 0; b.room().size() > 0; ++i) {
        std::string chunk(std::min<std::size_t>(b.room().size(), 3000), static_cast<char>('a' + i % 26));
        put(chunk);
        sent += chunk;
        if (i % 3 == 2) {
            b.consume(1000);
            sent.erase(0, 1000);
        }
        REQUIRE(b.data() == sent);
    }
    CHECK(b.data().size() == 40000);
    b.consume(1);
    CHECK(b.room().size() == 1);
    CHECK(b.data() == sent.substr(1));

    // Bytes read before the connection existed may exceed the limit.
    ReceiveBuffer small(8);
    small.append("0123456789");
    CHECK(small.data() == "0123456789");
    CHECK(small.room().empty());
    small.consume(4);
    CHECK(small.room().size() == 2);

    small.wipe();
    CHECK(small.data().empty());
    CHECK(small.room().size() == 8);
}
