#include "directory/escape.hpp"

namespace mailgrid {

namespace {
const char kHex[] = "0123456789ABCDEF";
void hex_escape(std::string& out, unsigned char c) {
    out.push_back('\\');
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
}
}  // namespace

void filter_escape_append(std::string& out, std::string_view s) {
    for (unsigned char c : s) {
        if (c == '*' || c == '(' || c == ')' || c == '\\' || c == 0) hex_escape(out, c);
        else out.push_back(static_cast<char>(c));
    }
}

std::string filter_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    filter_escape_append(out, s);
    return out;
}

void dn_escape_append(std::string& out, std::string_view s) {
    for (unsigned char c : s) {
        switch (c) {
            case ' ': case '\t': case '"': case '#': case '+': case ',':
            case ';': case '<': case '>': case '\\': case 0:
                hex_escape(out, c);
                break;
            default:
                out.push_back(static_cast<char>(c));
        }
    }
}

std::string dn_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    dn_escape_append(out, s);
    return out;
}

}  // namespace mailgrid
