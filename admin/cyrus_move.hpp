// cyrus_move - a user's Cyrus mailboxes (INBOX and folders) from one
// backend to another, for "mailgrid user move". The Murder's XFER is tried
// first; where the backends cannot XFER (it is refused, or it reports a
// mailbox it could not move), the messages are exported with their flags
// and dates into the move's state directory (each file fsync'd), the old
// mailboxes deleted (the Murder forgets them), the new ones created with
// the same ACLs and quota, and the messages appended. Every stage can be
// run again after a crash; the user's mail is held meanwhile, so nothing
// arrives in between.
#pragma once

#include <cstdint>
#include <string>

#include "admin.hpp"

namespace mailgrid::admin {

struct CyrusMoveResult {
    std::uint64_t messages = 0, bytes = 0;
    std::string method;  // "xfer" or "copy"
};

CyrusMoveResult cyrus_move(Admin& admin, const Backend& from, const Backend& to, const std::string& mailbox,
                           const std::string& work_dir, bool show_progress);
// Messages in the mailbox and its folders on a backend; -1 (and *why)
// if it cannot be asked, 0 if there is no such mailbox.
long cyrus_total(Admin& admin, const Backend& b, const std::string& mailbox, std::string* why);

}  // namespace mailgrid::admin
