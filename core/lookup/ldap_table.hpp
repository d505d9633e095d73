// ldap_table - answers one key the way Postfix's ldap: table would, against
// any Directory (LDAP or the embedded LDIF file).
#pragma once

#include <memory>
#include <string>

#include "config/ldap_table.hpp"
#include "directory/directory.hpp"
#include "util/result.hpp"

namespace mailgrid {

class LdapTable {
public:
    LdapTable(std::string name, LdapTableConfig config, std::shared_ptr<Directory> directory);

    // One key, no fallbacks: what "postmap -q KEY ldap:FILE" would answer.
    // Keys are folded to lower case, as Postfix does for ldap: tables.
    awaitable<Lookup> query(std::string key);

    const LdapTableConfig& config() const { return config_; }
    const std::string& name() const { return name_; }
    Directory& directory() { return *directory_; }

private:
    struct Walk;
    awaitable<void> collect(Walk& walk, std::vector<Entry> entries, int depth);
    awaitable<void> follow(Walk& walk, std::string reference, int depth);

    std::string name_;
    LdapTableConfig config_;
    std::shared_ptr<Directory> directory_;
    std::vector<std::string> attributes_;
    std::chrono::milliseconds timeout_;
};

}  // namespace mailgrid
