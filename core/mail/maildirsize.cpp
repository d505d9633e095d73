// maildirsize - the Maildir++ quota file (see maildirsize.hpp).
#include "mail/maildirsize.hpp"

#include <cstdio>

#include "util/strings.hpp"

namespace mailgrid::maildirsize {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

// Unsigned decimal without sign; nullopt on overflow or no digits.
std::optional<std::uint64_t> parse_u64(std::string_view s) {
    if (s.empty()) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return std::nullopt;
        v = v * 10 + d;
    }
    return v;
}

std::optional<std::int64_t> parse_i64(std::string_view s) {
    bool negative = false;
    if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
        negative = s.front() == '-';
        s.remove_prefix(1);
    }
    auto v = parse_u64(s);
    if (!v || *v > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
    auto r = static_cast<std::int64_t>(*v);
    return negative ? -r : r;
}

}  // namespace

std::optional<Limit> parse_limit(std::string_view text, std::string* why) {
    auto fail = [&](std::string w) -> std::optional<Limit> {
        if (why) *why = std::move(w);
        return std::nullopt;
    };
    auto t = trim(text);
    if (t.empty()) return fail("empty quota");
    Limit l;
    if (auto bare = parse_u64(t)) {
        l.bytes = *bare;
        return l;
    }
    bool seen_s = false, seen_c = false;
    for (auto field : split(t, ',')) {
        field = trim(field);
        if (field.size() < 2) return fail("bad quota field \"" + printable(field) + "\"");
        char unit = field.back();
        auto n = parse_u64(field.substr(0, field.size() - 1));
        if (!n) return fail("bad quota number in \"" + printable(field) + "\"");
        if (unit == 'S' && !seen_s) {
            l.bytes = *n;
            seen_s = true;
        } else if (unit == 'C' && !seen_c) {
            l.messages = *n;
            seen_c = true;
        } else {
            return fail("bad quota field \"" + printable(field) + "\" (expected <bytes>S and/or <messages>C)");
        }
    }
    return l;
}

std::string format_limit(const Limit& limit) {
    if (limit.unlimited()) return "0S";
    std::string out;
    if (limit.bytes) out = std::to_string(limit.bytes) + "S";
    if (limit.messages) out += (out.empty() ? "" : ",") + std::to_string(limit.messages) + "C";
    return out;
}

Parsed parse(std::string_view contents) {
    Parsed p;
    auto nl = contents.find('\n');
    if (nl == std::string_view::npos) {
        p.error = contents.empty() ? "empty file" : "no complete header line";
        return p;
    }
    std::string why;
    auto limit = parse_limit(contents.substr(0, nl), &why);
    if (!limit) {
        p.error = "bad header: " + why;
        return p;
    }
    p.limit = *limit;
    std::string_view rest = contents.substr(nl + 1);
    while (!rest.empty()) {
        nl = rest.find('\n');
        if (nl == std::string_view::npos) {
            p.error = "last line is incomplete";
            return p;
        }
        std::string_view line = rest.substr(0, nl);
        rest.remove_prefix(nl + 1);
        std::size_t i = 0;
        auto skip_space = [&] {
            while (i < line.size() && is_space(line[i])) ++i;
        };
        auto word = [&] {
            std::size_t start = i;
            while (i < line.size() && !is_space(line[i])) ++i;
            return line.substr(start, i - start);
        };
        skip_space();
        if (i == line.size()) continue;  // a blank line changes nothing
        auto bytes = parse_i64(word());
        skip_space();
        auto count = parse_i64(word());
        skip_space();
        if (!bytes || !count || i != line.size()) {
            p.error = "bad line \"" + printable(line, 60) + "\"";
            return p;
        }
        if (__builtin_add_overflow(p.usage.bytes, *bytes, &p.usage.bytes) ||
            __builtin_add_overflow(p.usage.messages, *count, &p.usage.messages)) {
            p.error = "sums overflow";
            return p;
        }
        ++p.lines;
    }
    p.valid = true;
    return p;
}

std::string format_line(std::int64_t bytes, std::int64_t messages) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%12lld %12lld\n", static_cast<long long>(bytes), static_cast<long long>(messages));
    return buf;
}

std::string format_file(const Limit& limit, const Usage& usage) {
    return format_limit(limit) + "\n" + format_line(usage.bytes, usage.messages);
}

namespace {
bool over(std::uint64_t limit, std::int64_t used, std::int64_t add) {
    if (limit == 0) return false;
    auto u = static_cast<std::uint64_t>(used < 0 ? 0 : used);
    auto a = static_cast<std::uint64_t>(add < 0 ? 0 : add);
    return u > limit || a > limit - u;
}
}  // namespace

bool exceeds(const Limit& limit, const Usage& usage, std::int64_t bytes, std::int64_t messages) {
    return over(limit.bytes, usage.bytes, bytes) || over(limit.messages, usage.messages, messages);
}

std::optional<std::string> recount_reason(const FileState& file, const std::optional<Limit>& wanted,
                                          std::int64_t bytes, std::int64_t messages) {
    if (!file.exists) return std::string("no maildirsize file");
    if (!file.parsed.valid) return "unreadable maildirsize: " + file.parsed.error;
    if (file.size >= kRecountSize) return "maildirsize has grown to " + std::to_string(file.size) + " bytes";
    const auto& u = file.parsed.usage;
    if (u.bytes < 0 || u.messages < 0) return std::string("maildirsize sums to a negative usage");
    if (wanted && *wanted != file.parsed.limit)
        return "the limit changed from " + format_limit(file.parsed.limit) + " to " + format_limit(*wanted);
    if (exceeds(file.parsed.limit, u, bytes, messages)) {
        if (file.parsed.lines > 1) return std::string("over quota by the sum of several lines");
        if (file.age > kStaleAge) return std::string("over quota by a count older than 15 minutes");
    }
    return std::nullopt;
}

}  // namespace mailgrid::maildirsize
