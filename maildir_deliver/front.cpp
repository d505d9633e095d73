// maildir_deliver - the command Postfix runs (.forward, pipe(8),
// mailbox_command) and the one a sysadmin types.
//
// This front binary delivers a message into a Maildir that is already
// there, with the limit cached in its maildirsize, on its own: it links no
// LDAP or TLS library, so a delivery costs little more than the fsyncs it
// needs. Everything else - a Maildir not there yet, a quota to refresh, a
// directory lookup for every message, LMTP, purge, reconcile, --check,
// --show - is done by maildir_deliverd (next to this binary), which it
// runs with the same command line and standard input.
#include <sysexits.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstring>
#include <string>

#include "cli.hpp"
#include "log/log.hpp"

using namespace mailgrid;

namespace {

// Runs maildir_deliverd in this process. With a message already read,
// standard input becomes the file it was read into.
[[noreturn]] void hand_over(char** argv, const InputBuffer* input) {
    char self[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    std::string dir = n > 0 ? std::string(self, static_cast<std::size_t>(n)) : std::string(argv[0]);
    dir = dir.substr(0, dir.rfind('/') == std::string::npos ? 0 : dir.rfind('/') + 1);
    std::string full = dir + "maildir_deliverd";
    if (input && (::lseek(input->file(), 0, SEEK_SET) != 0 || ::dup2(input->file(), 0) != 0))
        finish(EX_TEMPFAIL, "4.3.0", std::string("cannot pass the message on: ") + std::strerror(errno));
    ::alarm(0);
    ::execv(full.c_str(), argv);
    int e = errno;
    log::error("cannot run %s: %s", full.c_str(), std::strerror(e));
    finish(EX_TEMPFAIL, "4.3.5", "maildir_deliver: cannot run " + full + ": " + std::strerror(e));
}

}  // namespace

int main(int argc, char** argv) {
    Invocation inv;
    if (!parse_delivery_line(argc, argv, inv)) hand_over(argv, nullptr);
    SuiteConfig config = load_deliver_config(inv);
    // With RLIMIT_FSIZE, a write past the limit must fail (EFBIG), not kill.
    std::signal(SIGXFSZ, SIG_IGN);

    std::optional<MailboxStore> store;
    try {
        store.emplace(config);
    } catch (const std::exception& e) {
        defer_config(e.what());
    }
    OneMessage m = prepare_one_message(inv, *store, config);
    Target target = store->on_disk(m.recipient);
    if (target.need_lookup) hand_over(argv, nullptr);
    if (target.kind != Target::Kind::Mailbox) conclude(*store, m, inv, store->refused(target));
    if (auto refused = read_input(m, *store)) conclude(*store, m, inv, *refused);
    Outcome outcome = store->deliver(m.recipient, target, {}, m.message());
    // Over a limit cached on disk: the directory may have raised it.
    if (outcome.refresh_quota) hand_over(argv, &m.raw);
    conclude(*store, m, inv, outcome);
}
