#include "util/strings.hpp"

#include <charconv>

namespace mailgrid {

std::string to_lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!s.empty() && ws(s.front())) s.remove_prefix(1);
    while (!s.empty() && ws(s.back())) s.remove_suffix(1);
    return s;
}

std::vector<std::string> split_list(std::string_view s) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            if (!cur.empty()) out.push_back(std::move(cur));
            cur.clear();
        } else {
            cur.push_back(c);
        }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        auto pos = s.find(sep, start);
        if (pos == std::string_view::npos) {
            out.push_back(s.substr(start));
            return out;
        }
        out.push_back(s.substr(start, pos - start));
        start = pos + 1;
    }
}

std::optional<bool> parse_bool(std::string_view s) {
    auto v = to_lower(trim(s));
    if (v == "yes" || v == "true" || v == "on" || v == "1") return true;
    if (v == "no" || v == "false" || v == "off" || v == "0") return false;
    return std::nullopt;
}

std::optional<std::int64_t> parse_int(std::string_view s) {
    s = trim(s);
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

std::optional<std::chrono::microseconds> parse_duration_us(std::string_view s, char default_unit) {
    s = trim(s);
    std::size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    if (digits == 0 || digits > 12) return std::nullopt;
    auto n = parse_int(s.substr(0, digits));
    if (!n) return std::nullopt;
    auto unit = s.substr(digits);
    std::string u = unit.empty() ? std::string(1, default_unit) : to_lower(unit);
    std::int64_t us;
    if (u == "us") us = *n;
    else if (u == "ms") us = *n * 1000;
    else if (u == "s") us = *n * 1'000'000;
    else if (u == "m") us = *n * 60'000'000;
    else if (u == "h") us = *n * 3'600'000'000LL;
    else if (u == "d") us = *n * 86'400'000'000LL;
    else if (u == "w") us = *n * 604'800'000'000LL;
    else return std::nullopt;
    return std::chrono::microseconds(us);
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view s, char default_unit) {
    auto us = parse_duration_us(s, default_unit);
    if (!us) return std::nullopt;
    return std::chrono::duration_cast<std::chrono::milliseconds>(*us);
}

std::optional<std::uint64_t> parse_size(std::string_view s) {
    s = trim(s);
    std::size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    if (digits == 0 || digits > 15) return std::nullopt;
    auto n = parse_int(s.substr(0, digits));
    if (!n) return std::nullopt;
    auto unit = to_lower(s.substr(digits));
    std::uint64_t mult = 1;
    if (unit.empty() || unit == "b") mult = 1;
    else if (unit == "k") mult = 1ULL << 10;
    else if (unit == "m") mult = 1ULL << 20;
    else if (unit == "g") mult = 1ULL << 30;
    else if (unit == "t") mult = 1ULL << 40;
    else return std::nullopt;
    return static_cast<std::uint64_t>(*n) * mult;
}

bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    while (i < s.size()) {
        unsigned c = p[i];
        if (c < 0x80) { ++i; continue; }
        std::size_t n;
        unsigned min;
        if ((c & 0xE0) == 0xC0) { n = 1; min = 0x80; c &= 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 2; min = 0x800; c &= 0x0F; }
        else if ((c & 0xF8) == 0xF0) { n = 3; min = 0x10000; c &= 0x07; }
        else return false;
        if (i + n >= s.size()) return false;
        for (std::size_t k = 1; k <= n; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
            c = (c << 6) | (p[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
        i += n + 1;
    }
    return true;
}

std::string printable(std::string_view s, std::size_t max_len) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (out.size() >= max_len) { out += "..."; break; }
        if (c >= 0x20 && c < 0x7F && c != '\\') out.push_back(static_cast<char>(c));
        else { out += "\\x"; out.push_back(hex[c >> 4]); out.push_back(hex[c & 15]); }
    }
    return out;
}

}  // namespace mailgrid
