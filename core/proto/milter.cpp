// milter - the milter protocol's framing, and what an MTA may send before
// libmilter sees it (see milter.hpp). Command letters and payloads as
// Sendmail's mfdef.h and libmilter's engine read them.
#include "proto/milter.hpp"

#include <algorithm>

namespace mailgrid::milter {

namespace {

std::size_t count_nul(std::string_view s) { return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\0')); }

bool nul_terminated(std::string_view s) { return !s.empty() && s.back() == '\0'; }

std::string letter(char c) {
    if (c >= 0x21 && c <= 0x7e) return std::string("'") + c + "'";
    static const char hex[] = "0123456789abcdef";
    auto u = static_cast<unsigned char>(c);
    return std::string("0x") + hex[u >> 4] + hex[u & 15];
}

}  // namespace

std::optional<Frame> next_frame(std::string_view buf, std::size_t& consumed) {
    consumed = 0;
    if (buf.size() < 4) return std::nullopt;
    std::uint32_t len = 0;
    for (int i = 0; i < 4; ++i) len = (len << 8) | static_cast<unsigned char>(buf[static_cast<std::size_t>(i)]);
    Frame f;
    if (len == 0 || len > kMaxFrame) {
        consumed = buf.size();
        f.error = "frame length " + std::to_string(len) + (len == 0 ? " (no command)" : " (over the limit)");
        return f;
    }
    if (buf.size() - 4 < len) return std::nullopt;
    f.ok = true;
    f.command = buf[4];
    f.payload = buf.substr(5, len - 1);
    consumed = 4 + static_cast<std::size_t>(len);
    return f;
}

std::optional<std::string> check_mta_command(char command, std::string_view p) {
    switch (command) {
        case 'A':  // abort
        case 'B':  // body chunk
        case 'E':  // end of body (may carry a last chunk)
        case 'K':  // quit, new connection follows
        case 'N':  // end of headers
        case 'Q':  // quit
        case 'T':  // DATA
            return std::nullopt;
        case 'O':  // option negotiation: version, actions, protocol
            if (p.size() < 12) return "option negotiation of " + std::to_string(p.size()) + " bytes (12 expected)";
            return std::nullopt;
        case 'C': {  // connect: host\0 family [port(2) address\0]
            auto nul = p.find('\0');
            if (nul == std::string_view::npos || nul + 1 >= p.size())
                return std::string("connect without a host name and address family");
            char family = p[nul + 1];
            if (family == 'U') return std::nullopt;  // unknown: nothing follows
            if (family != '4' && family != '6' && family != 'L')
                return "connect with address family " + letter(family);
            auto rest = p.substr(nul + 2);
            if (rest.size() < 3 || !nul_terminated(rest)) return std::string("connect without port and address");
            return std::nullopt;
        }
        case 'H':  // HELO name
        case 'U':  // unknown SMTP command
            if (!nul_terminated(p)) return std::string(command == 'H' ? "helo" : "unknown command") + " without a NUL-terminated string";
            return std::nullopt;
        case 'M':  // MAIL FROM: sender, ESMTP arguments
        case 'R':  // RCPT TO: recipient, ESMTP arguments
            if (!nul_terminated(p))
                return std::string(command == 'M' ? "mail" : "rcpt") + " without NUL-terminated strings";
            return std::nullopt;
        case 'L':  // header: name\0value\0
            if (!nul_terminated(p) || count_nul(p) != 2) return std::string("header that is not a name and a value");
            return std::nullopt;
        case 'D': {  // macros for a stage: stage, then name\0value\0 pairs
            if (p.empty()) return std::string("macros without a stage");
            char stage = p[0];
            // Postfix also sends macros ahead of headers ('L'); any command
            // letter is a stage libmilter files or ignores.
            if (std::string_view("ABCEHKLMNOQRTU").find(stage) == std::string_view::npos)
                return "macros for stage " + letter(stage);
            auto pairs = p.substr(1);
            if (pairs.empty()) return std::nullopt;
            // An odd count makes libmilter's smfi_getsymval() read past the
            // end of its list.
            if (!nul_terminated(pairs) || count_nul(pairs) % 2 != 0)
                return std::string("macros whose names and values do not pair up");
            return std::nullopt;
        }
        default:
            return "unknown command " + letter(command);
    }
}

std::string encode_frame(char command, std::string_view payload) {
    std::string out;
    auto len = static_cast<std::uint32_t>(payload.size() + 1);
    out.reserve(4 + len);
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((len >> shift) & 0xff));
    out.push_back(command);
    out.append(payload);
    return out;
}

}  // namespace mailgrid::milter
