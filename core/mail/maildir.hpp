// maildir - delivery into a Maildir++ and upkeep of its quota file.
//
// Safe delivery: the message is written to tmp/ (O_EXCL, every write
// checked), fsync'd, hard-linked into new/ (link never overwrites), its
// tmp name removed, new/ fsync'd; only then is it reported delivered. A
// crash at any point leaves no message or one complete message in new/.
//
// Every directory below the store root is opened one component at a time
// with O_NOFOLLOW, and every later operation is relative to those
// descriptors: a symbolic link anywhere below the root is refused, so a
// mailbox (or a tmp/, new/ or folder) that is a link out of the store can
// never be written through.
//
// The quota file is kept exact among concurrent deliveries: a delivery
// holds a shared flock(2) on the Maildir directory from the quota check to
// its maildirsize line, a recount holds it exclusively.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mail/maildirsize.hpp"

namespace mailgrid::maildir {

// A file descriptor, closed when it goes.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(Fd&& o) noexcept : fd_(o.release()) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = o.release();
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int release() {
        int f = fd_;
        fd_ = -1;
        return f;
    }
    void reset();

private:
    int fd_ = -1;
};

// Outcome of opening a directory: the descriptor, or errno and a sentence.
struct Opened {
    Fd fd;
    int error = 0;
    std::string why;
    explicit operator bool() const { return static_cast<bool>(fd); }
};

// Opens an existing directory by absolute path (the store root: symbolic
// links in it are the administrator's choice and followed).
Opened open_root(const std::string& path);

// Opens components below root one at a time without following symbolic
// links (ELOOP: "... is a symbolic link"). With create, missing
// directories are made: the last with last_mode, the others 0755.
// `display` names the path in messages.
Opened open_below(int root_fd, const std::vector<std::string>& components, bool create, mode_t last_mode,
                  const std::string& display);

// Does dir hold tmp/, new/ and cur/ (real directories, not links)?
bool is_maildir(int dir_fd);
// Makes tmp/, new/ and cur/ (and the empty file "maildirfolder" of a
// Maildir++ folder). Existing ones are fine.
bool make_maildir(int dir_fd, bool folder, int* error);

struct DeliveryOptions {
    std::string_view header;     // written before the message (e.g. "Return-Path: <a@b>\n")
    std::string folder;          // "" = INBOX, else ".name" (checked by the caller)
    bool create_folder = true;   // make a missing folder ...
    bool inbox_if_missing = false;  // ... or else deliver into the INBOX, or else report FolderMissing
    // The quota to keep: a limit (Limit{} = none) rewrites maildirsize when
    // it differs; nullopt keeps the file's own, and without a file there
    // is no quota.
    std::optional<maildirsize::Limit> limit;
    bool enforce_quota = true;   // false: count the message but never refuse it
    bool count_trash = false;    // count .Trash in a recount (Courier: no, Dovecot: yes)
    // Called with the name the message is about to get ("new/NAME" or
    // ".folder/new/NAME", relative to the Maildir) before each attempt to
    // link it there: a journal written here names every message that may
    // be in the Maildir, so a crash between the link and the reply to the
    // sender can be told from a crash before the link (see holds()).
    std::function<void(const std::string& file)> before_link;
};

struct DeliveryResult {
    enum class Status { Delivered, OverQuota, FolderMissing, Failed } status = Status::Failed;
    int error = 0;        // errno when Failed
    std::string why;      // for logs
    std::string folder;   // where it went ("" = INBOX)
    std::string file;     // "new/NAME" or ".folder/new/NAME", relative to the Maildir
    std::uint64_t size = 0;
    bool quota_active = false;  // maildirsize was kept
    maildirsize::Limit limit;
    maildirsize::Usage usage;   // after the delivery (before it, when refused)
    std::string recount;        // why maildirsize was recounted, if it was
};

// Delivers one message (stored as given: LF line ends, no "From " line)
// into the Maildir open at maildir_fd. Blocking: run it off the event loop.
DeliveryResult deliver(int maildir_fd, std::string_view message, const DeliveryOptions& options);

// One message for several Maildirs (an LMTP transaction): written and
// fsync'd once, in the first Maildir's tmp/, then hard-linked into each
// one's new/ after its own quota check, and every new/ fsync'd after all
// the links, so the whole costs about what one delivery does. Maildirs
// where the link is not possible (another file system) get a copy of their
// own through deliver(). The options' headers are not used: header is
// written for all. Results are in the order of deliveries.
struct Delivery {
    int maildir_fd = -1;
    DeliveryOptions options;
};
std::vector<DeliveryResult> deliver_all(const std::vector<Delivery>& deliveries, std::string_view header,
                                        std::string_view message);

// Is the message that before_link named still in the Maildir: in new/
// under that name, or in cur/ with flags added ("NAME:2,S")? file comes
// from before_link; anything else ("..", other directories) is false.
bool holds(int maildir_fd, std::string_view file);

// Counts the Maildir (cur/ and new/ of the INBOX and of every folder) and
// replaces maildirsize with the limit and the totals, recounting while
// directories change under it (up to three times). Holds the exclusive lock.
bool recount(int maildir_fd, const maildirsize::Limit& limit, bool count_trash, std::string* why,
             maildirsize::Usage* usage = nullptr);

// The quota file as it is now (exists=false when it is missing).
maildirsize::FileState read_quota_file(int maildir_fd);
// The limit in the quota file's first line, if it has a readable one.
std::optional<maildirsize::Limit> quota_file_limit(int maildir_fd);

struct PurgeStats {
    std::size_t deleted = 0;       // messages removed (or that would be, dry run)
    std::uint64_t bytes = 0;       // their size
    std::size_t kept_flagged = 0;  // old enough, but flagged (F)
    std::size_t tmp_removed = 0;   // stale tmp/ files (older than 36 hours)
    std::size_t errors = 0;
    std::string first_error;
};

// Removes messages in the INBOX's cur/ last modified before `before` that
// are not flagged, and tmp/ files older than 36 hours; records the removal
// in maildirsize. Folders are not touched.
PurgeStats purge(int maildir_fd, std::time_t before, bool dry_run);

// For a one-message process: remembers the tmp file being written so a
// signal handler (a time limit) can remove it with remove_tmp_in_progress(),
// which is async-signal-safe. Off by default (deliveries on many threads).
void track_tmp_for_signals(bool on);
void remove_tmp_in_progress();

}  // namespace mailgrid::maildir
