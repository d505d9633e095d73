// ldap_table - a Postfix ldap_table(5) file, read unchanged.
//
// Every parameter Postfix reads is read here with Postfix's default, so the
// same file answers the same way through ldap: and through mailgrid.
// "server_host = ldif:/path/users.ldif" selects the embedded directory.
#pragma once

#include <string>
#include <vector>

#include "config/cf_file.hpp"
#include "directory/entry.hpp"
#include "directory/expand.hpp"

namespace mailgrid {

enum class BindMode { None, Simple, Sasl };

// Connection parameters; tables with equal ServerSet share one LDAP pool.
struct ServerSet {
    std::vector<std::string> urls;  // ldap://h:p, ldaps://..., ldapi://...
    BindMode bind = BindMode::Simple;
    std::string bind_dn, bind_pw;
    int version = 2;
    bool start_tls = false;
    bool tls_require_cert = false;
    std::string tls_ca_cert_file, tls_ca_cert_dir, tls_cert, tls_key, tls_random_file, tls_cipher_suite;
    std::string sasl_mechs, sasl_realm, sasl_authz_id;
    int sasl_minssf = 0;
    int dereference = 0;
    bool chase_referrals = false;
    int timeout_seconds = 10;

    std::string key() const;        // identity of the pool, passwords included
    std::string describe() const;   // for logs: URLs and bind DN, never passwords
};

struct LdapTableConfig {
    std::string path;
    bool embedded = false;   // server_host = ldif:FILE
    std::string ldif_path;
    ServerSet server;

    std::string search_base;
    std::string query_filter = "(mailacceptinggeneralid=%s)";
    std::string result_format = "%s";
    Scope scope = Scope::Sub;
    std::vector<std::string> terminal_attributes, leaf_attributes, result_attributes, special_attributes;
    std::vector<std::string> domains;  // "domain": names, "!name"; files already read
    int size_limit = 0, expansion_limit = 0, recursion_limit = 1000;

    ExpandContext templates;
    bool dynamic_base = false;

    std::vector<std::string> warnings;  // things Postfix would also warn about

    // All attributes to request, in Postfix's order: terminal, leaf,
    // result, special.
    std::vector<std::string> requested_attributes() const;

    // Throws ConfigError ("file, line N: ...") for what Postfix rejects.
    static LdapTableConfig from(const CfFile& cf);
    static LdapTableConfig load(const std::string& path);

    // The "domain" restriction: may this key be searched at all?
    bool domain_allows(std::string_view key) const;
};

}  // namespace mailgrid
