#include "directory/ldif.hpp"

#include "util/base64.hpp"
#include "util/strings.hpp"

namespace mailgrid {

namespace {

struct Line {
    std::string text;
    int number;
};

bool safe_string(std::string_view v) {
    if (v.empty()) return true;
    unsigned char f = static_cast<unsigned char>(v.front());
    if (f == ' ' || f == ':' || f == '<') return false;
    if (v.back() == ' ') return false;
    for (unsigned char c : v)
        if (c == 0 || c == '\n' || c == '\r' || c >= 0x80) return false;
    return true;
}

}  // namespace

LdifResult parse_ldif(std::string_view text, const std::string& path) {
    LdifResult out;
    std::vector<Line> record;
    int lineno = 0;
    std::size_t pos = 0;

    auto err = [&](int line, const std::string& what) {
        out.errors.push_back(path + ", line " + std::to_string(line) + ": " + what);
    };

    auto finish = [&]() {
        if (record.empty()) return;
        std::vector<Line> lines;
        lines.swap(record);
        // drop "version: 1" at the start of the file
        std::size_t k = 0;
        if (iequals(trim(std::string_view(lines[0].text).substr(0, 8)), "version:")) {
            ++k;
            if (k == lines.size()) return;
        }
        Entry e;
        bool bad = false;
        bool have_dn = false;
        for (; k < lines.size() && !bad; ++k) {
            const auto& l = lines[k];
            std::string_view s = l.text;
            if (s == "-") continue;
            auto colon = s.find(':');
            if (colon == std::string_view::npos || colon == 0) {
                err(l.number, "missing ':' after attribute name");
                bad = true;
                break;
            }
            std::string name(s.substr(0, colon));
            std::string value;
            std::string_view rest = s.substr(colon + 1);
            if (!rest.empty() && rest.front() == ':') {
                rest.remove_prefix(1);
                while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
                auto d = base64_decode(rest);
                if (!d) { err(l.number, "bad base64 value for " + printable(name, 60)); bad = true; break; }
                value = std::move(*d);
            } else if (!rest.empty() && rest.front() == '<') {
                err(l.number, "URL values are not supported: " + printable(name, 60));
                bad = true;
                break;
            } else {
                while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
                value = std::string(rest);
            }
            if (!have_dn) {
                if (!iequals(name, "dn")) { err(l.number, "record does not start with dn:"); bad = true; break; }
                e.dn = value;
                have_dn = true;
                continue;
            }
            if (iequals(name, "changetype")) {
                if (!iequals(value, "add")) { err(l.number, "changetype " + printable(value, 40) + " is not supported"); bad = true; }
                continue;
            }
            if (iequals(name, "control")) continue;
            e.get_or_add(name).values.push_back(std::move(value));
        }
        if (!bad && have_dn) out.entries.push_back(std::move(e));
    };

    bool in_comment = false;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++lineno;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) { in_comment = false; finish(); continue; }
        if (line.front() == ' ') {
            if (in_comment) continue;  // folded comment
            if (record.empty()) err(lineno, "continuation line without a line to continue");
            else record.back().text.append(line.substr(1));
            continue;
        }
        if (line.front() == '#') { in_comment = true; continue; }
        in_comment = false;
        record.push_back({std::string(line), lineno});
    }
    finish();
    return out;
}

std::string to_ldif(const Entry& e) {
    std::string out;
    auto put = [&](std::string_view name, std::string_view value) {
        out.append(name);
        if (safe_string(value)) {
            out.append(": ");
            out.append(value);
        } else {
            out.append(":: ");
            out.append(base64_encode(value));
        }
        out.push_back('\n');
    };
    put("dn", e.dn);
    for (const auto& a : e.attributes)
        for (const auto& v : a.values) put(a.name, v);
    return out;
}

}  // namespace mailgrid
