// suite_ldap - a directory query as prefixed mailgrid.cf parameters (see
// suite_ldap.hpp).
#include "config/suite_ldap.hpp"

#include <map>

#include "util/strings.hpp"

namespace mailgrid {

const std::vector<std::string>& suite_ldap_keys() {
    static const std::vector<std::string> keys = {
        "server_host", "server_port", "search_base", "query_filter", "scope", "bind", "bind_dn", "bind_pw",
        "version", "timeout", "start_tls", "tls_ca_cert_file", "tls_ca_cert_dir", "tls_cert", "tls_key",
        "tls_require_cert", "tls_cipher_suite", "sasl_mechs", "sasl_realm", "sasl_authz_id", "sasl_minssf",
        "dereference", "chase_referrals", "domain"};
    return keys;
}

LdapTableConfig ldap_query_from_suite(const SuiteConfig& config, std::string_view prefix) {
    // One synthetic line per parameter; line numbers map back to names so
    // messages can point at the real place in mailgrid.cf.
    std::string text;
    std::map<int, std::string> line_names;
    int line = 0;
    for (const auto& key : suite_ldap_keys()) {
        std::string name = std::string(prefix) + key;
        std::string value = config.get(name);
        if (value.empty()) continue;
        for (auto& c : value)
            if (c == '\n') c = ' ';
        text += key + " = " + value + "\n";
        line_names[++line] = name;
    }
    const std::string marker = "\x01suite\x01";
    auto translate = [&](const std::string& message) {
        // "<marker>, line N: text" -> "<where the parameter is>: text"
        if (message.rfind(marker, 0) != 0) return message;
        std::string rest = message.substr(marker.size());
        if (rest.rfind(", line ", 0) == 0) {
            auto colon = rest.find(':');
            auto n = parse_int(std::string_view(rest).substr(7, colon == std::string::npos ? 0 : colon - 7));
            if (n && line_names.count(static_cast<int>(*n))) {
                const auto& name = line_names[static_cast<int>(*n)];
                return config.where(name) + ": " + name + ":" + rest.substr(colon + 1);
            }
            return std::string(prefix) + "*" + rest.substr(colon == std::string::npos ? rest.size() : colon);
        }
        return std::string(prefix) + "* parameters" + rest;
    };
    try {
        auto cfg = LdapTableConfig::from(CfFile::parse(text, marker));
        for (auto& w : cfg.warnings) w = translate(w);
        cfg.path = std::string(prefix) + "* parameters";
        return cfg;
    } catch (const ConfigError& e) {
        throw ConfigError(translate(e.what()));
    }
}

}  // namespace mailgrid
