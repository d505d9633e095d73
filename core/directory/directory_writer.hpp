// directory_writer - adding, changing and removing entries, for the
// mailgrid admin command: in an LDAP server (libldap, synchronous, adds
// pipelined for bulk imports) or in the embedded LDIF file (rewritten
// whole under a lock and renamed into place, so ldap_tablemap's reload
// never sees half a file).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/ldap_table.hpp"
#include "directory/directory.hpp"
#include "directory/entry.hpp"

namespace mailgrid {

struct Modification {
    enum class Op { Add, Replace, Delete } op = Op::Replace;
    std::string attribute;
    std::vector<std::string> values;  // Delete with no values removes the attribute
};

struct WriteResult {
    enum class Code { Ok, AlreadyExists, NoSuchObject, Denied, Invalid, TempFail } code = Code::Ok;
    std::string error;
    bool ok() const { return code == Code::Ok; }
    static WriteResult success() { return {}; }
    static WriteResult failure(Code c, std::string why) { return {c, std::move(why)}; }
};

class DirectoryWriter {
public:
    virtual ~DirectoryWriter() = default;
    // Sub-tree search of everything (paged where the server allows it).
    virtual SearchResult search(const std::string& base, const std::string& filter,
                                const std::vector<std::string>& attributes) = 0;
    virtual WriteResult add(const Entry& entry) = 0;
    virtual WriteResult modify(const std::string& dn, const std::vector<Modification>& changes) = 0;
    virtual WriteResult remove(const std::string& dn) = 0;
    // Adds many entries, keeping up to `window` requests in flight;
    // done(i, result) is called once for each, in any order.
    virtual void add_many(const std::vector<Entry>& entries, int window,
                          const std::function<void(std::size_t, const WriteResult&)>& done) = 0;
    virtual std::string describe() const = 0;
};

// nullptr and *error if the server cannot be reached or the bind fails.
std::unique_ptr<DirectoryWriter> open_ldap_writer(const ServerSet& servers, std::string* error);
// The file must exist (it may be empty).
std::unique_ptr<DirectoryWriter> open_ldif_writer(const std::string& path, std::string* error);

// Applies changes to an entry in memory, as an LDAP server would
// (attribute names case-insensitive, values compared case-insensitively
// for the mail attributes this suite writes). Invalid if a deleted value
// is not there or an added one already is.
WriteResult apply_modifications(Entry& entry, const std::vector<Modification>& changes);

}  // namespace mailgrid
