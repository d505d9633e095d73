// cli - maildir_deliver's command line and the frame of a one-message
// delivery (see cli.hpp).
#include "cli.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "log/log.hpp"
#include "mail/address.hpp"
#include "util/fd_io.hpp"
#include "util/strings.hpp"

namespace mailgrid {

SuiteConfig load_deliver_config(const Invocation& inv) {
    log::init("maildir_deliver", log::Sink::Stderr);
    SuiteConfig config;
    try {
        config = SuiteConfig::load(inv.common.config_path, inv.common.overrides,
                                   inv.common.config_path != kDefaultConfig);
        config.declare(common_params());
        config.declare(deliver_params());
    } catch (const ConfigError& e) {
        if (inv.delivering()) defer_config(e.what());
        std::fprintf(stderr, "maildir_deliver: fatal: %s\n", e.what());
        std::exit(EX_CONFIG);
    }
    if (!inv.lmtp.empty()) config.set("deliver_lmtp_listen", inv.lmtp);
    bool interactive = inv.common.foreground || inv.common.check || inv.common.show || inv.maintenance() || ::isatty(2);
    init_logging("maildir_deliver", config, interactive, inv.common.verbose);
    return config;
}

bool serving_lmtp(const Invocation& inv, const SuiteConfig& config) {
    if (!inv.serve || inv.maintenance() || inv.common.check || inv.common.show) return false;
    if (config.get("deliver_lmtp_listen").empty()) {
        std::fputs("maildir_deliver: fatal: --lmtp needs an address (unix:/path or inet:host:port) or "
                   "deliver_lmtp_listen\n",
                   stderr);
        std::exit(EX_USAGE);
    }
    return true;
}

void finish(int code, const std::string& enhanced, const std::string& text) {
    std::fflush(stdout);
    std::string line = enhanced + " " + text + "\n";
    (void)!::write(1, line.data(), line.size());
    std::exit(code);
}

void defer_config(const std::string& why) {
    log::error("%s", why.c_str());
    finish(EX_TEMPFAIL, "4.3.5", "maildir_deliver configuration error: " + why);
}

namespace {

void on_time_limit(int) {
    maildir::remove_tmp_in_progress();
    static const char text[] = "4.3.0 maildir_deliver: time limit exceeded\n";
    (void)!::write(1, text, sizeof text - 1);
    ::_exit(EX_TEMPFAIL);
}

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

}  // namespace

OneMessage prepare_one_message(const Invocation& inv, MailboxStore& store, const SuiteConfig& config) {
    OneMessage m;
    m.started = std::chrono::steady_clock::now();
    // Postfix bounces a command that outlives command_time_limit: give up
    // (and defer) first.
    auto limit = std::chrono::duration_cast<std::chrono::seconds>(config.get_duration("deliver_time_limit"));
    maildir::track_tmp_for_signals(true);
    std::signal(SIGALRM, on_time_limit);
    ::alarm(static_cast<unsigned>(std::max<long long>(1, limit.count())));

    std::optional<Recipient> r;
    std::string why;
    if (!inv.maildir.empty()) {
        std::optional<maildirsize::Limit> quota;
        if (!inv.quota.empty()) {
            quota = maildirsize::parse_limit(inv.quota, &why);
            if (!quota) defer_config("--quota " + inv.quota + ": " + why);
        }
        store.set_explicit_maildir(inv.maildir, quota);
        r = Recipient{};
        r->extension = inv.extension;
        r->address = !inv.destination.empty() ? inv.destination : !env("RECIPIENT").empty() ? env("RECIPIENT")
                                                                                            : inv.maildir;
        if (!inv.extension.empty() && !maildir::folder_for_extension(inv.extension, &why)) r.reset();
    } else if (!inv.destination.empty()) {
        auto split = split_address(inv.destination);
        if (!inv.extension.empty() && split.has_at)
            r = store.make_recipient(split.local, split.domain, inv.extension, &why);
        else
            r = store.parse_address(inv.destination, &why);
    } else {
        auto user = env("USER");
        if (user.empty()) defer_config("no recipient: USER is not set (local(8) sets it) and no -d was given");
        auto domain = env("DOMAIN");
        if (domain.empty()) defer_config("no recipient domain: DOMAIN is not set and no -d was given");
        r = store.make_recipient(user, domain, env("EXTENSION"), &why);
        if (r && !env("RECIPIENT").empty()) r->address = env("RECIPIENT");
    }
    m.shown = r ? r->address : !inv.destination.empty() ? inv.destination : env("USER") + "@" + env("DOMAIN");
    if (!r) conclude(store, m, inv, store.bad_address(why));
    m.recipient = std::move(*r);
    return m;
}

InputBuffer::~InputBuffer() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
    if (file_ >= 0) ::close(file_);
}

bool InputBuffer::read_all(int fd, std::size_t cap) {
    file_ = ::memfd_create("message", MFD_CLOEXEC);
    if (file_ < 0) return false;
    // Postfix's local(8) and pipe(8) give the message through a pipe,
    // which splice moves into the file; a file (the front's hand-over, or
    // `maildir_deliver < FILE`) goes by sendfile; anything else (a socket,
    // a terminal) is copied through a buffer. copy_file_range would refuse:
    // the memfd is on another file system.
    enum class Move { Splice, Sendfile, Copy } move = Move::Splice;
    while (size_ < cap) {
        std::size_t want = std::min<std::size_t>(cap - size_, 1 << 20);
        ssize_t n;
        if (move == Move::Splice) {
            n = ::splice(fd, nullptr, file_, nullptr, want, 0);
            if (n < 0 && errno == EINVAL && size_ == 0) {
                move = Move::Sendfile;
                continue;
            }
        } else if (move == Move::Sendfile) {
            n = ::sendfile(file_, fd, nullptr, want);
            if (n < 0 && errno == EINVAL && size_ == 0) {
                move = Move::Copy;
                continue;
            }
        } else {
            char buffer[16384];
            n = ::read(fd, buffer, std::min(want, sizeof buffer));
            if (int e = 0; n > 0 && !write_all(file_, std::string_view(buffer, static_cast<std::size_t>(n)), &e)) {
                errno = e;
                return false;
            }
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (n == 0) break;
        size_ += static_cast<std::size_t>(n);
    }
    if (size_ == 0) return true;
    void* map = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, file_, 0);
    if (map == MAP_FAILED) {
        size_ = 0;
        return false;
    }
    data_ = static_cast<const char*>(map);
    return true;
}

std::optional<Outcome> read_input(OneMessage& m, const MailboxStore& store) {
    // Up to one byte more than the limit: enough to tell it is too big.
    std::size_t cap = store.message_size_limit() ? store.message_size_limit() + 1 : SIZE_MAX;
    if (!m.raw.read_all(0, cap)) {
        int e = errno;
        std::string detail = std::string("cannot read the message: ") + std::strerror(e);
        if (e == EFBIG || e == ENOSPC || e == ENOMEM) return Outcome::io_failure(e, detail);
        return Outcome::temporary("4.3.0", detail, detail);
    }
    // local(8) puts "From sender date" first; a Maildir has no such line.
    auto raw = m.raw.view();
    m.body = 0;
    if (raw.substr(0, 5) == "From ") {
        auto nl = raw.find('\n');
        m.body = nl == std::string_view::npos ? raw.size() : nl + 1;
    }
    if (store.message_size_limit() && m.message().size() > store.message_size_limit()) return store.too_big();
    return std::nullopt;
}

void conclude(const MailboxStore& store, const OneMessage& m, const Invocation& inv, const Outcome& o) {
    ::alarm(0);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - m.started).count();
    store.record(o, m.shown, inv.queue_id, m.message().size(), seconds);
    if (o.kind == Outcome::Kind::Delivered) {
        // Nothing registered to run at exit has work the kernel does not
        // do anyway; running it costs a one-message process page faults.
        std::fflush(nullptr);
        ::_exit(EX_OK);
    }
    finish(o.exit_code(), o.enhanced(), "<" + printable(m.shown, 100) + ">: " + o.text);
}

}  // namespace mailgrid
