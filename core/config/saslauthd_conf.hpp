// saslauthd_conf - saslauthd.conf ("ldap_servers: ..."), read unchanged.
//
// Every key saslauthd's LDAP module (lak.c) knows, with its defaults. Where
// saslauthd answers NO to every request after a bad line, we refuse to
// start and name the file and line.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/cf_file.hpp"
#include "config/ldap_table.hpp"

namespace mailgrid {

enum class AuthMethod { Bind, FastBind, Custom };
enum class GroupMatch { Attr, Filter };

struct SaslauthdConf {
    std::string path;
    ServerSet server;  // ldap_servers, bind identity, TLS, SASL, timeout
    std::string search_base;
    std::string filter = "(uid=%u)";
    std::string password_attr = "userPassword";
    AuthMethod method = AuthMethod::Bind;
    Scope scope = Scope::Sub;
    int time_limit = 5;
    int size_limit = 1;
    std::string default_realm;
    std::string group_dn, group_attr = "uniqueMember", group_filter, group_search_base;
    Scope group_scope = Scope::Sub;
    GroupMatch group_match = GroupMatch::Attr;
    bool uses_group() const { return !group_dn.empty() || !group_filter.empty(); }

    static SaslauthdConf parse(std::string_view text, const std::string& path);
    static SaslauthdConf load(const std::string& path);  // throws ConfigError
};

enum class TokenQuote { Filter, Dn };

// saslauthd's lak_expand_tokens(): %u login, %U login before the first '@',
// %d login after it, %1-%9 domain labels from the right (of the login's
// domain, else of the realm), %r realm, %R "@realm", %s service, %D user
// DN, %%. Values are escaped for a filter (or, for fastbind templates, for
// a DN). A missing value expands to nothing, as in saslauthd.
std::string expand_tokens(std::string_view pattern, std::string_view user, std::string_view service,
                          std::string_view realm, std::string_view dn, TokenQuote quote);

}  // namespace mailgrid
