// suite_ldap - a directory query written as prefixed parameters of
// mailgrid.cf ("deliver_server_host", "deliver_search_base",
// "deliver_query_filter", ...) instead of a separate ldap_table(5) file,
// read by the same code as those files, so every ldap_table parameter
// means the same thing with the prefix in front.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/ldap_table.hpp"
#include "config/suite_config.hpp"

namespace mailgrid {

// The ldap_table(5) parameter names such a query takes (server_host,
// search_base, query_filter, scope, bind, bind_dn, bind_pw, version,
// timeout, start_tls, tls_*, sasl_*, dereference, chase_referrals, domain).
const std::vector<std::string>& suite_ldap_keys();

// The query from <prefix><key> parameters that are set or have a non-empty
// default. Errors name the mailgrid.cf line (or -o) of the parameter.
// Throws ConfigError.
LdapTableConfig ldap_query_from_suite(const SuiteConfig& config, std::string_view prefix);

}  // namespace mailgrid
