// directory - "find the entries for this filter, give me these attributes".
//
// Two implementations behind one interface: LdapDirectory (OpenLDAP's
// libldap, pooled, asynchronous) and LdifDirectory (an LDIF file loaded in
// process). Callers get Ok / NoSuchObject / TempFail and never have to tell
// a down server from an empty answer themselves.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "directory/entry.hpp"
#include "net/asio.hpp"

namespace mailgrid {

struct SearchRequest {
    std::string base;
    Scope scope = Scope::Sub;
    std::string filter;
    std::vector<std::string> attributes;  // empty = all user attributes
    int size_limit = 0;                   // 0 = none
    std::chrono::milliseconds timeout{10000};
};

struct SearchResult {
    enum class Code { Ok, NoSuchObject, SizeLimit, TempFail } code = Code::Ok;
    std::string error;  // why, for logs
    std::vector<Entry> entries;
};

enum class BindOutcome { Ok, InvalidCredentials, TempFail };
struct BindResult {
    BindOutcome outcome = BindOutcome::TempFail;
    std::string error;
};

class Directory {
public:
    virtual ~Directory() = default;
    virtual awaitable<SearchResult> search(SearchRequest request) = 0;
    // Verifies a password by binding as dn on a connection reserved for
    // user binds (never one used for searches). Empty passwords are refused
    // before they reach the server: an empty simple bind is anonymous.
    virtual awaitable<BindResult> bind_check(std::string dn, std::string password,
                                             std::chrono::milliseconds timeout) = 0;
    virtual std::string describe() const = 0;
};

}  // namespace mailgrid
