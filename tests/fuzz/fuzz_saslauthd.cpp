// fuzz_saslauthd - the saslauthd mux request codec and saslauthd.conf.
//
// Invariants:
//  * parsing is a function of the bytes received so far: feeding the input
//    in 1-3 byte fragments reaches the same final state and fields as
//    feeding it whole, and a prefix of a complete request is never
//    complete with different fields;
//  * no field is ever longer than kMaxField; consumed stays in the buffer;
//  * re-encoding the parsed fields parses back to the same request;
//  * SaslauthdConf::parse either throws ConfigError or yields a config, and
//    expand_tokens with an arbitrary login is one filter value per token:
//    "(uid=%u)" expands to a filter that parses as uid=<login>.
#include <string>

#include "config/saslauthd_conf.hpp"
#include "directory/filter.hpp"
#include "fuzz_check.hpp"
#include "proto/saslauthd.hpp"

using namespace mailgrid;

namespace {

std::string counted(const std::string& s) {
    std::string out;
    out.push_back(static_cast<char>((s.size() >> 8) & 0xFF));
    out.push_back(static_cast<char>(s.size() & 0xFF));
    return out + s;
}

void check(const saslauthd::Parsed& p, std::size_t size) {
    FUZZ_CHECK(p.consumed <= size);
    using S = saslauthd::Parsed::State;
    if (p.state != S::Four && p.state != S::Five) return;
    const auto& r = p.request;
    for (const auto* f : {&r.login, &r.password, &r.service, &r.realm, &r.client_addr})
        FUZZ_CHECK(f->size() <= saslauthd::kMaxField);
    std::string again = counted(r.login) + counted(r.password) + counted(r.service) + counted(r.realm);
    if (p.state == S::Five) again += counted(r.client_addr);
    auto q = saslauthd::parse(again);
    FUZZ_CHECK(q.state == p.state && q.consumed == again.size());
    FUZZ_CHECK(q.request.login == r.login && q.request.password == r.password && q.request.service == r.service &&
               q.request.realm == r.realm && q.request.client_addr == r.client_addr);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto in = fuzz::as_view(data, size);

    auto whole = saslauthd::parse(in);
    check(whole, in.size());
    std::string buf;
    saslauthd::Parsed last;
    fuzz::for_each_fragment(in, [&](std::string_view piece) {
        buf.append(piece);
        last = saslauthd::parse(buf);
        check(last, buf.size());
    });
    FUZZ_CHECK(last.state == whole.state);
    if (whole.state == saslauthd::Parsed::State::Four || whole.state == saslauthd::Parsed::State::Five)
        FUZZ_CHECK(last.request.login == whole.request.login && last.request.password == whole.request.password);

    // saslauthd.conf and token expansion
    try {
        auto conf = SaslauthdConf::parse(in, "fuzz.conf");
        (void)conf;
    } catch (const ConfigError&) {
    }
    std::string login(in.substr(0, std::min<std::size_t>(in.size(), 300)));
    std::string f = expand_tokens("(uid=%u)", login, "imap", "example.com", "", TokenQuote::Filter);
    if (!login.empty()) {
        auto parsed = parse_filter(f);
        FUZZ_CHECK(parsed && parsed->kind == Filter::Kind::Equal && parsed->attr == "uid" && parsed->value == login);
    }
    return 0;
}
