// command_line - maildir_deliver's whole command line, with CLI11 (see
// command_line.hpp).
#include "command_line.hpp"

namespace mailgrid {

void read_command_line(CLI::App& app, Invocation& inv, int argc, const char* const* argv) {
    app.set_version_flag("--version", "maildir_deliver " MAILGRID_VERSION);
    // "maildir_deliver purge -o name=value" as well as before the subcommand.
    app.fallthrough();
    // -f is the envelope sender here, as for sendmail and dovecot-lda.
    app.add_option("-c,--config", inv.common.config_path, "mailgrid.cf to read")->capture_default_str();
    app.add_option("-o", inv.common.overrides, "override a parameter: -o name=value")->take_all();
    app.add_flag("--foreground", inv.common.foreground, "log to stderr (and stay in the foreground with --lmtp)");
    app.add_flag("-v,--verbose", inv.common.verbose, "more logging (repeat for more)");
    app.add_flag("--check", inv.common.check, "validate the configuration and exit");
    app.add_flag("--show", inv.common.show, "print the effective parameters and exit");
    app.add_option("-d,--destination", inv.destination, "recipient: user@domain or user+extension@domain (pipe(8))");
    app.add_option("-e,--extension", inv.extension, "address extension: delivers into the folder .extension");
    app.add_option("-f,--from", inv.sender, "envelope sender, for the log");
    app.add_option("-i,--queue-id", inv.queue_id, "Postfix queue id, for the log (pipe(8): ${queue_id})");
    app.add_option("--maildir", inv.maildir, "deliver into this Maildir (like deliverquota)");
    app.add_option("--quota", inv.quota, "with --maildir: the quota, <bytes>S,<messages>C");
    app.add_option("--lmtp", inv.lmtp, "serve LMTP on unix:/path or inet:host:port (default: deliver_lmtp_listen)")
        ->expected(0, 1);
    auto* purge = app.add_subcommand("purge", "remove old unflagged messages from cur/ of every user's INBOX");
    purge->add_flag("--dry-run", inv.purge.dry_run, "say what would be removed, remove nothing");
    auto* days = purge->add_option("--days", inv.purge.days, "age in days (default: deliver_purge_days)");
    auto* reconcile = app.add_subcommand("reconcile", "compare the directory's users with the Maildirs on disk");
    reconcile->add_flag("--remove", inv.reconcile.remove, "move Maildirs without a directory entry to the attic");
    reconcile->add_flag("--force", inv.reconcile.force, "move them even when most Maildirs would go");
    reconcile->add_flag("--dry-run", inv.reconcile_dry_run, "only list (the default without --remove)");
    app.parse(argc, argv);
    if (purge->parsed()) inv.job = Job::Purge;
    if (reconcile->parsed()) inv.job = Job::Reconcile;
    inv.days_given = days->count() > 0;
    if (inv.reconcile_dry_run) inv.reconcile.remove = false;
    inv.serve = app.count("--lmtp") > 0;
}

}  // namespace mailgrid
