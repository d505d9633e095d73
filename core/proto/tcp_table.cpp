#include "proto/tcp_table.hpp"

namespace mailgrid::tcp_table {

namespace {
const char kHex[] = "0123456789ABCDEF";
int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
bool needs_quote(unsigned char c) {
    return c == '%' || c <= 0x20 || c >= 0x7F;
}
// Reply text after the code: no newline, no '%'-surprises for the client.
std::string safe_text(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if (out.size() > 200) break;
        out.push_back((c < 0x20 || c >= 0x7F || c == '%') ? '?' : static_cast<char>(c));
    }
    return out;
}
}  // namespace

std::string hex_quote(std::string_view in) {
    std::string out;
    out.reserve(in.size() + 16);
    for (unsigned char c : in) {
        if (needs_quote(c)) {
            out.push_back('%');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    return out;
}

std::optional<std::string> hex_unquote(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') { out.push_back(in[i]); continue; }
        if (i + 2 >= in.size()) return std::nullopt;
        int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
        if (h < 0 || l < 0) return std::nullopt;
        out.push_back(static_cast<char>(h * 16 + l));
        i += 2;
    }
    return out;
}

std::optional<Request> parse_request(std::string_view buf, std::size_t& consumed) {
    consumed = 0;
    auto nl = buf.find('\n');
    if (nl == std::string_view::npos) {
        if (buf.size() >= kMaxRequestLine) {
            consumed = buf.size();
            return Request{false, {}, "400 request line too long\n", true};
        }
        return std::nullopt;
    }
    consumed = nl + 1;
    if (nl >= kMaxRequestLine) return Request{false, {}, "400 request line too long\n", true};
    std::string_view line = buf.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.substr(0, 4) != "get ") {
        if (line.substr(0, 4) == "put ") return Request{false, {}, "400 put is not implemented\n", false};
        return Request{false, {}, "400 unsupported request\n", false};
    }
    auto key = hex_unquote(line.substr(4));
    if (!key) return Request{false, {}, "400 malformed %XX encoding in request\n", false};
    if (key->empty()) return Request{false, {}, "500 empty key\n", false};
    return Request{true, std::move(*key), {}, false};
}

std::string format_reply(const Lookup& r) {
    switch (r.status) {
        case Status::Found: {
            std::string out = "200 ";
            out += hex_quote(r.value);
            out.push_back('\n');
            if (out.size() > kMaxReply) return "400 result too long for tcp_table (use socketmap)\n";
            return out;
        }
        case Status::NotFound: return "500 not found\n";
        case Status::TempFail: return "400 " + safe_text(r.value.empty() ? "temporary failure" : r.value) + "\n";
        case Status::PermFail: return "400 " + safe_text(r.value.empty() ? "lookup error" : r.value) + "\n";
    }
    return "400 internal error\n";
}

}  // namespace mailgrid::tcp_table
