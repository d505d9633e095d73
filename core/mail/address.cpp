#include "mail/address.hpp"

#include "util/strings.hpp"

namespace mailgrid {

SplitAddress split_address(std::string_view addr) {
    auto at = addr.rfind('@');
    if (at == std::string_view::npos) return {addr, {}, false};
    return {addr.substr(0, at), addr.substr(at + 1), true};
}

std::optional<Stripped> strip_extension(std::string_view addr, std::string_view delimiters) {
    if (delimiters.empty()) return std::nullopt;
    auto parts = split_address(addr);
    auto local = parts.local;
    // Postfix split_addr(): these are never split, nor is a local part
    // whose first character is a delimiter.
    if (iequals(local, "postmaster") || iequals(local, "MAILER-DAEMON") || iequals(local, "double-bounce"))
        return std::nullopt;
    if (delimiters.find('-') != std::string_view::npos &&
        (iequals(local.substr(0, 6), "owner-") ||
         (local.size() > 8 && iequals(local.substr(local.size() - 8), "-request"))))
        return std::nullopt;
    auto pos = local.find_first_of(delimiters);
    if (pos == 0 || pos == std::string_view::npos) return std::nullopt;
    Stripped s;
    s.address = std::string(local.substr(0, pos));
    s.extension = std::string(local.substr(pos));
    if (parts.has_at) {
        s.address.push_back('@');
        s.address.append(parts.domain);
    }
    return s;
}

std::optional<LookupStyle> parse_lookup_style(std::string_view s) {
    auto v = to_lower(trim(s));
    if (v == "exact" || v == "none") return LookupStyle::Exact;
    if (v == "virtual" || v == "canonical" || v == "alias") return LookupStyle::Virtual;
    if (v == "transport") return LookupStyle::Transport;
    if (v == "access") return LookupStyle::Access;
    return std::nullopt;
}

const char* lookup_style_name(LookupStyle s) {
    switch (s) {
        case LookupStyle::Exact: return "exact";
        case LookupStyle::Virtual: return "virtual";
        case LookupStyle::Transport: return "transport";
        case LookupStyle::Access: return "access";
    }
    return "?";
}

namespace {

bool looks_like_ipv4(std::string_view s) {
    int dots = 0;
    for (char c : s) {
        if (c == '.') ++dots;
        else if (c < '0' || c > '9') return false;
    }
    return dots == 3;
}

bool looks_like_ipv6(std::string_view s) {
    if (s.find(':') == std::string_view::npos) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
            return false;
    return true;
}

void add_domain_probes(std::vector<Probe>& out, std::string_view domain, bool dot_parents) {
    if (domain.empty()) return;
    out.push_back({Probe::Kind::Domain, std::string(domain), {}});
    std::size_t pos = 0;
    while ((pos = domain.find('.', pos + 1)) != std::string_view::npos) {
        if (pos + 1 >= domain.size()) break;
        if (dot_parents) out.push_back({Probe::Kind::Domain, std::string(domain.substr(pos)), {}});
        else out.push_back({Probe::Kind::Domain, std::string(domain.substr(pos + 1)), {}});
    }
}

}  // namespace

std::vector<Probe> probe_keys(std::string_view key, LookupStyle style, std::string_view delimiters) {
    std::vector<Probe> out;
    out.push_back({Probe::Kind::Full, std::string(key), {}});
    if (style == LookupStyle::Exact) return out;

    auto parts = split_address(key);
    if (!parts.has_at) {
        if (style != LookupStyle::Access) return out;
        // Client and helo names, and client addresses, as check_client_access
        // would try them in a fixed table.
        if (looks_like_ipv4(key)) {
            std::string_view net = key;
            std::size_t p;
            while ((p = net.rfind('.')) != std::string_view::npos) {
                net = net.substr(0, p);
                if (net.empty()) break;  // ".1.2.3"
                out.push_back({Probe::Kind::Network, std::string(net), {}});
            }
        } else if (looks_like_ipv6(key)) {
            std::string_view net = key;
            std::size_t p;
            while ((p = net.rfind(':')) != std::string_view::npos && p > 0) {
                net = net.substr(0, p);
                while (!net.empty() && net.back() == ':') net.remove_suffix(1);
                if (net.empty()) break;
                out.push_back({Probe::Kind::Network, std::string(net), {}});
            }
        } else {
            std::vector<Probe> doms;
            add_domain_probes(doms, key, false);
            for (std::size_t i = 1; i < doms.size(); ++i) out.push_back(std::move(doms[i]));
        }
        return out;
    }
    if (parts.domain.empty()) return out;

    if (auto s = strip_extension(key, delimiters))
        out.push_back({Probe::Kind::NoExtension, std::move(s->address), std::move(s->extension)});

    switch (style) {
        case LookupStyle::Virtual:
            out.push_back({Probe::Kind::AtDomain, "@" + std::string(parts.domain), {}});
            break;
        case LookupStyle::Transport:
            add_domain_probes(out, parts.domain, true);
            break;
        case LookupStyle::Access:
            add_domain_probes(out, parts.domain, false);
            if (!parts.local.empty()) {
                // "user@" with the extension stripped if there is one
                auto s = strip_extension(key, delimiters);
                std::string local = s ? std::string(split_address(s->address).local) : std::string(parts.local);
                out.push_back({Probe::Kind::LocalpartAt, local + "@", {}});
            }
            break;
        case LookupStyle::Exact: break;
    }
    return out;
}

std::string rewrite_virtual_result(std::string_view result, std::string_view original_key, const Probe& matched,
                                   bool propagate_extension) {
    const std::string& ext = matched.extension;
    std::string value(result);
    if (!value.empty() && value.front() == '@') {
        auto local = split_address(original_key).local;
        if (!ext.empty() && local.size() >= ext.size()) local.remove_suffix(ext.size());
        value = std::string(local) + value;
    }
    if (!propagate_extension || ext.empty()) return value;
    std::string out;
    for (auto piece : split(value, ',')) {
        auto addr = trim(piece);
        if (addr.empty()) continue;
        if (!out.empty()) out.push_back(',');
        auto at = addr.rfind('@');
        if (at == std::string_view::npos) {
            out.append(addr);
            out.append(ext);
        } else {
            out.append(addr.substr(0, at));
            out.append(ext);
            out.append(addr.substr(at));
        }
    }
    return out;
}

}  // namespace mailgrid
