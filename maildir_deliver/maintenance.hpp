// maintenance - "maildir_deliver purge" and "maildir_deliver reconcile":
// the jobs a sysadmin runs from cron over the whole store, driven by the
// directory's list of users.
#pragma once

#include <ctime>

#include "agent.hpp"
#include "cli.hpp"

namespace mailgrid {

// Both print their findings and a summary on stdout, a progress bar on
// stderr when it is a terminal, and return a sysexits status: 0; 1
// (reconcile) differences found; 74 some Maildirs could not be processed;
// 75 the directory could not list the users (nothing was changed).
awaitable<int> run_purge(Agent& agent, const PurgeOptions& options);
awaitable<int> run_reconcile(Agent& agent, const ReconcileOptions& options);

}  // namespace mailgrid
