// move - "mailgrid user move": a user's mailbox to another backend without
// losing or doubling a message, resumable after a crash at any step.
//
//   hold     the user's old and new maildrop go on the hold list: every
//            frontend defers their mail (it stays queued), and we wait
//            until each has taken the list up, then for deliveries in flight
//   copy     the mailbox is copied (Maildir: file by file, synced, every
//            checksum read back; Cyrus: XFER on the old backend)
//   flip     maildrop names the new backend; the old maildrop becomes an
//            accepted address, so mail queued under it still finds the user;
//            the frontends' cached lookups are purged
//   sync     messages that reached the old copy after it was copied follow
//   release  the hold is lifted: queued mail flows to the new backend
//   verify   every message of the old copy is in the new one
//   cleanup  the old copy is removed
//
// Each step is recorded in admin_state_dir before the next begins, and
// each can be run again: running the same command again resumes.
#pragma once

#include <functional>
#include <string>

#include "admin.hpp"

namespace mailgrid::admin {

struct MoveReport {
    std::string address, from, to;
    std::uint64_t messages = 0, bytes = 0, files = 0;
    double seconds = 0;
    bool resumed = false;
    std::string resumed_at;
};

// to may be "" when resuming a recorded move. Throws Failure.
MoveReport move_user(Admin& admin, const std::string& address, const std::string& to, bool show_progress);
// Undoes a move that has not flipped yet (the hold is lifted, the new copy
// removed). Throws Failure when it has gone too far to undo.
void abort_move(Admin& admin, const std::string& address);
// Addresses with an unfinished move.
std::vector<std::string> pending_moves(const Admin& admin);

}  // namespace mailgrid::admin
