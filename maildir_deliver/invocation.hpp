// invocation - what maildir_deliver was asked to do, and the reading of
// the command lines Postfix starts it with. Apart from the rest of the
// command-line code so that the fuzzer can build it (no libldap, no
// logging): tests/fuzz/fuzz_delivery_line.cpp.
#pragma once

#include <string>

#include "daemon/common.hpp"

namespace mailgrid {

struct PurgeOptions {
    int days = 30;
    bool dry_run = false;
};

struct ReconcileOptions {
    bool remove = false;  // move Maildirs without an entry to the attic
    bool force = false;   // even when most Maildirs would go
    std::string attic;
};

enum class Job { Deliver, Purge, Reconcile };

struct Invocation {
    CommonOptions common;
    std::string destination, extension, sender, queue_id, maildir, quota, lmtp;
    bool serve = false;  // --lmtp given (with or without an address)
    Job job = Job::Deliver;
    PurgeOptions purge;
    bool days_given = false;  // purge --days (else deliver_purge_days)
    ReconcileOptions reconcile;
    bool reconcile_dry_run = false;

    bool maintenance() const { return job != Job::Deliver; }
    // Deliver one message from stdin (not a server, a job or a check)?
    bool delivering() const { return !maintenance() && !common.check && !common.show && !serve; }
};

// The command lines that deliver one message as Postfix writes them
// (pipe(8): -d user@domain -e ext -f sender -i queue_id; .forward and
// mailbox_command: none; deliverquota style: --maildir DIR --quota Q;
// -c, -o, -v, --foreground), read without CLI11: the front, started once
// per message, then links no command-line library. False for anything
// else - --help, --lmtp, purge, a spelling it does not know - and the
// front hands the command line to maildir_deliverd, whose CLI11 parser
// (command_line.hpp) has the last word.
bool parse_delivery_line(int argc, const char* const* argv, Invocation& inv);

}  // namespace mailgrid
