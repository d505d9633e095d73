// maildir_name - names in a Maildir++ store (see maildir_name.hpp).
#include "mail/maildir_name.hpp"

#include <cstdio>
#include <cstring>

#include "util/strings.hpp"

namespace mailgrid::maildir {

std::optional<std::string> component_problem(std::string_view s, std::string_view what) {
    std::string w(what);
    if (s.empty()) return w + " is empty";
    if (s.size() > kMaxComponent) return w + " is longer than " + std::to_string(kMaxComponent) + " bytes";
    if (s.front() == '.') return w + " starts with '.'";
    for (unsigned char c : s) {
        if (c == '/') return w + " contains '/'";
        if (c == 0) return w + " contains a NUL byte";
        if (c < 0x20 || c == 0x7f) return w + " contains a control character";
    }
    if (!valid_utf8(s)) return w + " is not valid UTF-8";
    return std::nullopt;
}

std::optional<std::string> folder_for_extension(std::string_view extension, std::string* why) {
    auto fail = [&](std::string text) -> std::optional<std::string> {
        if (why) *why = std::move(text);
        return std::nullopt;
    };
    if (auto p = component_problem(extension, "extension")) return fail(*p);
    for (unsigned char c : extension)
        if (c >= 0x80) return fail("extension is not ASCII");
    if (extension.find("..") != std::string_view::npos) return fail("extension contains \"..\"");
    if (extension.back() == '.') return fail("extension ends with '.'");
    std::string folder = ".";
    for (char c : extension) {
        folder += c;
        if (c == '&') folder += '-';
    }
    if (folder.size() > kMaxComponent) return fail("extension is too long for a folder name");
    return folder;
}

std::optional<Layout> Layout::parse(std::string_view text, std::string* why) {
    auto t = to_lower(trim(text));
    Layout l;
    if (t == "none") {
        l.hash = Hash::None;
        l.levels = 0;
        return l;
    }
    if (t == "classic") return l;
    if (t.rfind("stable:", 0) == 0) {
        auto n = parse_int(std::string_view(t).substr(7));
        if (n && *n >= 1 && *n <= 4) {
            l.hash = Hash::Stable;
            l.levels = static_cast<int>(*n);
            return l;
        }
    }
    if (why) *why = "expected none, classic or stable:N with N from 1 to 4, got \"" + std::string(text) + "\"";
    return std::nullopt;
}

std::string Layout::describe() const {
    switch (hash) {
        case Hash::None: return "none";
        case Hash::Classic: return "classic";
        case Hash::Stable: return "stable:" + std::to_string(levels);
    }
    return "?";
}

namespace {

std::uint32_t fnv1a32(std::string_view s) {
    std::uint32_t h = 2166136261u;
    for (unsigned char c : s) {
        h ^= c;
        h *= 16777619u;
    }
    return h;
}

// Length of the UTF-8 sequence starting with byte c (1 for anything else).
std::size_t utf8_length(unsigned char c) {
    if (c >= 0xf0) return 4;
    if (c >= 0xe0) return 3;
    if (c >= 0xc0) return 2;
    return 1;
}

}  // namespace

std::vector<std::string> hash_components(const Layout& layout, std::string_view user) {
    std::vector<std::string> out;
    switch (layout.hash) {
        case Layout::Hash::None: break;
        case Layout::Hash::Classic: {
            // Two characters, not two bytes: a split UTF-8 sequence would be
            // an invalid name.
            std::string prefix;
            std::size_t i = 0;
            int chars = 0;
            for (; chars < 2 && i < user.size(); ++chars) {
                std::size_t n = std::min(utf8_length(static_cast<unsigned char>(user[i])), user.size() - i);
                prefix.append(user.substr(i, n));
                i += n;
            }
            for (; chars < 2; ++chars) prefix += '_';
            out.push_back(prefix);
            break;
        }
        case Layout::Hash::Stable: {
            std::uint32_t h = fnv1a32(user);
            for (int level = 0; level < layout.levels; ++level) {
                char buf[3];
                std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>((h >> (24 - 8 * level)) & 0xff));
                out.emplace_back(buf, 2);
            }
            break;
        }
    }
    return out;
}

std::vector<std::string> mailbox_components(const Layout& layout, std::string_view user, std::string_view domain) {
    std::vector<std::string> out{std::string(domain)};
    for (auto& h : hash_components(layout, user)) out.push_back(std::move(h));
    out.emplace_back(user);
    return out;
}

std::optional<std::vector<std::string>> components_below(std::string_view path, std::string_view root,
                                                         std::string* why) {
    auto fail = [&](std::string text) -> std::optional<std::vector<std::string>> {
        if (why) *why = std::move(text);
        return std::nullopt;
    };
    std::string_view rest = path;
    if (!path.empty() && path.front() == '/') {
        std::string_view r = root;
        while (r.size() > 1 && r.back() == '/') r.remove_suffix(1);
        if (r == "/") r = "";
        if (path.substr(0, r.size()) != r || (path.size() > r.size() && path[r.size()] != '/'))
            return fail("mailbox path " + printable(path) + " is outside the store " + std::string(root));
        rest = path.substr(r.size());
    }
    std::vector<std::string> out;
    for (auto part : split(rest, '/')) {
        if (part.empty()) continue;
        if (part == "..") return fail("mailbox path " + printable(path) + " contains \"..\"");
        if (auto p = component_problem(part, "a mailbox path component"))
            return fail("mailbox path " + printable(path) + ": " + *p);
        out.emplace_back(part);
    }
    if (out.empty()) return fail("mailbox path " + printable(path) + " names the store itself");
    return out;
}

std::string join_components(const std::vector<std::string>& components) {
    std::string out;
    for (const auto& c : components) {
        if (!out.empty()) out += '/';
        out += c;
    }
    return out;
}

FileName parse_file_name(std::string_view name) {
    FileName f;
    std::string_view head = name;
    if (auto colon = name.find(':'); colon != std::string_view::npos) {
        head = name.substr(0, colon);
        auto info = name.substr(colon + 1);
        if (info.substr(0, 2) == "2,") {
            f.has_info = true;
            f.flags = info.substr(2);
        }
    }
    auto comma = head.find(',');
    f.base = head.substr(0, comma);
    if (comma == std::string_view::npos) return f;
    for (auto field : split(head.substr(comma + 1), ',')) {
        if (field.size() < 3 || field[1] != '=') continue;
        auto digits = field.substr(2);
        std::uint64_t v = 0;
        bool ok = !digits.empty() && digits.size() <= 19;
        for (char c : digits) {
            if (c < '0' || c > '9') {
                ok = false;
                break;
            }
            v = v * 10 + static_cast<std::uint64_t>(c - '0');
        }
        if (!ok) continue;
        if (field[0] == 'S') f.size = v;
        else if (field[0] == 'W') f.vsize = v;
    }
    return f;
}

bool has_flag(std::string_view name, char flag) {
    auto f = parse_file_name(name);
    return f.has_info && f.flags.find(flag) != std::string_view::npos;
}

std::string safe_host(std::string_view host) {
    std::string out;
    for (char c : host) {
        if (c == '/') out += "\\057";
        else if (c == ':') out += "\\072";
        else if (c == ',') out += "\\054";
        else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) out += '_';
        else out += c;
    }
    if (out.empty()) out = "localhost";
    return out;
}

std::string tmp_name(const UniqueParts& u) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%lld.M%06ldP%ldQ%llu.", static_cast<long long>(u.seconds), u.microseconds, u.pid,
                  static_cast<unsigned long long>(u.counter));
    return buf + u.host;
}

std::string final_name(const UniqueParts& u, std::uint64_t device, std::uint64_t inode, std::uint64_t size,
                       std::uint64_t vsize) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%lld.M%06ldP%ldV%016llXI%016llXQ%llu.", static_cast<long long>(u.seconds),
                  u.microseconds, u.pid, static_cast<unsigned long long>(device),
                  static_cast<unsigned long long>(inode), static_cast<unsigned long long>(u.counter));
    char sizes[64];
    std::snprintf(sizes, sizeof sizes, ",S=%llu,W=%llu", static_cast<unsigned long long>(size),
                  static_cast<unsigned long long>(vsize));
    return buf + u.host + sizes;
}

std::uint64_t crlf_size(std::string_view message) {
    // One byte more for each LF without a CR before it, counted 16 bytes
    // at a time with the compiler's vector extensions (SSE2, NEON): no call
    // into libc, whose memchr a one-message process must first look up and
    // fault in, and no call per line.
    using Bytes = signed char __attribute__((vector_size(16)));
    const auto* p = reinterpret_cast<const unsigned char*>(message.data());
    const std::size_t n = message.size();
    std::uint64_t bare = n > 0 && p[0] == '\n' ? 1 : 0;
    std::size_t i = 1;
    const Bytes lf = {'\n', '\n', '\n', '\n', '\n', '\n', '\n', '\n',
                      '\n', '\n', '\n', '\n', '\n', '\n', '\n', '\n'};
    const Bytes cr = {'\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r',
                      '\r', '\r', '\r', '\r', '\r', '\r', '\r', '\r'};
    while (n >= 16 && i <= n - 16) {
        // Each lane counts down by one per match (a match is -1), at most
        // 127 times before it is added up.
        Bytes counts = {};
        for (int round = 0; round < 127 && i <= n - 16; ++round, i += 16) {
            Bytes here, before;
            std::memcpy(&here, p + i, sizeof here);
            std::memcpy(&before, p + i - 1, sizeof before);
            counts += (here == lf) & (before != cr);
        }
        for (int lane = 0; lane < 16; ++lane) bare += static_cast<std::uint64_t>(-counts[lane]);
    }
    for (; i < n; ++i)
        if (p[i] == '\n' && p[i - 1] != '\r') ++bare;
    return n + bare;
}

}  // namespace mailgrid::maildir
