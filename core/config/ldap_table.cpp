#include "config/ldap_table.hpp"

#include <fstream>
#include <set>
#include <stdexcept>

#include "util/strings.hpp"

namespace mailgrid {

namespace {

const std::set<std::string, std::less<>> kKnown = {
    "server_host", "server_port", "timeout", "search_base", "query_filter", "result_format", "result_filter",
    "domain", "result_attribute", "special_result_attribute", "terminal_result_attribute",
    "leaf_result_attribute", "scope", "bind", "bind_dn", "bind_pw", "cache", "cache_expiry", "cache_size",
    "recursion_limit", "expansion_limit", "size_limit", "dereference", "chase_referrals", "version",
    "debuglevel", "start_tls", "tls_ca_cert_dir", "tls_ca_cert_file", "tls_cert", "tls_key",
    "tls_require_cert", "tls_random_file", "tls_cipher_suite", "sasl_mechs", "sasl_realm", "sasl_authz_id",
    "sasl_minssf"};

struct Reader {
    const CfFile& cf;
    std::vector<std::string>& warnings;

    std::string str(std::string_view name, std::string_view def) const {
        auto* p = cf.find(name);
        return p ? p->value : std::string(def);
    }
    bool has(std::string_view name) const { return cf.find(name) != nullptr; }
    [[noreturn]] void fail(std::string_view name, const std::string& why) const {
        auto* p = cf.find(name);
        throw ConfigError((p ? cf.where(*p) : cf.path()) + ": " + why);
    }
    long integer(std::string_view name, long def, long min, long max) const {
        auto* p = cf.find(name);
        if (!p) return def;
        auto v = parse_int(p->value);
        if (!v) fail(name, "bad numerical configuration: " + std::string(name) + " = " + p->value);
        if (*v < min) fail(name, "invalid " + std::string(name) + " parameter value " + p->value + " < " + std::to_string(min));
        if (max > 0 && *v > max)
            fail(name, "invalid " + std::string(name) + " parameter value " + p->value + " > " + std::to_string(max));
        return static_cast<long>(*v);
    }
    bool boolean(std::string_view name, bool def) const {
        auto* p = cf.find(name);
        if (!p) return def;
        auto v = parse_bool(p->value);
        if (!v) fail(name, "bad boolean configuration: " + std::string(name) + " = " + p->value);
        return *v;
    }
};

bool is_ldap_url(std::string_view s) {
    auto l = to_lower(s.substr(0, 8));
    return l.rfind("ldap://", 0) == 0 || l.rfind("ldaps://", 0) == 0 || l.rfind("ldapi://", 0) == 0;
}

}  // namespace

std::string ServerSet::key() const {
    std::string k;
    for (const auto& u : urls) k += u + " ";
    k += "|" + std::to_string(static_cast<int>(bind)) + "|" + bind_dn + "|" + bind_pw + "|" + std::to_string(version) +
         "|" + (start_tls ? "tls" : "") + "|" + (tls_require_cert ? "req" : "") + "|" + tls_ca_cert_file + "|" +
         tls_ca_cert_dir + "|" + tls_cert + "|" + tls_key + "|" + tls_cipher_suite + "|" + sasl_mechs + "|" +
         sasl_realm + "|" + sasl_authz_id + "|" + std::to_string(sasl_minssf) + "|" + std::to_string(dereference) +
         "|" + (chase_referrals ? "ref" : "") + "|" + std::to_string(timeout_seconds);
    return k;
}

std::string ServerSet::describe() const {
    std::string d;
    for (const auto& u : urls) d += (d.empty() ? "" : " ") + u;
    if (bind == BindMode::Simple && !bind_dn.empty()) d += " as " + bind_dn;
    if (bind == BindMode::Sasl) d += " (sasl)";
    return d;
}

std::vector<std::string> LdapTableConfig::requested_attributes() const {
    std::vector<std::string> all;
    for (auto* v : {&terminal_attributes, &leaf_attributes, &result_attributes, &special_attributes})
        all.insert(all.end(), v->begin(), v->end());
    return all;
}

bool LdapTableConfig::domain_allows(std::string_view key) const {
    if (domains.empty()) return true;
    auto at = key.rfind('@');
    if (at == std::string_view::npos || at == 0) return false;
    auto dom = key.substr(at + 1);
    for (const auto& d : domains) {
        if (!d.empty() && d.front() == '!') {
            if (iequals(std::string_view(d).substr(1), dom)) return false;
        } else if (iequals(d, dom)) {
            return true;
        }
    }
    return false;
}

LdapTableConfig LdapTableConfig::load(const std::string& path) { return from(CfFile::load(path)); }

LdapTableConfig LdapTableConfig::from(const CfFile& cf) {
    LdapTableConfig c;
    c.path = cf.path();
    Reader r{cf, c.warnings};
    for (const auto& w : cf.warnings()) c.warnings.push_back(w);
    for (const auto& p : cf.params())
        if (!kKnown.count(p.name)) c.warnings.push_back(cf.where(p) + ": unknown parameter (ignored): " + p.name);

    // Servers
    long port = r.integer("server_port", 389, 0, 65535);
    c.server.version = static_cast<int>(r.integer("version", 2, 2, 0));
    if (c.server.version != 2 && c.server.version != 3) {
        c.warnings.push_back(cf.path() + ": unknown version " + std::to_string(c.server.version) + ", using 2");
        c.server.version = 2;
    }
    for (const auto& h : split_list(r.str("server_host", "localhost"))) {
        if (to_lower(h).rfind("ldif:", 0) == 0) {
            c.embedded = true;
            c.ldif_path = h.substr(5);
            if (c.ldif_path.empty()) r.fail("server_host", "ldif: needs a file name");
            continue;
        }
        if (is_ldap_url(h)) {
            if (to_lower(h).rfind("ldap://", 0) != 0 && c.server.version != 3) {
                c.warnings.push_back(cf.path() + ": URL scheme of " + h + " requires protocol version 3");
                c.server.version = 3;
            }
            c.server.urls.push_back(h);
        } else if (h.find(':') != std::string::npos) {
            c.server.urls.push_back("ldap://" + h);
        } else {
            c.server.urls.push_back("ldap://" + h + ":" + std::to_string(port));
        }
    }
    if (c.embedded && !c.server.urls.empty())
        r.fail("server_host", "ldif: cannot be combined with LDAP servers");
    if (!c.embedded && c.server.urls.empty()) r.fail("server_host", "no server_host given");

    auto scope = to_lower(r.str("scope", "sub"));
    if (scope == "one") c.scope = Scope::One;
    else if (scope == "base") c.scope = Scope::Base;
    else if (scope == "sub") c.scope = Scope::Sub;
    else c.warnings.push_back(cf.path() + ": unrecognized value " + scope + " specified for scope; using sub");

    c.search_base = r.str("search_base", "");
    if (c.search_base.empty()) c.warnings.push_back(cf.path() + ": search_base is empty");
    c.server.timeout_seconds = static_cast<int>(r.integer("timeout", 10, 0, 0));
    c.query_filter = r.str("query_filter", "(mailacceptinggeneralid=%s)");
    c.result_format = r.has("result_format") ? r.str("result_format", "%s") : r.str("result_filter", "%s");
    try {
        c.dynamic_base = c.templates.add_template(c.search_base, true);
        if (!c.templates.add_template(c.query_filter, true))
            c.warnings.push_back(cf.path() + ": fixed query_filter " + c.query_filter + " is probably useless");
        c.templates.add_template(c.result_format, false);
    } catch (const std::invalid_argument& e) {
        throw ConfigError(cf.path() + ": " + e.what());
    }

    for (const auto& d : split_list(r.str("domain", ""))) {
        if (!d.empty() && d.front() == '/') {
            std::ifstream in(d);
            if (!in) r.fail("domain", "cannot open domain list file " + d);
            std::string line;
            while (std::getline(in, line)) {
                auto t = trim(line);
                if (t.empty() || t.front() == '#') continue;
                for (auto& x : split_list(t)) c.domains.push_back(to_lower(x));
            }
        } else if (d.find(':') != std::string::npos) {
            r.fail("domain", "lookup tables in \"domain\" are not supported: " + d + " (list the domains or use a file)");
        } else {
            c.domains.push_back(to_lower(d));
        }
    }

    c.terminal_attributes = split_list(r.str("terminal_result_attribute", ""));
    c.leaf_attributes = split_list(r.str("leaf_result_attribute", ""));
    c.result_attributes = split_list(r.str("result_attribute", "maildrop"));
    c.special_attributes = split_list(r.str("special_result_attribute", ""));

    auto bind = to_lower(r.str("bind", "yes"));
    if (bind == "yes" || bind == "simple" || bind == "true" || bind == "1") c.server.bind = BindMode::Simple;
    else if (bind == "no" || bind == "none" || bind == "false" || bind == "0") c.server.bind = BindMode::None;
    else if (bind == "sasl") c.server.bind = BindMode::Sasl;
    else r.fail("bind", "unsupported parameter value: bind = " + bind);
    c.server.bind_dn = r.str("bind_dn", "");
    c.server.bind_pw = r.str("bind_pw", "");

    if (r.boolean("cache", false)) c.warnings.push_back(cf.path() + ": ignoring cache");
    if (r.has("cache_expiry")) c.warnings.push_back(cf.path() + ": ignoring cache_expiry (set cache_ttl in mailgrid.cf)");
    if (r.has("cache_size")) c.warnings.push_back(cf.path() + ": ignoring cache_size (set cache_size in mailgrid.cf)");

    c.recursion_limit = static_cast<int>(r.integer("recursion_limit", 1000, 1, 0));
    c.expansion_limit = static_cast<int>(r.integer("expansion_limit", 0, 0, 0));
    c.size_limit = static_cast<int>(r.integer("size_limit", c.expansion_limit, 0, 0));
    c.server.dereference = static_cast<int>(r.integer("dereference", 0, 0, 0));
    if (c.server.dereference > 3) {
        c.warnings.push_back(cf.path() + ": unrecognized value specified for dereference; using 0");
        c.server.dereference = 0;
    }
    c.server.chase_referrals = r.boolean("chase_referrals", false);

    c.server.sasl_mechs = r.str("sasl_mechs", "");
    c.server.sasl_realm = r.str("sasl_realm", "");
    c.server.sasl_authz_id = r.str("sasl_authz_id", "");
    c.server.sasl_minssf = static_cast<int>(r.integer("sasl_minssf", 0, 0, 4096));

    c.server.start_tls = r.boolean("start_tls", false);
    if (c.server.start_tls && c.server.version < 3) {
        c.warnings.push_back(cf.path() + ": start_tls requires protocol version 3");
        c.server.version = 3;
    }
    if (c.server.bind == BindMode::Sasl && c.server.version < 3) c.server.version = 3;
    c.server.tls_require_cert = r.boolean("tls_require_cert", false);
    c.server.tls_ca_cert_file = r.str("tls_ca_cert_file", "");
    c.server.tls_ca_cert_dir = r.str("tls_ca_cert_dir", "");
    c.server.tls_cert = r.str("tls_cert", "");
    c.server.tls_key = r.str("tls_key", "");
    c.server.tls_random_file = r.str("tls_random_file", "");
    c.server.tls_cipher_suite = r.str("tls_cipher_suite", "");
    (void)r.integer("debuglevel", 0, 0, 0);
    return c;
}

}  // namespace mailgrid
