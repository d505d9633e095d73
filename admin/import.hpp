// import - "mailgrid import": thousands of accounts from a CSV or LDIF
// file, placed over the backends, written to the directory with many adds
// in flight, their mailboxes made; an account whose mailbox cannot be made
// is taken back out of the directory.
#pragma once

#include <string>
#include <vector>

#include "admin.hpp"

namespace mailgrid::admin {

struct ImportReport {
    std::size_t records = 0, added = 0, failed = 0, skipped = 0;
    std::map<std::string, std::size_t> per_backend;
    std::vector<std::string> errors;  // "line N: ..." / "address: ..."
    double seconds = 0;
};

// CSV: a header line naming the columns (address is required; password,
// password_hash, quota, backend, name, aliases are optional; aliases are
// separated by spaces or ';'). LDIF: entries as ldapadd takes them; those
// without maildrop are placed.
ImportReport import_users(Admin& admin, const std::string& path, bool dry_run, bool show_progress);

}  // namespace mailgrid::admin
