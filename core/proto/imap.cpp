#include "proto/imap.hpp"

#include <cctype>

#include "util/strings.hpp"

namespace mailgrid::imap {

namespace {

// Does the line end in "{n}" or "{n+}" (a literal of n bytes follows)?
std::optional<std::size_t> literal_at_end(std::string_view line, bool* bad) {
    if (line.empty() || line.back() != '}') return std::nullopt;
    auto open = line.rfind('{');
    if (open == std::string_view::npos) return std::nullopt;
    auto digits = line.substr(open + 1, line.size() - open - 2);
    if (!digits.empty() && digits.back() == '+') digits.remove_suffix(1);
    if (digits.empty() || digits.size() > 9) {
        *bad = true;
        return std::nullopt;
    }
    std::size_t n = 0;
    for (char c : digits) {
        if (c < '0' || c > '9') {
            *bad = true;
            return std::nullopt;
        }
        n = n * 10 + static_cast<std::size_t>(c - '0');
    }
    return n;
}

bool atom_char(unsigned char c) {
    if (c <= 0x20 || c >= 0x7f) return false;
    switch (c) {
        case '(': case ')': case '{': case '%': case '*': case '"': case '\\': case ']': return false;
        default: return true;
    }
}

}  // namespace

Parse next_response(std::string_view buffer, Response& out) {
    std::size_t pos = 0;
    std::string_view first;
    for (;;) {
        auto eol = buffer.find("\r\n", pos);
        if (eol == std::string_view::npos) return buffer.size() - pos > kMaxResponse ? Parse::Invalid : Parse::Incomplete;
        if (eol > kMaxResponse) return Parse::Invalid;
        auto line = buffer.substr(pos, eol - pos);
        if (pos == 0) first = line;
        bool bad = false;
        auto lit = literal_at_end(line, &bad);
        if (bad) return Parse::Invalid;
        pos = eol + 2;
        if (!lit) break;
        if (*lit > kMaxResponse || pos + *lit > kMaxResponse) return Parse::Invalid;
        if (buffer.size() < pos + *lit) return Parse::Incomplete;
        pos += *lit;
    }
    auto sp = first.find(' ');
    out.tag = std::string(first.substr(0, sp));
    std::string_view rest = sp == std::string_view::npos ? std::string_view() : first.substr(sp + 1);
    out.status.clear();
    if (out.tag != "+") {
        auto sp2 = rest.find(' ');
        auto word = rest.substr(0, sp2);
        for (const char* s : {"OK", "NO", "BAD", "PREAUTH", "BYE"})
            if (iequals(word, s)) {
                out.status = s;
                rest = sp2 == std::string_view::npos ? std::string_view() : rest.substr(sp2 + 1);
                break;
            }
    }
    out.text = std::string(rest);
    out.raw = std::string(buffer.substr(0, pos));
    out.consumed = pos;
    return Parse::Complete;
}

std::vector<std::string> tokens(std::string_view s) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < s.size()) {
        if (s[i] == ' ') {
            ++i;
            continue;
        }
        if (s[i] == '"') {
            std::string t;
            ++i;
            while (i < s.size() && s[i] != '"') {
                if (s[i] == '\\' && i + 1 < s.size()) ++i;
                t += s[i++];
            }
            ++i;
            out.push_back(t);
        } else if (s[i] == '(') {
            int depth = 0;
            std::size_t start = i;
            do {
                if (s[i] == '(') ++depth;
                else if (s[i] == ')') --depth;
                ++i;
            } while (i < s.size() && depth > 0);
            out.emplace_back(s.substr(start, i - start));
        } else {
            std::size_t start = i;
            while (i < s.size() && s[i] != ' ') ++i;
            out.emplace_back(s.substr(start, i - start));
        }
    }
    return out;
}

std::vector<std::string_view> literals(std::string_view raw) {
    std::vector<std::string_view> out;
    std::size_t pos = 0;
    for (;;) {
        auto eol = raw.find("\r\n", pos);
        if (eol == std::string_view::npos) break;
        bool bad = false;
        auto n = literal_at_end(raw.substr(pos, eol - pos), &bad);
        pos = eol + 2;
        if (!n || bad || pos + *n > raw.size()) {
            if (bad) break;
            continue;
        }
        out.push_back(raw.substr(pos, *n));
        pos += *n;
    }
    return out;
}

std::optional<std::string> quote(std::string_view arg) {
    bool atom = !arg.empty();
    for (unsigned char c : arg) {
        if (c == 0 || c == '\r' || c == '\n' || c >= 0x80) return std::nullopt;
        if (!atom_char(c)) atom = false;
    }
    if (atom) return std::string(arg);
    std::string q = "\"";
    for (char c : arg) {
        if (c == '"' || c == '\\') q += '\\';
        q += c;
    }
    return q + "\"";
}

std::optional<std::string> command(std::string_view tag, std::string_view name, const std::vector<std::string>& args) {
    std::string out(tag);
    out += ' ';
    out += name;
    for (const auto& a : args) {
        auto q = quote(a);
        if (!q) return std::nullopt;
        out += ' ' + *q;
    }
    return out + "\r\n";
}

}  // namespace mailgrid::imap
