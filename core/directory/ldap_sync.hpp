// ldap_sync - libldap used synchronously, for one-shot tools (the mailgrid
// admin command) that write to the directory. Daemons use the asynchronous
// pool in ldap_directory instead.
#pragma once

#include <ldap.h>

#include <string>

#include "config/ldap_table.hpp"
#include "directory/entry.hpp"

namespace mailgrid {

// Connects to the first server of the set that answers, starts TLS and
// binds as configured, with the set's timeouts. nullptr and *error when no
// server could be reached or the bind failed.
LDAP* open_ldap_sync(const ServerSet& servers, std::string* error);
// ldap_err2string with the server's diagnostic message.
std::string ldap_error_text(LDAP* ld, int rc);
// A search result entry with all its attributes.
Entry read_ldap_entry(LDAP* ld, LDAPMessage* msg);

}  // namespace mailgrid
