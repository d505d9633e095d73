#include "directory/dn.hpp"

#include <vector>

#include "util/strings.hpp"

namespace mailgrid {

namespace {
int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
bool special(unsigned char c) {
    return c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' || c == '>' || c == ';' || c == '=' ||
           c == '#' || c < 0x20;
}
const char kHex[] = "0123456789abcdef";
}  // namespace

std::optional<std::string> normalize_dn(std::string_view dn) {
    std::string out;
    std::size_t i = 0;
    auto skip_ws = [&] { while (i < dn.size() && dn[i] == ' ') ++i; };
    skip_ws();
    if (i == dn.size()) return std::string();
    for (;;) {
        // attribute type
        skip_ws();
        std::size_t t0 = i;
        while (i < dn.size() && dn[i] != '=' && dn[i] != ',' && dn[i] != '+') ++i;
        if (i >= dn.size() || dn[i] != '=') return std::nullopt;
        auto type = to_lower(trim(dn.substr(t0, i - t0)));
        if (type.empty()) return std::nullopt;
        ++i;  // '='
        skip_ws();
        // attribute value
        std::string value;
        std::size_t last_significant = 0;  // value length up to the last non-space or escaped char
        if (i < dn.size() && dn[i] == '"') {
            ++i;
            while (i < dn.size() && dn[i] != '"') {
                if (dn[i] == '\\' && i + 1 < dn.size()) ++i;
                value.push_back(dn[i++]);
            }
            if (i >= dn.size()) return std::nullopt;
            ++i;
            last_significant = value.size();
        } else {
            while (i < dn.size() && dn[i] != ',' && dn[i] != '+' && dn[i] != ';') {
                if (dn[i] == '\\') {
                    if (i + 1 >= dn.size()) return std::nullopt;
                    int h = hexval(dn[i + 1]), l = i + 2 < dn.size() ? hexval(dn[i + 2]) : -1;
                    if (h >= 0 && l >= 0) {
                        value.push_back(static_cast<char>(h * 16 + l));
                        i += 3;
                    } else {
                        value.push_back(dn[i + 1]);
                        i += 2;
                    }
                    last_significant = value.size();
                } else {
                    value.push_back(dn[i++]);
                    if (value.back() != ' ') last_significant = value.size();
                }
            }
            value.resize(last_significant);
        }
        out += type;
        out.push_back('=');
        std::string lower = to_lower(value);
        for (std::size_t k = 0; k < lower.size(); ++k) {
            auto c = static_cast<unsigned char>(lower[k]);
            // Leading and trailing spaces escaped (RFC 4514), or reading the
            // normalised form back would trim them.
            if (special(c) || (c == ' ' && (k == 0 || k + 1 == lower.size()))) {
                out.push_back('\\');
                out.push_back(kHex[c >> 4]);
                out.push_back(kHex[c & 15]);
            } else {
                out.push_back(static_cast<char>(c));
            }
        }
        skip_ws();
        if (i >= dn.size()) break;
        if (dn[i] == '+') { out.push_back('+'); ++i; continue; }
        if (dn[i] != ',' && dn[i] != ';') return std::nullopt;
        out.push_back(',');
        ++i;
    }
    return out;
}

std::string_view parent_dn(std::string_view n) {
    // Escaped commas are \2c in normalised form, so the first ',' splits.
    auto pos = n.find(',');
    return pos == std::string_view::npos ? std::string_view() : n.substr(pos + 1);
}

bool dn_in_scope(std::string_view dn, std::string_view base, int depth) {
    if (base.empty()) {
        if (depth == 0) return dn.empty();
        if (depth < 0) return true;
        std::size_t rdns = dn.empty() ? 0 : 1;
        for (char c : dn) if (c == ',') ++rdns;
        return static_cast<int>(rdns) == depth;
    }
    if (dn.size() < base.size()) return false;
    if (dn.compare(dn.size() - base.size(), base.size(), base) != 0) return false;
    if (dn.size() == base.size()) return depth == 0 || depth < 0;
    if (dn[dn.size() - base.size() - 1] != ',') return false;
    if (depth < 0) return true;
    if (depth == 0) return false;
    // count RDNs in the prefix
    std::string_view prefix = dn.substr(0, dn.size() - base.size() - 1);
    int rdns = 1;
    for (char c : prefix) if (c == ',') ++rdns;
    return rdns == depth;
}

}  // namespace mailgrid
