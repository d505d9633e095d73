#include "directory/filter.hpp"

#include "directory/escape.hpp"
#include "util/strings.hpp"

namespace mailgrid {

namespace {

constexpr int kMaxDepth = 64;

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

class Parser {
public:
    Parser(std::string_view s, std::string* err) : s_(s), err_(err) {}

    std::optional<Filter> top() {
        skip_ws();
        std::optional<Filter> f;
        if (i_ < s_.size() && s_[i_] == '(') f = filter(0);
        else f = item(s_.size());
        if (!f) return std::nullopt;
        skip_ws();
        if (i_ != s_.size()) return fail("trailing text after filter");
        return f;
    }

private:
    std::optional<Filter> fail(const char* why) {
        if (err_ && err_->empty()) *err_ = std::string(why) + " at offset " + std::to_string(i_);
        return std::nullopt;
    }
    void skip_ws() { while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_; }

    std::optional<Filter> filter(int depth) {
        if (depth > kMaxDepth) return fail("filter nested too deeply");
        skip_ws();
        if (i_ >= s_.size() || s_[i_] != '(') return fail("expected '('");
        ++i_;
        skip_ws();
        if (i_ >= s_.size()) return fail("unexpected end of filter");
        std::optional<Filter> f;
        char c = s_[i_];
        if (c == '&' || c == '|') {
            ++i_;
            Filter g;
            g.kind = c == '&' ? Filter::Kind::And : Filter::Kind::Or;
            for (;;) {
                skip_ws();
                if (i_ >= s_.size()) return fail("unexpected end of filter list");
                if (s_[i_] == ')') break;
                auto child = filter(depth + 1);
                if (!child) return std::nullopt;
                g.children.push_back(std::move(*child));
            }
            f = std::move(g);
        } else if (c == '!') {
            ++i_;
            auto child = filter(depth + 1);
            if (!child) return std::nullopt;
            Filter g;
            g.kind = Filter::Kind::Not;
            g.children.push_back(std::move(*child));
            f = std::move(g);
            skip_ws();
        } else {
            // find the closing parenthesis of this item; values cannot hold
            // an unescaped ')'.
            std::size_t end = i_;
            while (end < s_.size() && s_[end] != ')') {
                if (s_[end] == '(') return fail("unescaped '(' in value");
                if (s_[end] == '\\' && end + 1 < s_.size()) ++end;
                ++end;
            }
            if (end >= s_.size()) return fail("missing ')'");
            f = item(end);
        }
        if (!f) return std::nullopt;
        if (i_ >= s_.size() || s_[i_] != ')') return fail("expected ')'");
        ++i_;
        return f;
    }

    // attr op value, up to s_[end]
    std::optional<Filter> item(std::size_t end) {
        std::size_t eq = s_.find('=', i_);
        if (eq == std::string_view::npos || eq >= end) return fail("missing '=' in filter item");
        std::size_t attr_end = eq;
        Filter f;
        f.kind = Filter::Kind::Equal;
        if (attr_end > i_) {
            char op = s_[attr_end - 1];
            if (op == '>') { f.kind = Filter::Kind::GreaterOrEqual; --attr_end; }
            else if (op == '<') { f.kind = Filter::Kind::LessOrEqual; --attr_end; }
            else if (op == '~') { f.kind = Filter::Kind::Approx; --attr_end; }
            else if (op == ':') { f.kind = Filter::Kind::Extensible; --attr_end; }
        }
        std::string_view attr = trim(s_.substr(i_, attr_end - i_));
        if (f.kind == Filter::Kind::Extensible) {
            // attr[:dn][:rule]:=value: keep the attribute, ignore the rule
            auto colon = attr.find(':');
            attr = attr.substr(0, colon);
        }
        auto semi = attr.find(';');
        if (semi != std::string_view::npos) attr = attr.substr(0, semi);
        if (attr.empty() && f.kind != Filter::Kind::Extensible) return fail("missing attribute name");
        for (char c : attr) {
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
            if (!ok) return fail("bad character in attribute name");
        }
        f.attr = to_lower(attr);
        std::string_view raw = s_.substr(eq + 1, end - eq - 1);
        i_ = end;

        if (f.kind == Filter::Kind::Equal) {
            if (raw == "*") { f.kind = Filter::Kind::Present; return f; }
            // split at unescaped '*'
            std::vector<std::string_view> pieces;
            std::size_t start = 0;
            for (std::size_t k = 0; k < raw.size(); ++k) {
                if (raw[k] == '\\' && k + 1 < raw.size()) { ++k; continue; }
                if (raw[k] == '*') { pieces.push_back(raw.substr(start, k - start)); start = k + 1; }
            }
            pieces.push_back(raw.substr(start));
            if (pieces.size() > 1) {
                f.kind = Filter::Kind::Substring;
                auto u = unescape(pieces.front());
                if (!u) return std::nullopt;
                f.initial = *u;
                u = unescape(pieces.back());
                if (!u) return std::nullopt;
                f.final_ = *u;
                for (std::size_t k = 1; k + 1 < pieces.size(); ++k) {
                    if (pieces[k].empty()) continue;
                    u = unescape(pieces[k]);
                    if (!u) return std::nullopt;
                    f.any.push_back(*u);
                }
                return f;
            }
        }
        auto u = unescape(raw);
        if (!u) return std::nullopt;
        f.value = *u;
        return f;
    }

    std::optional<std::string> unescape(std::string_view v) {
        std::string out;
        out.reserve(v.size());
        for (std::size_t k = 0; k < v.size(); ++k) {
            char c = v[k];
            if (c == '\\') {
                if (k + 1 >= v.size()) { fail("dangling '\\' in value"); return std::nullopt; }
                int h = hexval(v[k + 1]);
                int l = k + 2 < v.size() ? hexval(v[k + 2]) : -1;
                if (h >= 0 && l >= 0) { out.push_back(static_cast<char>(h * 16 + l)); k += 2; }
                else { out.push_back(v[k + 1]); ++k; }  // LDAPv2 style \*
            } else if (c == '(' || c == '\0') {
                fail("unescaped special character in value");
                return std::nullopt;
            } else {
                out.push_back(c);
            }
        }
        return out;
    }

    std::string_view s_;
    std::string* err_;
    std::size_t i_ = 0;
};

bool is_int(std::string_view s, long long& out) {
    auto v = parse_int(s);
    if (!v) return false;
    out = *v;
    return true;
}

int compare_values(std::string_view a, std::string_view b, bool exact) {
    long long x, y;
    if (is_int(a, x) && is_int(b, y)) return x < y ? -1 : (x > y ? 1 : 0);
    if (exact) return a.compare(b);
    std::string la = to_lower(a), lb = to_lower(b);
    return la.compare(lb);
}

bool substring_match(std::string_view value, const Filter& f, bool exact) {
    std::string v = exact ? std::string(value) : to_lower(value);
    auto norm = [&](const std::string& p) { return exact ? p : to_lower(p); };
    std::size_t pos = 0;
    std::string ini = norm(f.initial);
    if (!ini.empty()) {
        if (v.compare(0, ini.size(), ini) != 0) return false;
        pos = ini.size();
    }
    for (const auto& a : f.any) {
        auto p = norm(a);
        auto found = v.find(p, pos);
        if (found == std::string::npos) return false;
        pos = found + p.size();
    }
    std::string fin = norm(f.final_);
    if (!fin.empty()) {
        if (v.size() < pos + fin.size()) return false;
        if (v.compare(v.size() - fin.size(), fin.size(), fin) != 0) return false;
    }
    return true;
}

void escape_value(std::string& out, std::string_view v) { filter_escape_append(out, v); }

}  // namespace

bool case_exact_attribute(std::string_view a) {
    return a == "userpassword" || a == "authpassword";
}

std::optional<Filter> parse_filter(std::string_view text, std::string* error) {
    if (error) error->clear();
    Parser p(text, error);
    return p.top();
}

std::string to_string(const Filter& f) {
    std::string out = "(";
    switch (f.kind) {
        case Filter::Kind::And:
        case Filter::Kind::Or:
            out.push_back(f.kind == Filter::Kind::And ? '&' : '|');
            for (const auto& c : f.children) out += to_string(c);
            break;
        case Filter::Kind::Not:
            out.push_back('!');
            out += to_string(f.children.front());
            break;
        case Filter::Kind::Present: out += f.attr + "=*"; break;
        case Filter::Kind::Equal: out += f.attr + "="; escape_value(out, f.value); break;
        case Filter::Kind::GreaterOrEqual: out += f.attr + ">="; escape_value(out, f.value); break;
        case Filter::Kind::LessOrEqual: out += f.attr + "<="; escape_value(out, f.value); break;
        case Filter::Kind::Approx: out += f.attr + "~="; escape_value(out, f.value); break;
        case Filter::Kind::Extensible: out += f.attr + ":="; escape_value(out, f.value); break;
        case Filter::Kind::Substring:
            out += f.attr + "=";
            escape_value(out, f.initial);
            out.push_back('*');
            for (const auto& a : f.any) { escape_value(out, a); out.push_back('*'); }
            escape_value(out, f.final_);
            break;
    }
    out.push_back(')');
    return out;
}

bool matches(const Filter& f, const Entry& e) {
    switch (f.kind) {
        case Filter::Kind::And:
            for (const auto& c : f.children) if (!matches(c, e)) return false;
            return true;
        case Filter::Kind::Or:
            for (const auto& c : f.children) if (matches(c, e)) return true;
            return false;
        case Filter::Kind::Not: return !matches(f.children.front(), e);
        default: break;
    }
    const auto* vals = e.values(f.attr);
    if (!vals || vals->empty()) return false;
    if (f.kind == Filter::Kind::Present) return true;
    bool exact = case_exact_attribute(f.attr);
    for (const auto& v : *vals) {
        switch (f.kind) {
            case Filter::Kind::Equal:
            case Filter::Kind::Approx:
            case Filter::Kind::Extensible:
                if (exact ? v == f.value : iequals(v, f.value)) return true;
                break;
            case Filter::Kind::Substring:
                if (substring_match(v, f, exact)) return true;
                break;
            case Filter::Kind::GreaterOrEqual:
                if (compare_values(v, f.value, exact) >= 0) return true;
                break;
            case Filter::Kind::LessOrEqual:
                if (compare_values(v, f.value, exact) <= 0) return true;
                break;
            default: break;
        }
    }
    return false;
}

}  // namespace mailgrid
