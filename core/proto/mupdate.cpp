// mupdate - the MUPDATE codec (see mupdate.hpp).
#include "proto/mupdate.hpp"

#include <algorithm>

namespace mailgrid::mupdate {

namespace {

bool atom_char(unsigned char c) {
    return c > 0x20 && c < 0x7f && c != '"' && c != '{' && c != '}' && c != '(' && c != ')' && c != '\\';
}

std::string upper(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return out;
}

// Literal sizes are computed from at most 9 digits: anything larger is
// refused anyway, and this keeps the arithmetic far from overflow.
constexpr std::size_t kMaxLiteralDigits = 9;

// If line (without its line end) ends in a literal announcement "{n}" or
// "{n+}", its size and whether it is non-synchronising.
bool trailing_literal(std::string_view line, std::size_t& size, bool& non_sync) {
    if (line.empty() || line.back() != '}') return false;
    line.remove_suffix(1);
    non_sync = !line.empty() && line.back() == '+';
    if (non_sync) line.remove_suffix(1);
    std::size_t digits = 0;
    while (digits < line.size() && line[line.size() - 1 - digits] >= '0' && line[line.size() - 1 - digits] <= '9')
        ++digits;
    if (digits == 0 || digits == line.size() || line[line.size() - 1 - digits] != '{') return false;
    if (digits > kMaxLiteralDigits + 2) {
        size = SIZE_MAX;
        return true;
    }
    size = 0;
    for (std::size_t i = line.size() - digits; i < line.size(); ++i) size = size * 10 + static_cast<std::size_t>(line[i] - '0');
    return true;
}

}  // namespace

std::optional<Event> Reader::fail(std::string tag, std::string message, std::size_t at, std::size_t& consumed,
                                  bool fatal) {
    Event e;
    e.kind = Event::Kind::Error;
    e.tag = tag.empty() ? "*" : std::move(tag);
    e.message = std::move(message);
    e.fatal = fatal;
    consumed = at;
    granted_ = 0;
    skip_ = Skip::Line;
    skip_tail_.clear();
    return e;
}

bool Reader::skip(std::string_view buf, std::size_t& consumed) {
    std::size_t i = 0;
    while (i < buf.size()) {
        if (skip_ == Skip::Literal) {
            std::size_t take = std::min(skip_left_, buf.size() - i);
            i += take;
            skip_left_ -= take;
            if (skip_left_ == 0) {
                skip_ = Skip::Line;
                skip_tail_.clear();
            }
            continue;
        }
        auto lf = buf.find('\n', i);
        if (lf == std::string_view::npos) {
            skip_tail_.append(buf.substr(i));
            if (skip_tail_.size() > 32) skip_tail_.erase(0, skip_tail_.size() - 32);
            i = buf.size();
            break;
        }
        skip_tail_.append(buf.substr(i, lf - i));
        // Only the end of the line matters, and it must be cut the same
        // way however the line arrived.
        if (skip_tail_.size() > 32) skip_tail_.erase(0, skip_tail_.size() - 32);
        if (!skip_tail_.empty() && skip_tail_.back() == '\r') skip_tail_.pop_back();
        i = lf + 1;
        std::size_t size = 0;
        bool non_sync = false;
        // A synchronising literal is never sent without our go-ahead, which
        // a bad command does not get: only {n+} data follows the line.
        if (trailing_literal(skip_tail_, size, non_sync) && non_sync && size > 0) {
            skip_ = Skip::Literal;
            skip_left_ = size;
            continue;
        }
        skip_ = Skip::None;
        skip_tail_.clear();
        consumed = i;
        return true;
    }
    consumed = i;
    return false;
}

std::optional<Event> Reader::next(std::string_view buf, std::size_t& consumed) {
    consumed = 0;
    for (;;) {
        if (skip_ != Skip::None) {
            std::size_t used = 0;
            bool done = skip(buf.substr(consumed), used);
            consumed += used;
            if (!done) return std::nullopt;
        }
        std::size_t used = 0;
        auto ev = parse(buf.substr(consumed), used);
        consumed += used;
        if (ev || used == 0) return ev;
        // An empty line was dropped; look at what follows.
    }
}

std::optional<Event> Reader::parse(std::string_view buf, std::size_t& consumed) {
    consumed = 0;
    const std::size_t n = buf.size();
    std::size_t p = 0;
    std::size_t line_start = 0;
    std::string tag;

    // Called where more input is needed: refuse what can only grow too big.
    auto need_more = [&](std::size_t at) -> std::optional<Event> {
        if (n - line_start > kMaxLine || n > kMaxCommand) return fail(tag, "Command too long", at, consumed);
        return std::nullopt;
    };
    auto too_long = [&](std::size_t at) { return at - line_start > kMaxLine || at > kMaxCommand; };

    // Tag.
    while (p < n && atom_char(static_cast<unsigned char>(buf[p]))) {
        if (++p > kMaxTag) return fail("", "Tag too long", p, consumed);
    }
    if (p == n) return need_more(p);
    if (p == 0) {
        // Empty lines between commands are dropped, as Cyrus does.
        if (buf[0] == '\n') {
            consumed = 1;
            return std::nullopt;
        }
        if (buf[0] == '\r') {
            if (n < 2) return std::nullopt;
            if (buf[1] == '\n') {
                consumed = 2;
                return std::nullopt;
            }
        }
        return fail("", "Need command", 0, consumed);
    }
    tag.assign(buf.substr(0, p));
    if (buf[p] != ' ') return fail(tag, "Need command", p, consumed);
    ++p;

    // Command or response word.
    std::size_t w0 = p;
    while (p < n && atom_char(static_cast<unsigned char>(buf[p]))) ++p;
    if (p == n) return need_more(p);
    if (p == w0) return fail(tag, "Null command", p, consumed);
    if (too_long(p)) return fail(tag, "Command too long", p, consumed);
    Event ev;
    ev.kind = Event::Kind::Line;
    ev.line.word = upper(buf.substr(w0, p - w0));

    std::size_t sync_literals = 0;
    for (;;) {
        if (p == n) return need_more(p);
        char c = buf[p];
        if (c == '\r') {
            if (p + 1 == n) return need_more(p);
            if (buf[p + 1] != '\n') return fail(tag, "Badly formed arguments", p, consumed);
            p += 2;
            break;
        }
        if (c == '\n') {
            p += 1;
            break;
        }
        if (c != ' ') return fail(tag, "Badly formed arguments", p, consumed);
        ++p;
        if (ev.line.args.size() == kMaxArgs) return fail(tag, "Extra arguments", p, consumed);
        if (p == n) return need_more(p);

        std::string arg;
        c = buf[p];
        if (c == '"') {
            std::size_t q = p + 1;
            for (;;) {
                if (q == n) return need_more(q);
                char ch = buf[q];
                if (ch == '"') break;
                if (ch == '\\') {
                    if (q + 1 == n) return need_more(q);
                    char nx = buf[q + 1];
                    if (nx != '"' && nx != '\\') return fail(tag, "Badly formed arguments", q, consumed);
                    arg.push_back(nx);
                    q += 2;
                    continue;
                }
                if (ch == '\r' || ch == '\n' || ch == '\0') return fail(tag, "Badly formed arguments", q, consumed);
                arg.push_back(ch);
                ++q;
                if (too_long(q)) return fail(tag, "Command too long", q, consumed);
            }
            p = q + 1;
        } else if (c == '{') {
            std::size_t q = p + 1;
            std::size_t size = 0, digits = 0;
            while (q < n && buf[q] >= '0' && buf[q] <= '9') {
                // Past 20 digits nobody can mean it, and whether data
                // follows is unknown: give up on the connection.
                if (++digits > 20) return fail(tag, "Literal too large", p, consumed, true);
                if (digits <= kMaxLiteralDigits) size = size * 10 + static_cast<std::size_t>(buf[q] - '0');
                else size = SIZE_MAX;
                ++q;
            }
            if (q == n) return need_more(q);
            if (digits == 0) return fail(tag, "Badly formed arguments", q, consumed);
            bool non_sync = buf[q] == '+';
            if (non_sync) {
                ++q;
                if (q == n) return need_more(q);
            }
            if (buf[q] != '}') return fail(tag, "Badly formed arguments", q, consumed);
            ++q;
            if (q == n) return need_more(q);
            if (buf[q] == '\r') {
                if (q + 1 == n) return need_more(q);
                if (buf[q + 1] != '\n') return fail(tag, "Badly formed arguments", q, consumed);
                q += 2;
            } else if (buf[q] == '\n') {
                q += 1;
            } else {
                return fail(tag, "Badly formed arguments", q, consumed);
            }
            if (size > kMaxLiteral) {
                // Fail at the announcement, so that skipping the rest of
                // the command sees it and drops the literal's bytes too.
                bool data_follows = non_sync || !server_side_;
                return fail(tag, "Literal too large", p, consumed, data_follows && size > kMaxSkip);
            }
            if (q > kMaxCommand || size > kMaxCommand - q) return fail(tag, "Command too long", p, consumed);
            bool sync = !non_sync && server_side_;
            if (n - q < size) {
                if (sync && sync_literals >= granted_) {
                    granted_ = sync_literals + 1;
                    Event cont;
                    cont.kind = Event::Kind::Continue;
                    cont.tag = tag;
                    consumed = 0;
                    return cont;
                }
                if (n > kMaxCommand) return fail(tag, "Command too long", n, consumed);
                return std::nullopt;
            }
            if (sync) ++sync_literals;
            arg.assign(buf.substr(q, size));
            p = q + size;
            line_start = p;
        } else {
            std::size_t q = p;
            while (q < n && atom_char(static_cast<unsigned char>(buf[q]))) ++q;
            if (q == n) return need_more(q);
            if (q == p) return fail(tag, "Badly formed arguments", p, consumed);
            if (too_long(q)) return fail(tag, "Command too long", q, consumed);
            arg.assign(buf.substr(p, q - p));
            p = q;
        }
        ev.line.args.push_back(std::move(arg));
    }
    ev.line.tag = std::move(tag);
    consumed = p;
    granted_ = 0;
    return ev;
}

std::optional<std::string> next_text_line(std::string_view buf, std::size_t& consumed, std::size_t max,
                                          bool* too_long) {
    consumed = 0;
    if (too_long) *too_long = false;
    auto lf = buf.find('\n');
    if (lf == std::string_view::npos) {
        if (buf.size() > max + 1) {
            // Drop what we have; the caller fails the exchange.
            if (too_long) *too_long = true;
            consumed = buf.size();
            return std::string();
        }
        return std::nullopt;
    }
    consumed = lf + 1;
    std::string_view line = buf.substr(0, lf);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > max) {
        if (too_long) *too_long = true;
        return std::string();
    }
    return std::string(line);
}

bool is_atom(std::string_view s) {
    if (s.empty() || s.size() > kMaxTag) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return atom_char(static_cast<unsigned char>(c)); });
}

void append_literal(std::string& out, std::string_view s) {
    out += '{';
    out += std::to_string(s.size());
    out += "+}\r\n";
    out.append(s);
}

void append_quoted(std::string& out, std::string_view text) {
    out += '"';
    for (unsigned char c : text) {
        bool ok = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
        out += ok ? static_cast<char>(c) : '?';
    }
    out += '"';
}

void append_status(std::string& out, std::string_view tag, std::string_view word, std::string_view text) {
    out.append(tag);
    out += ' ';
    out.append(word);
    out += ' ';
    append_quoted(out, text);
    out += "\r\n";
}

std::string status(std::string_view tag, std::string_view word, std::string_view text) {
    std::string out;
    append_status(out, tag, word, text);
    return out;
}

void append_mailbox(std::string& out, std::string_view tag, std::string_view name, std::string_view location,
                    std::string_view acl) {
    out.append(tag);
    out += " MAILBOX ";
    append_literal(out, name);
    out += ' ';
    append_literal(out, location);
    out += ' ';
    append_literal(out, acl);
    out += "\r\n";
}

void append_reserve(std::string& out, std::string_view tag, std::string_view name, std::string_view location) {
    out.append(tag);
    out += " RESERVE ";
    append_literal(out, name);
    out += ' ';
    append_literal(out, location);
    out += "\r\n";
}

void append_delete(std::string& out, std::string_view tag, std::string_view name) {
    out.append(tag);
    out += " DELETE ";
    append_literal(out, name);
    out += "\r\n";
}

std::string command(std::string_view tag, std::string_view word, const std::vector<std::string>& args) {
    std::string out(tag);
    out += ' ';
    out.append(word);
    for (const auto& a : args) {
        out += ' ';
        append_literal(out, a);
    }
    out += "\r\n";
    return out;
}

std::string banner(const std::vector<std::string>& mechanisms, bool starttls, std::string_view servername,
                   std::string_view implementation, std::string_view version, std::string_view role) {
    std::string out = "* AUTH";
    for (const auto& m : mechanisms) {
        out += ' ';
        append_quoted(out, m);
    }
    out += "\r\n";
    if (starttls) out += "* STARTTLS\r\n";
    out += "* PARTIAL-UPDATE\r\n* OK MUPDATE ";
    append_quoted(out, servername);
    out += ' ';
    append_quoted(out, implementation);
    out += ' ';
    append_quoted(out, version);
    out += ' ';
    append_quoted(out, role);
    out += "\r\n";
    return out;
}

std::string sort_key(std::string_view name) {
    std::string key(name);
    for (auto& c : key)
        if (c == '.') c = '\x1f';
    return key;
}

std::string name_from_sort_key(std::string_view key) {
    std::string name(key);
    for (auto& c : name)
        if (c == '\x1f') c = '.';
    return name;
}

bool cyrus_less(std::string_view a, std::string_view b) {
    auto map = [](char c) { return static_cast<unsigned char>(c == '.' ? '\x1f' : c); };
    std::size_t n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
        unsigned char x = map(a[i]), y = map(b[i]);
        if (x != y) return x < y;
    }
    return a.size() < b.size();
}

}  // namespace mailgrid::mupdate
