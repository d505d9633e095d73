// fuzz_http - the HTTP/1.x request head parser (nginx auth_http, /metrics).
//
// Input: the first byte picks the head limit (small limits reach the
// kMaxHead boundaries with small inputs), the rest is the byte stream.
//
// Invariants:
//  * a stream parses to the same sequence of results whole or in 1-3 byte
//    fragments (keep-alive: requests follow each other; an error closes);
//  * consumed stays within the buffer and is non-zero for a result;
//  * Ok requests are GET or HEAD with HTTP/1.0 or 1.1 and no body headers;
//  * method, target, version, header names and values never contain CR,
//    LF or NUL; names are non-empty, values are trimmed; at most 100
//    headers;
//  * error statuses are one of 400 405 413 431 505 and have a reason.
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "proto/http.hpp"

using namespace mailgrid;
using namespace mailgrid::http;

namespace {

struct Seen {
    Parsed::State state;
    int status;
    std::string error;
    std::size_t consumed;  // only for Ok: an error may be seen early
    std::string method, target, version;
    std::vector<std::pair<std::string, std::string>> headers;
    bool operator==(const Seen&) const = default;
};

bool clean(std::string_view s) {
    return s.find('\r') == std::string_view::npos && s.find('\n') == std::string_view::npos &&
           s.find('\0') == std::string_view::npos;
}

void check(const Parsed& p) {
    if (p.state == Parsed::State::Error) {
        FUZZ_CHECK(p.status == 400 || p.status == 405 || p.status == 413 || p.status == 431 || p.status == 505);
        FUZZ_CHECK(!p.error.empty());
        FUZZ_CHECK(std::string_view(reason_phrase(p.status)) != "Unknown");
        return;
    }
    const Request& r = p.request;
    FUZZ_CHECK(r.method == "GET" || r.method == "HEAD");
    FUZZ_CHECK(r.version == "HTTP/1.0" || r.version == "HTTP/1.1");
    FUZZ_CHECK(!r.target.empty() && r.target.find(' ') == std::string::npos && clean(r.target));
    FUZZ_CHECK(r.headers.size() <= 100);
    for (const auto& [k, v] : r.headers) {
        FUZZ_CHECK(!k.empty() && clean(k) && clean(v));
        FUZZ_CHECK(k.find(':') == std::string::npos && k.find(' ') == std::string::npos);
        FUZZ_CHECK(v.empty() || (v.front() != ' ' && v.back() != ' ' && v.front() != '\t' && v.back() != '\t'));
    }
    FUZZ_CHECK(!r.has_header("Transfer-Encoding"));
    auto cl = r.header("content-length");
    FUZZ_CHECK(cl.empty() || cl == "0");
    // Accessors on whatever was parsed.
    (void)r.keep_alive();
    auto path = r.path();
    FUZZ_CHECK(path.size() <= r.target.size() && path.find('?') == std::string::npos);
    auto decoded = percent_decode(r.target);
    FUZZ_CHECK(decoded.size() <= r.target.size());
}

Seen take(const Parsed& p) {
    Seen s{p.state, p.status, p.error, p.state == Parsed::State::Ok ? p.consumed : 0, {}, {}, {}, {}};
    if (p.state == Parsed::State::Ok) {
        s.method = p.request.method;
        s.target = p.request.target;
        s.version = p.request.version;
        s.headers = p.request.headers;
    }
    return s;
}

// Parses requests off the front of buf; true once an error closed the
// connection.
bool drain(std::string_view& buf, std::size_t max_head, std::vector<Seen>& out) {
    for (;;) {
        Parsed p = parse_request(buf, max_head);
        if (p.state == Parsed::State::Incomplete) {
            FUZZ_CHECK(p.consumed == 0);
            return false;
        }
        FUZZ_CHECK(p.consumed > 0 && p.consumed <= buf.size());
        check(p);
        out.push_back(take(p));
        if (p.state == Parsed::State::Error) return true;
        buf.remove_prefix(p.consumed);
    }
}

void stream_equivalence(std::string_view input, std::size_t max_head) {
    std::vector<Seen> whole;
    std::string_view rest = input;
    bool whole_closed = drain(rest, max_head, whole);

    std::vector<Seen> pieces;
    std::string buf;
    bool closed = false;
    fuzz::for_each_fragment(input, [&](std::string_view frag) {
        if (closed) return;
        buf.append(frag);
        std::string_view v = buf;
        closed = drain(v, max_head, pieces);
        buf.erase(0, buf.size() - v.size());
    });
    FUZZ_CHECK(closed == whole_closed);
    FUZZ_CHECK(pieces == whole);
    if (!closed) FUZZ_CHECK(buf == rest);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    unsigned sel = data[0];
    std::string_view input = fuzz::as_view(data + 1, size - 1);
    std::size_t max_head = (sel & 0x80) ? kMaxHead : 4 + (sel & 0x7F);
    stream_equivalence(input, max_head);

    // Serialising a response that echoes request data stays well-formed.
    Response resp;
    resp.status = 200;
    resp.body = std::string(input.substr(0, 64));
    std::string out = serialize(resp, (sel & 1) != 0, (sel & 2) != 0);
    FUZZ_CHECK(out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    FUZZ_CHECK(out.find("\r\n\r\n") != std::string::npos);
    return 0;
}
