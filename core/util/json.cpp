#include "util/json.hpp"

#include <cmath>
#include <cstdio>

namespace mailgrid {

std::string json_string(std::string_view s) {
    std::string out = "\"";
    static const char hex[] = "0123456789abcdef";
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out.push_back(hex[c >> 4]);
                    out.push_back(hex[c & 15]);
                } else {
                    out.push_back(static_cast<char>(c));
                }
        }
    }
    return out + "\"";
}

JsonObject& JsonObject::raw(std::string_view key, std::string_view json) {
    if (!body_.empty()) body_ += ',';
    body_ += json_string(key);
    body_ += ':';
    body_ += json;
    return *this;
}

JsonObject& JsonObject::num(std::string_view key, double value) {
    if (!std::isfinite(value)) return raw(key, "null");
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", value);
    return raw(key, buf);
}

JsonObject& JsonObject::strings(std::string_view key, const std::vector<std::string>& values) {
    std::vector<std::string> enc;
    for (const auto& v : values) enc.push_back(json_string(v));
    return raw(key, json_array(enc));
}

std::string json_array(const std::vector<std::string>& encoded) {
    std::string out = "[";
    for (std::size_t i = 0; i < encoded.size(); ++i) out += (i ? "," : "") + encoded[i];
    return out + "]";
}

}  // namespace mailgrid
