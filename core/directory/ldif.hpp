// ldif - RFC 2849 LDIF content records, as slapcat and ldapadd use them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "directory/entry.hpp"

namespace mailgrid {

struct LdifResult {
    std::vector<Entry> entries;
    std::vector<std::string> errors;  // "file, line N: text"; entries with errors are skipped
};

// Parses content records (and "changetype: add" records). Other change
// types, URL values (":<") and malformed lines are reported as errors with
// their line numbers; parsing continues with the next record.
LdifResult parse_ldif(std::string_view text, const std::string& path = "-");

// Writes one entry as LDIF (base64 where RFC 2849 requires it).
std::string to_ldif(const Entry& e);

}  // namespace mailgrid
