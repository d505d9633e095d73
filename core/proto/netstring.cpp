#include "proto/netstring.hpp"

namespace mailgrid::netstring {

std::optional<Frame> parse(std::string_view buf, std::size_t max_payload, std::size_t& consumed) {
    consumed = 0;
    std::size_t len = 0;
    std::size_t i = 0;
    for (; i < buf.size(); ++i) {
        char c = buf[i];
        if (c == ':') break;
        if (c < '0' || c > '9' || i >= 9) {
            consumed = buf.size();
            return Frame{false, {}, "malformed netstring length"};
        }
        len = len * 10 + static_cast<std::size_t>(c - '0');
    }
    if (i == buf.size()) return std::nullopt;  // no ':' yet
    if (i == 0) {
        consumed = buf.size();
        return Frame{false, {}, "malformed netstring length"};
    }
    if (len > max_payload) {
        consumed = buf.size();
        return Frame{false, {}, "netstring too long"};
    }
    std::size_t total = i + 1 + len + 1;
    if (buf.size() < total) return std::nullopt;
    if (buf[total - 1] != ',') {
        consumed = buf.size();
        return Frame{false, {}, "netstring missing ','"};
    }
    consumed = total;
    return Frame{true, buf.substr(i + 1, len), {}};
}

std::string encode(std::string_view payload) {
    std::string out = std::to_string(payload.size());
    out.push_back(':');
    out.append(payload);
    out.push_back(',');
    return out;
}

}  // namespace mailgrid::netstring
