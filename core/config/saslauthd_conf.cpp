#include "config/saslauthd_conf.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "directory/escape.hpp"
#include "util/strings.hpp"

namespace mailgrid {

namespace {

[[noreturn]] void fail(const std::string& path, int line, const std::string& why) {
    throw ConfigError(path + ", line " + std::to_string(line) + ": " + why);
}

Scope scope_of(const std::string& path, int line, const std::string& key, const std::string& v) {
    auto l = to_lower(v);
    if (l == "sub") return Scope::Sub;
    if (l == "one") return Scope::One;
    if (l == "base") return Scope::Base;
    fail(path, line, "bad value for " + key + ": " + v + " (sub, one or base)");
}

bool switch_of(const std::string& v) {
    auto l = to_lower(v);
    return l == "on" || l == "yes" || l == "true" || l == "1";
}

int int_of(const std::string& path, int line, const std::string& key, const std::string& v) {
    auto n = parse_int(v);
    if (!n || *n < 0 || *n > 100000) fail(path, line, "bad number for " + key + ": " + v);
    return static_cast<int>(*n);
}

}  // namespace

SaslauthdConf SaslauthdConf::load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path + ": cannot open: " + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    return parse(ss.str(), path);
}

SaslauthdConf SaslauthdConf::parse(std::string_view text, const std::string& path) {
    SaslauthdConf c;
    c.path = path;
    c.server.urls = {"ldap://localhost/"};
    c.server.version = 3;
    c.server.timeout_seconds = 5;
    c.server.bind = BindMode::Simple;
    bool use_sasl = false;
    std::string sasl_id;
    std::string tls_check_peer;
    int lineno = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++lineno;
        auto line = trim(raw);
        if (line.empty() || line.front() == '#') continue;
        std::size_t k = 0;
        while (k < line.size() && (std::isalnum(static_cast<unsigned char>(line[k])) || line[k] == '-' || line[k] == '_'))
            ++k;
        std::string key = to_lower(line.substr(0, k));
        if (k >= line.size() || line[k] != ':') fail(path, lineno, printable(key, 60) + " does not have a value");
        std::string v(trim(line.substr(k + 1)));
        if (v.empty()) fail(path, lineno, key + " does not have a value");

        if (key == "ldap_servers") c.server.urls = split_list(v);
        else if (key == "ldap_bind_dn") c.server.bind_dn = v;
        else if (key == "ldap_bind_pw" || key == "ldap_password") c.server.bind_pw = v;
        else if (key == "ldap_version") c.server.version = int_of(path, lineno, key, v);
        else if (key == "ldap_search_base") c.search_base = v;
        else if (key == "ldap_filter") c.filter = v;
        else if (key == "ldap_password_attr") c.password_attr = v;
        else if (key == "ldap_group_dn") c.group_dn = v;
        else if (key == "ldap_group_attr") c.group_attr = v;
        else if (key == "ldap_group_filter") c.group_filter = v;
        else if (key == "ldap_group_search_base") c.group_search_base = v;
        else if (key == "ldap_group_scope") c.group_scope = scope_of(path, lineno, key, v);
        else if (key == "ldap_group_match_method") {
            auto l = to_lower(v);
            if (l == "attr") c.group_match = GroupMatch::Attr;
            else if (l == "filter") c.group_match = GroupMatch::Filter;
            else fail(path, lineno, "bad value for " + key + ": " + v + " (attr or filter)");
        } else if (key == "ldap_default_realm" || key == "ldap_default_domain") c.default_realm = v;
        else if (key == "ldap_auth_method") {
            auto l = to_lower(v);
            if (l == "bind") c.method = AuthMethod::Bind;
            else if (l == "fastbind") c.method = AuthMethod::FastBind;
            else if (l == "custom") c.method = AuthMethod::Custom;
            else fail(path, lineno, "bad value for " + key + ": " + v + " (bind, fastbind or custom)");
        } else if (key == "ldap_timeout") c.server.timeout_seconds = int_of(path, lineno, key, v);
        else if (key == "ldap_size_limit") c.size_limit = int_of(path, lineno, key, v);
        else if (key == "ldap_time_limit") c.time_limit = int_of(path, lineno, key, v);
        else if (key == "ldap_deref") {
            auto l = to_lower(v);
            if (l == "never") c.server.dereference = 0;
            else if (l == "search") c.server.dereference = 1;
            else if (l == "find") c.server.dereference = 2;
            else if (l == "always") c.server.dereference = 3;
            else fail(path, lineno, "bad value for " + key + ": " + v);
        } else if (key == "ldap_referrals") c.server.chase_referrals = switch_of(v);
        else if (key == "ldap_restart") (void)switch_of(v);
        else if (key == "ldap_scope") c.scope = scope_of(path, lineno, key, v);
        else if (key == "ldap_use_sasl") use_sasl = switch_of(v);
        else if (key == "ldap_id" || key == "ldap_sasl_authc_id") sasl_id = v;
        else if (key == "ldap_authz_id" || key == "ldap_sasl_authz_id") c.server.sasl_authz_id = v;
        else if (key == "ldap_realm" || key == "ldap_sasl_realm") c.server.sasl_realm = v;
        else if (key == "ldap_mech" || key == "ldap_sasl_mech") c.server.sasl_mechs = v;
        else if (key == "ldap_sasl_secprops") {
            // "minssf=N,..." is what matters to us
            auto p = to_lower(v).find("minssf=");
            if (p != std::string::npos) c.server.sasl_minssf = std::atoi(v.c_str() + p + 7);
        } else if (key == "ldap_start_tls") c.server.start_tls = switch_of(v);
        else if (key == "ldap_tls_check_peer") tls_check_peer = v;
        else if (key == "ldap_tls_cacert_file") c.server.tls_ca_cert_file = v;
        else if (key == "ldap_tls_cacert_dir") c.server.tls_ca_cert_dir = v;
        else if (key == "ldap_tls_ciphers") c.server.tls_cipher_suite = v;
        else if (key == "ldap_tls_cert") c.server.tls_cert = v;
        else if (key == "ldap_tls_key") c.server.tls_key = v;
        else if (key == "ldap_debug") (void)int_of(path, lineno, key, v);
        else fail(path, lineno, "unknown key " + key);
    }
    if (use_sasl) {
        c.server.bind = BindMode::Sasl;
        c.server.bind_dn = sasl_id;  // the SASL authentication id
    }
    if (!tls_check_peer.empty()) c.server.tls_require_cert = switch_of(tls_check_peer);
    if (c.server.start_tls || use_sasl) c.server.version = 3;
    // slapd's own server-side limit is sent with each search
    (void)c.time_limit;
    return c;
}

namespace {
void put(std::string& out, std::string_view v, TokenQuote q) {
    if (q == TokenQuote::Filter) filter_escape_append(out, v);
    else dn_escape_append(out, v);
}
}  // namespace

std::string expand_tokens(std::string_view pattern, std::string_view user, std::string_view service,
                          std::string_view realm, std::string_view dn, TokenQuote quote) {
    std::string out;
    out.reserve(pattern.size() + user.size() * 2);
    auto at = user.find('@');
    std::string_view domain = (at != std::string_view::npos && at + 1 < user.size()) ? user.substr(at + 1) : "";
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] != '%') { out.push_back(pattern[i]); continue; }
        if (i + 1 >= pattern.size()) break;  // "incomplete lookup substitution": dropped, as saslauthd does
        char c = pattern[++i];
        switch (c) {
            case '%': out.push_back('%'); break;
            case 'u': put(out, user, quote); break;
            case 'U': put(out, user.substr(0, at), quote); break;
            case 'd': if (!domain.empty()) put(out, domain, quote); break;
            case 'r': if (!realm.empty()) put(out, realm, quote); break;
            case 'R':
                if (!realm.empty()) {
                    out.push_back('@');
                    put(out, realm, quote);
                }
                break;
            case 's': put(out, service, quote); break;
            case 'D': put(out, dn, quote); break;
            case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9': {
                std::string_view d = !domain.empty() ? domain : realm;
                if (d.empty()) break;
                auto labels = split(d, '.');
                std::size_t n = static_cast<std::size_t>(c - '0');
                if (n <= labels.size()) put(out, labels[labels.size() - n], quote);
                break;
            }
            default: break;  // unknown tokens vanish, as in saslauthd
        }
    }
    return out;
}

}  // namespace mailgrid
