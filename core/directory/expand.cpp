#include "directory/expand.hpp"

#include <stdexcept>
#include <vector>

#include "directory/escape.hpp"
#include "util/strings.hpp"

namespace mailgrid {

bool ExpandContext::add_template(std::string_view format, bool is_query) {
    bool dynamic = false;
    for (std::size_t i = 0; i < format.size(); ++i) {
        if (format[i] != '%') continue;
        if (++i >= format.size())
            throw std::invalid_argument("invalid template (trailing %): " + std::string(format));
        char c = format[i];
        switch (c) {
            case '%': break;
            case 'u':
                if (is_query) key_user_ = key_partial_ = true;
                else value_user_ = true;
                dynamic = true;
                break;
            case 'd':
                if (is_query) key_domain_ = key_partial_ = true;
                else value_domain_ = true;
                dynamic = true;
                break;
            case 's': case 'S': dynamic = true; break;
            case 'U': key_partial_ = key_user_ = true; dynamic = true; break;
            case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9':
                if (nparts_ < c - '0') nparts_ = c - '0';
                [[fallthrough]];
            case 'D': key_partial_ = key_domain_ = true; dynamic = true; break;
            default:
                throw std::invalid_argument(std::string("invalid %") + (c ? std::string(1, c) : "") +
                                            " in " + (is_query ? "query" : "result") + " template: " +
                                            std::string(format));
        }
    }
    return dynamic;
}

std::optional<std::string> ExpandContext::expand_query(std::string_view format, std::string_view key,
                                                       Quote quote) const {
    return expand(format, key, nullptr, quote);
}

std::optional<std::string> ExpandContext::expand_result(std::string_view format, std::string_view value,
                                                        std::string_view key) const {
    return expand(format, value, &key, Quote::None);
}

namespace {
std::optional<std::size_t> domain_pos(std::string_view s) {
    auto at = s.rfind('@');
    if (at == std::string_view::npos) return std::nullopt;
    return at + 1;
}
void put(std::string& out, std::string_view v, Quote q) {
    switch (q) {
        case Quote::None: out.append(v); break;
        case Quote::Filter: filter_escape_append(out, v); break;
        case Quote::Dn: dn_escape_append(out, v); break;
    }
}
}  // namespace

std::optional<std::string> ExpandContext::expand(std::string_view format, std::string_view value,
                                                 const std::string_view* key, Quote quote) const {
    if (value.empty()) return std::nullopt;

    std::optional<std::size_t> vdom, kdom;
    if (key) {
        if (value_domain_ || value_user_) vdom = domain_pos(value);
        if ((!vdom || *vdom == value.size()) && value_domain_) return std::nullopt;
        if (vdom && *vdom == 1 && value_user_) return std::nullopt;
        if (key_domain_ || key_user_) kdom = domain_pos(*key);
        if ((!kdom || *kdom == key->size()) && key_domain_) return std::nullopt;
        if (kdom && *kdom == 1 && key_user_) return std::nullopt;
    } else {
        if (key_domain_ || key_user_) vdom = domain_pos(value);
        if ((!vdom || *vdom == value.size()) && key_domain_) return std::nullopt;
        if (vdom && *vdom == 1 && key_user_) return std::nullopt;
    }

    std::vector<std::string_view> labels;
    if (nparts_ > 0) {
        auto d = key ? kdom : vdom;
        if (!d) return std::nullopt;
        std::string_view dom = (key ? *key : value).substr(*d);
        labels = split(dom, '.');
        if (static_cast<int>(labels.size()) < nparts_) return std::nullopt;
        for (int i = 0; i < nparts_; ++i)
            if (labels[labels.size() - 1 - static_cast<std::size_t>(i)].empty()) return std::nullopt;
    }

    auto user_of = [](std::string_view s, std::optional<std::size_t> d) {
        return d ? s.substr(0, *d - 1) : s;
    };

    std::string out;
    out.reserve(format.size() + value.size() * 2);
    for (std::size_t i = 0; i < format.size(); ++i) {
        char c = format[i];
        if (c != '%') { out.push_back(c); continue; }
        c = format[++i];  // add_template() vetted every code
        switch (c) {
            case '%': out.push_back('%'); break;
            case 's': put(out, value, quote); break;
            case 'u': put(out, user_of(value, vdom), quote); break;
            case 'd': {
                auto d = domain_pos(value);
                if (!d) return std::nullopt;
                put(out, value.substr(*d), quote);
                break;
            }
            case 'S': put(out, key ? *key : value, quote); break;
            case 'U':
                if (key) put(out, user_of(*key, kdom ? kdom : domain_pos(*key)), quote);
                else put(out, user_of(value, vdom ? vdom : domain_pos(value)), quote);
                break;
            case 'D': {
                std::string_view src = key ? *key : value;
                auto d = domain_pos(src);
                if (!d) return std::nullopt;
                put(out, src.substr(*d), quote);
                break;
            }
            default: {
                int n = c - '0';
                if (n < 1 || n > 9 || labels.size() < static_cast<std::size_t>(n)) return std::nullopt;
                put(out, labels[labels.size() - static_cast<std::size_t>(n)], quote);
                break;
            }
        }
    }
    return out;
}

}  // namespace mailgrid
