// fuzz_policy - Postfix policy delegation codec and the sending limit
// syntax of mailgrid_policy.
//
// Invariants:
//  * a request stream parses to the same requests whole or in 1-3 byte
//    fragments, and ends the same way (an error, or waiting for more);
//    consumed stays within the buffer and is never 0 for an answer;
//  * an ok request is a smtpd_access_policy request, and formatting it
//    parses back to the same fields, consuming exactly what was written;
//  * a reply is exactly one "action=" line and the empty line, whatever
//    the action text holds;
//  * limits that parse print back ("N/window") to the same limits, and
//    per-user overrides never raise a limit that "unlimited" cleared.
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "policy/limits.hpp"
#include "proto/policy.hpp"

using namespace mailgrid;

namespace {

struct Seen {
    bool ok;
    policy::Request request;
};

// Parses everything complete in buf; true if it ended with an error.
bool drain(std::string_view& buf, std::vector<Seen>& out) {
    for (;;) {
        std::size_t consumed = 12345;
        auto p = policy::parse_request(buf, consumed);
        if (!p) {
            FUZZ_CHECK(consumed == 0);
            return false;
        }
        FUZZ_CHECK(consumed > 0 && consumed <= buf.size());
        buf.remove_prefix(consumed);
        if (!p->ok) {
            FUZZ_CHECK(!p->error.empty());
            out.push_back({false, {}});
            return true;
        }
        const auto& r = p->request;
        FUZZ_CHECK(r.request == "smtpd_access_policy");
        FUZZ_CHECK(r.ignored <= r.attributes);
        std::string again = policy::format_request(r);
        std::size_t used = 0;
        auto q = policy::parse_request(again, used);
        FUZZ_CHECK(q && q->ok && used == again.size());
        FUZZ_CHECK(q->request.same_fields(r));
        out.push_back({true, r});
    }
}

bool same(const std::vector<Seen>& a, const std::vector<Seen>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].ok != b[i].ok || !a[i].request.same_fields(b[i].request)) return false;
    return true;
}

void check_reply(std::string_view action) {
    std::string r = policy::format_reply(action);
    FUZZ_CHECK(r.rfind("action=", 0) == 0);
    FUZZ_CHECK(r.size() >= 9 && r.substr(r.size() - 2) == "\n\n");
    FUZZ_CHECK(r.find('\n') == r.size() - 2);
    FUZZ_CHECK(r.find('\0') == std::string::npos && r.find('\r') == std::string::npos);
    FUZZ_CHECK(r.size() <= 7 + policy::kMaxAction + 2);
}

std::string print_rates(const limits::Rates& rates) {
    std::string out;
    for (auto w : limits::kWindows)
        if (auto v = rates[static_cast<std::size_t>(w)])
            out += std::to_string(*v) + "/" + limits::window_name(w) + ", ";
    return out;
}

void check_limits(std::string_view text) {
    std::string why;
    if (auto rates = limits::parse_rates(text, &why)) {
        auto again = limits::parse_rates(print_rates(*rates), &why);
        FUZZ_CHECK(again && *again == *rates);
    } else {
        FUZZ_CHECK(!why.empty());
    }
    std::vector<std::string> values{std::string(text)};
    if (auto o = limits::parse_override(values, &why)) {
        limits::Limits base;
        base.messages = {7, 70, 700};
        base.recipients = {9, 90, 900};
        auto l = limits::apply(base, *o);
        if (o->unlimited) FUZZ_CHECK(l.none());
        for (std::size_t i = 0; i < 3; ++i) {
            if (!o->unlimited && !o->messages[i]) FUZZ_CHECK(l.messages[i] == base.messages[i]);
            if (!o->unlimited && !o->recipients[i]) FUZZ_CHECK(l.recipients[i] == base.recipients[i]);
        }
    } else {
        FUZZ_CHECK(!why.empty());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);

    std::vector<Seen> whole;
    std::string_view rest = input;
    bool whole_failed = drain(rest, whole);

    std::vector<Seen> pieces;
    std::string buf;
    bool failed = false;
    fuzz::for_each_fragment(input, [&](std::string_view frag) {
        if (failed) return;
        buf.append(frag);
        std::string_view v = buf;
        failed = drain(v, pieces);
        buf.erase(0, buf.size() - v.size());
    });
    FUZZ_CHECK(failed == whole_failed);
    FUZZ_CHECK(same(pieces, whole));
    if (!failed) FUZZ_CHECK(buf == rest);

    check_reply(input);
    if (input.size() <= 512) check_limits(input);
    return 0;
}
