#include "proto/socketmap.hpp"

#include "proto/netstring.hpp"

namespace mailgrid::socketmap {

namespace {
std::string clean(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (out.size() > 200) break;
        out.push_back(c < 0x20 ? '?' : static_cast<char>(c));
    }
    return out;
}
}  // namespace

std::optional<Request> parse_request(std::string_view buf, std::size_t& consumed) {
    auto frame = netstring::parse(buf, kMaxRequest, consumed);
    if (!frame) return std::nullopt;
    if (!frame->ok) return Request{false, {}, {}, netstring::encode("PERM " + frame->error), true};
    auto sp = frame->payload.find(' ');
    if (sp == std::string_view::npos || sp == 0)
        return Request{false, {}, {}, netstring::encode("PERM request is not \"name key\""), false};
    Request r;
    r.ok = true;
    r.name = std::string(frame->payload.substr(0, sp));
    r.key = std::string(frame->payload.substr(sp + 1));
    if (r.key.empty()) return Request{false, {}, {}, netstring::encode("NOTFOUND "), false};
    return r;
}

std::string format_reply(const Lookup& r) {
    switch (r.status) {
        case Status::Found:
            if (r.value.empty()) return netstring::encode("NOTFOUND ");
            if (r.value.size() + 3 > kMaxReply) return netstring::encode("TEMP result too long");
            return netstring::encode("OK " + r.value);
        case Status::NotFound: return netstring::encode("NOTFOUND ");
        case Status::TempFail: return netstring::encode("TEMP " + clean(r.value.empty() ? "temporary failure" : r.value));
        case Status::PermFail: return netstring::encode("PERM " + clean(r.value.empty() ? "lookup error" : r.value));
    }
    return netstring::encode("TEMP internal error");
}

}  // namespace mailgrid::socketmap
