// maildir - delivery into a Maildir++ and upkeep of its quota file (see
// maildir.hpp).
#include "mail/maildir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "mail/maildir_name.hpp"
#include "util/fd_io.hpp"

namespace mailgrid::maildir {

namespace {

constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
constexpr std::time_t kStaleTmpSeconds = 36 * 3600;

std::string errno_text(int e) { return std::strerror(e); }

// Opening with O_NOFOLLOW fails with ELOOP on a symbolic link (and with
// ENOTDIR on a link with O_DIRECTORY on some kernels): say which it was.
std::string open_problem(int dir_fd, const std::string& name, int e, const std::string& display) {
    struct stat st {};
    if ((e == ELOOP || e == ENOTDIR) && ::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode))
        return display + " is a symbolic link; refusing to follow it";
    if (e == ENOTDIR) return display + " is not a directory";
    return display + ": " + errno_text(e);
}

const std::string& host_name() {
    static const std::string host = [] {
        char buf[256] = {};
        if (::gethostname(buf, sizeof buf - 1) != 0) return std::string("localhost");
        return safe_host(buf);
    }();
    return host;
}

std::atomic<std::uint64_t> g_counter{0};

UniqueParts unique_parts() {
    struct timeval tv {};
    ::gettimeofday(&tv, nullptr);
    UniqueParts u;
    u.seconds = tv.tv_sec;
    u.microseconds = tv.tv_usec;
    u.pid = static_cast<long>(::getpid());
    u.counter = g_counter.fetch_add(1, std::memory_order_relaxed);
    u.host = host_name();
    return u;
}

// The tmp file of the delivery in progress, for a signal handler.
std::atomic<bool> g_track{false};
volatile std::sig_atomic_t g_tmp_dir = -1;
char g_tmp_name[512];

// flock(2) on the Maildir directory through a descriptor of its own (locks
// belong to open file descriptions, so each holder needs one).
class QuotaLock {
public:
    explicit QuotaLock(int maildir_fd) : fd_(::openat(maildir_fd, ".", kDirFlags)) {}
    bool shared() { return lock(LOCK_SH); }
    bool exclusive() { return lock(LOCK_EX); }
    void release() {
        if (held_) ::flock(fd_.get(), LOCK_UN);
        held_ = false;
    }
    ~QuotaLock() { release(); }

private:
    bool lock(int how) {
        if (!fd_) return false;
        while (::flock(fd_.get(), how) != 0)
            if (errno != EINTR) return false;
        held_ = true;
        return true;
    }
    Fd fd_;
    bool held_ = false;
};

// Appends one change line with a single write, as concurrent writers need.
void append_quota_line(int maildir_fd, std::int64_t bytes, std::int64_t messages) {
    Fd f(::openat(maildir_fd, "maildirsize", O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC));
    if (!f) return;  // no quota file: the next delivery recounts
    auto line = maildirsize::format_line(bytes, messages);
    // A short write leaves a torn last line, which makes the next reader
    // recount: nothing more to do here.
    (void)!::write(f.get(), line.data(), line.size());
}

struct DirStamp {
    std::string path;
    struct timespec mtime {};
    bool operator==(const DirStamp& o) const {
        return path == o.path && mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec;
    }
};

// Adds the messages of dir_fd/{cur,new} to usage and their mtimes to stamps.
bool count_dir(int dir_fd, const std::string& label, maildirsize::Usage& usage, std::vector<DirStamp>& stamps,
               int* error) {
    for (const char* sub : {"cur", "new"}) {
        Fd d(::openat(dir_fd, sub, kDirFlags));
        if (!d) {
            if (errno == ENOENT) continue;
            *error = errno;
            return false;
        }
        struct stat st {};
        if (::fstat(d.get(), &st) == 0) stamps.push_back({label + "/" + sub, st.st_mtim});
        int dup = ::dup(d.get());
        DIR* dir = dup >= 0 ? ::fdopendir(dup) : nullptr;
        if (!dir) {
            if (dup >= 0) ::close(dup);
            *error = errno;
            return false;
        }
        while (struct dirent* e = ::readdir(dir)) {
            if (e->d_name[0] == '.') continue;
            auto info = parse_file_name(e->d_name);
            std::uint64_t size = 0;
            if (info.size) {
                size = *info.size;
            } else {
                struct stat fs {};
                if (::fstatat(d.get(), e->d_name, &fs, AT_SYMLINK_NOFOLLOW) != 0) continue;  // moved meanwhile
                if (!S_ISREG(fs.st_mode)) continue;
                size = static_cast<std::uint64_t>(fs.st_size);
            }
            // A forged ",S=" cannot wrap the total: it saturates.
            auto add = static_cast<std::int64_t>(std::min<std::uint64_t>(size, INT64_MAX));
            if (__builtin_add_overflow(usage.bytes, add, &usage.bytes)) usage.bytes = INT64_MAX;
            usage.messages += 1;
        }
        ::closedir(dir);
    }
    return true;
}

bool count_all(int maildir_fd, bool count_trash, maildirsize::Usage& usage, std::vector<DirStamp>& stamps,
               int* error) {
    usage = {};
    stamps.clear();
    if (!count_dir(maildir_fd, "", usage, stamps, error)) return false;
    int dup = ::dup(maildir_fd);
    DIR* dir = dup >= 0 ? ::fdopendir(dup) : nullptr;
    if (!dir) {
        if (dup >= 0) ::close(dup);
        *error = errno;
        return false;
    }
    ::rewinddir(dir);
    std::vector<std::string> folders;
    while (struct dirent* e = ::readdir(dir)) {
        std::string_view name = e->d_name;
        if (name.size() < 2 || name.front() != '.' || name == "..") continue;
        if (!count_trash && name == ".Trash") continue;
        folders.emplace_back(name);
    }
    ::closedir(dir);
    for (const auto& f : folders) {
        Fd fd(::openat(maildir_fd, f.c_str(), kDirFlags));
        if (!fd) continue;  // a file, a link, or gone: not a folder
        if (!count_dir(fd.get(), f, usage, stamps, error)) return false;
    }
    return true;
}

bool restamp(int maildir_fd, std::vector<DirStamp>& stamps) {
    for (auto& s : stamps) {
        struct stat st {};
        std::string rel = s.path.front() == '/' ? s.path.substr(1) : s.path;
        if (::fstatat(maildir_fd, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
        s.mtime = st.st_mtim;
    }
    return true;
}

bool write_quota_file(int maildir_fd, const std::string& contents, int* error) {
    Fd tmp_dir(::openat(maildir_fd, "tmp", kDirFlags));
    if (!tmp_dir) {
        *error = errno;
        return false;
    }
    std::string name = tmp_name(unique_parts());
    Fd f(::openat(tmp_dir.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!f) {
        *error = errno;
        return false;
    }
    bool ok = write_all(f.get(), contents, error);
    if (ok && ::close(f.release()) != 0) {
        *error = errno;
        ok = false;
    }
    if (ok && ::renameat(tmp_dir.get(), name.c_str(), maildir_fd, "maildirsize") != 0) {
        *error = errno;
        ok = false;
    }
    if (!ok) ::unlinkat(tmp_dir.get(), name.c_str(), 0);
    return ok;
}

bool recount_locked(int maildir_fd, const maildirsize::Limit& limit, bool count_trash, std::string* why,
                    maildirsize::Usage* usage_out) {
    maildirsize::Usage usage;
    std::vector<DirStamp> stamps;
    int error = 0;
    for (int attempt = 0; attempt < 3; ++attempt) {
        if (!count_all(maildir_fd, count_trash, usage, stamps, &error)) {
            if (why) *why = "cannot count the Maildir: " + errno_text(error);
            return false;
        }
        auto before = stamps;
        if (!write_quota_file(maildir_fd, maildirsize::format_file(limit, usage), &error)) {
            if (why) *why = "cannot write maildirsize: " + errno_text(error);
            return false;
        }
        // A reader (IMAP) that moved or removed mail while we counted makes
        // the count stale: count again. The last attempt's file stays; it is
        // corrected by the next recount.
        if (restamp(maildir_fd, stamps) && stamps == before) break;
    }
    if (usage_out) *usage_out = usage;
    return true;
}

}  // namespace

void Fd::reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

Opened open_root(const std::string& path) {
    Opened o;
    o.fd = Fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!o.fd) {
        o.error = errno;
        o.why = path + ": " + errno_text(o.error);
    }
    return o;
}

Opened open_below(int root_fd, const std::vector<std::string>& components, bool create, mode_t last_mode,
                  const std::string& display) {
    Opened o;
    int current = root_fd;
    Fd holder;
    for (std::size_t i = 0; i < components.size(); ++i) {
        const auto& name = components[i];
        bool last = i + 1 == components.size();
        int fd = ::openat(current, name.c_str(), kDirFlags);
        if (fd < 0 && errno == ENOENT && create) {
            if (::mkdirat(current, name.c_str(), last ? last_mode : 0755) != 0 && errno != EEXIST) {
                o.error = errno;
                o.why = display + ": cannot create " + name + ": " + errno_text(o.error);
                return o;
            }
            fd = ::openat(current, name.c_str(), kDirFlags);
        }
        if (fd < 0) {
            o.error = errno;
            o.why = open_problem(current, name, o.error, display);
            return o;
        }
        holder = Fd(fd);
        current = fd;
    }
    if (components.empty()) {
        holder = Fd(::openat(root_fd, ".", kDirFlags));
        if (!holder) {
            o.error = errno;
            o.why = display + ": " + errno_text(o.error);
            return o;
        }
    }
    o.fd = std::move(holder);
    return o;
}

bool is_maildir(int dir_fd) {
    for (const char* sub : {"cur", "new", "tmp"}) {
        struct stat st {};
        if (::fstatat(dir_fd, sub, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) return false;
    }
    return true;
}

bool make_maildir(int dir_fd, bool folder, int* error) {
    // tmp/ and new/ before cur/: a reader that sees cur/ sees a whole Maildir.
    for (const char* sub : {"tmp", "new", "cur"}) {
        if (::mkdirat(dir_fd, sub, 0700) != 0 && errno != EEXIST) {
            *error = errno;
            return false;
        }
    }
    if (folder) {
        Fd f(::openat(dir_fd, "maildirfolder", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!f) {
            *error = errno;
            return false;
        }
    }
    return true;
}

maildirsize::FileState read_quota_file(int maildir_fd) {
    maildirsize::FileState s;
    Fd f(::openat(maildir_fd, "maildirsize", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!f) {
        s.parsed.error = errno_text(errno);
        return s;
    }
    struct stat st {};
    if (::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        s.parsed.error = "not a regular file";
        return s;
    }
    s.exists = true;
    s.size = static_cast<std::size_t>(st.st_size);
    std::time_t now = std::time(nullptr);
    s.age = std::chrono::seconds(now > st.st_mtime ? now - st.st_mtime : 0);
    // On the stack and no further than fstat's size: a heap block this big
    // and a read to see end of file are a page fault and a system call of
    // every delivery. A file grown to kRecountSize is recounted anyway.
    char buf[maildirsize::kRecountSize];
    const std::size_t want = std::min(s.size, sizeof buf);
    std::size_t have = 0;
    while (have < want) {
        ssize_t n = ::read(f.get(), buf + have, want - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        have += static_cast<std::size_t>(n);
    }
    s.parsed = maildirsize::parse(std::string_view(buf, have));
    return s;
}

std::optional<maildirsize::Limit> quota_file_limit(int maildir_fd) {
    Fd f(::openat(maildir_fd, "maildirsize", O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!f) return std::nullopt;
    char buf[256];
    ssize_t n = ::read(f.get(), buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    std::string_view text(buf, static_cast<std::size_t>(n));
    auto nl = text.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;
    return maildirsize::parse_limit(text.substr(0, nl));
}

bool recount(int maildir_fd, const maildirsize::Limit& limit, bool count_trash, std::string* why,
             maildirsize::Usage* usage) {
    QuotaLock lock(maildir_fd);
    if (!lock.exclusive()) {
        if (why) *why = "cannot lock the Maildir: " + errno_text(errno);
        return false;
    }
    return recount_locked(maildir_fd, limit, count_trash, why, usage);
}

namespace {

DeliveryResult& fail(DeliveryResult& r, int e, std::string why) {
    r.status = DeliveryResult::Status::Failed;
    r.error = e;
    r.why = std::move(why);
    return r;
}

// The tmp/ and new/ of the folder a delivery goes to.
struct FolderDirs {
    Fd folder;  // set unless the folder is the INBOX
    Fd tmp, fresh;
};

// Opens the folder (making it, or falling back to the INBOX, as the
// options say) and its tmp/ and new/. false: r says why not.
bool open_folder(int maildir_fd, const DeliveryOptions& o, FolderDirs& d, DeliveryResult& r) {
    r.folder = o.folder;
    int folder_fd = maildir_fd;
    if (!o.folder.empty()) {
        d.folder = Fd(::openat(maildir_fd, o.folder.c_str(), kDirFlags));
        if (!d.folder && errno == ENOENT && !o.create_folder) {
            if (!o.inbox_if_missing) {
                r.status = DeliveryResult::Status::FolderMissing;
                r.why = "folder " + o.folder + " does not exist";
                return false;
            }
            r.folder.clear();
        } else {
            if (!d.folder && errno == ENOENT) {
                if (::mkdirat(maildir_fd, o.folder.c_str(), 0700) != 0 && errno != EEXIST) {
                    fail(r, errno, "cannot create folder " + o.folder + ": " + errno_text(errno));
                    return false;
                }
                d.folder = Fd(::openat(maildir_fd, o.folder.c_str(), kDirFlags));
            }
            if (!d.folder) {
                fail(r, errno, open_problem(maildir_fd, o.folder, errno, "folder " + o.folder));
                return false;
            }
            int e = 0;
            if (!is_maildir(d.folder.get()) && !make_maildir(d.folder.get(), true, &e)) {
                fail(r, e, "cannot create folder " + o.folder + ": " + errno_text(e));
                return false;
            }
            folder_fd = d.folder.get();
        }
    }
    d.tmp = Fd(::openat(folder_fd, "tmp", kDirFlags));
    if (!d.tmp) {
        fail(r, errno, open_problem(folder_fd, "tmp", errno, "tmp/"));
        return false;
    }
    d.fresh = Fd(::openat(folder_fd, "new", kDirFlags));
    if (!d.fresh) {
        fail(r, errno, open_problem(folder_fd, "new", errno, "new/"));
        return false;
    }
    return true;
}

// The quota check, under `lock` taken shared here (a recount takes it
// exclusively and gives it back shared). false: refused or failed, r says.
bool quota_gate(int maildir_fd, const DeliveryOptions& o, std::int64_t size, QuotaLock& lock, DeliveryResult& r) {
    if (!lock.shared()) {
        fail(r, errno, "cannot lock the Maildir: " + errno_text(errno));
        return false;
    }
    auto state = read_quota_file(maildir_fd);
    // A limit from the directory is written down even when it is "none"
    // ("0S"): the file then caches it for deliveries that skip the lookup.
    r.quota_active = state.exists || o.limit.has_value();
    if (!r.quota_active) return true;
    if (maildirsize::recount_reason(state, o.limit, size, 1)) {
        if (!lock.exclusive()) {
            fail(r, errno, "cannot lock the Maildir: " + errno_text(errno));
            return false;
        }
        // Someone may have recounted while we waited for the lock.
        state = read_quota_file(maildir_fd);
        if (auto reason = maildirsize::recount_reason(state, o.limit, size, 1)) {
            maildirsize::Limit limit;
            if (o.limit) limit = *o.limit;
            else if (auto l = quota_file_limit(maildir_fd)) limit = *l;
            std::string why;
            if (!recount_locked(maildir_fd, limit, o.count_trash, &why, nullptr)) {
                fail(r, EIO, why);
                return false;
            }
            r.recount = *reason;
            state = read_quota_file(maildir_fd);
        }
        if (!lock.shared()) {
            fail(r, errno, "cannot lock the Maildir: " + errno_text(errno));
            return false;
        }
    }
    r.limit = state.parsed.limit;
    r.usage = state.parsed.usage;
    if (o.enforce_quota && state.parsed.valid && maildirsize::exceeds(r.limit, r.usage, size, 1)) {
        r.status = DeliveryResult::Status::OverQuota;
        bool by_size = maildirsize::exceeds({r.limit.bytes, 0}, r.usage, size, 1);
        r.why = by_size ? std::to_string(r.usage.bytes) + " bytes used, " + std::to_string(size) +
                              " more would pass the limit of " + std::to_string(r.limit.bytes)
                        : std::to_string(r.usage.messages) + " messages, the limit is " +
                              std::to_string(r.limit.messages);
        return false;
    }
    return true;
}

struct TmpFile {
    std::string name;
    UniqueParts unique;
    struct stat st {};
};

// Writes header and message to tmp/<unique> (O_EXCL, every write checked),
// fsyncs and closes it. false: r says why, and nothing is left in tmp/.
bool write_tmp(int tmp_dir, std::string_view header, std::string_view message, TmpFile& t, DeliveryResult& r) {
    Fd file;
    for (int attempt = 0; attempt < 10 && !file; ++attempt) {
        t.unique = unique_parts();
        t.name = tmp_name(t.unique);
        file = Fd(::openat(tmp_dir, t.name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!file && errno != EEXIST) {
            fail(r, errno, "cannot create tmp/" + t.name + ": " + errno_text(errno));
            return false;
        }
    }
    if (!file) {
        fail(r, EEXIST, "cannot find a unique name in tmp/");
        return false;
    }
    if (g_track.load(std::memory_order_relaxed)) {
        std::size_t n = std::min(t.name.size(), sizeof g_tmp_name - 1);
        std::memcpy(g_tmp_name, t.name.data(), n);
        g_tmp_name[n] = '\0';
        g_tmp_dir = tmp_dir;
    }
    auto discard = [&](int e, std::string why) {
        file.reset();
        ::unlinkat(tmp_dir, t.name.c_str(), 0);
        g_tmp_dir = -1;
        fail(r, e, std::move(why));
        return false;
    };
    int e = 0;
    if (!write_all(file.get(), header, &e) || !write_all(file.get(), message, &e))
        return discard(e, "cannot write tmp/" + t.name + ": " + errno_text(e));
    if (::fsync(file.get()) != 0) return discard(errno, "cannot fsync tmp/" + t.name + ": " + errno_text(errno));
    if (::fstat(file.get(), &t.st) != 0) return discard(errno, "cannot stat tmp/" + t.name + ": " + errno_text(errno));
    if (static_cast<std::uint64_t>(t.st.st_size) != header.size() + message.size())
        return discard(EIO, "tmp/" + t.name + " has " + std::to_string(t.st.st_size) + " bytes, not " +
                                std::to_string(header.size() + message.size()));
    if (::close(file.release()) != 0)
        return discard(errno, "cannot close tmp/" + t.name + ": " + errno_text(errno));
    return true;
}

void forget_tmp(int tmp_dir, const TmpFile& t) {
    ::unlinkat(tmp_dir, t.name.c_str(), 0);
    g_tmp_dir = -1;
}

enum class Linked { Yes, Moved, NoHardLinks, Failed };

// Gives the tmp file a unique name in new/, never replacing a file there.
// With `move` (the tmp file has no other use) a rename that refuses to
// overwrite does it in one step (Moved: the tmp name is gone); where the
// file system cannot do that, and for a file that goes to several
// Maildirs, link(2). Where hard links are not possible either
// (NoHardLinks), `move` still tries the rename.
Linked link_into(int tmp_dir, const TmpFile& t, int new_dir, std::uint64_t size, std::uint64_t vsize, bool move,
                 const DeliveryOptions& o, const std::string& folder, std::string& final, int* error) {
    UniqueParts u = t.unique;
    bool rename_refused = false;  // the file system has no RENAME_NOREPLACE
    for (int attempt = 0; attempt < 10; ++attempt) {
        if (attempt > 0) u.counter = g_counter.fetch_add(1, std::memory_order_relaxed);
        final = final_name(u, static_cast<std::uint64_t>(t.st.st_dev), static_cast<std::uint64_t>(t.st.st_ino), size,
                           vsize);
        if (o.before_link) o.before_link((folder.empty() ? "" : folder + "/") + "new/" + final);
        if (move && !rename_refused) {
            if (::renameat2(tmp_dir, t.name.c_str(), new_dir, final.c_str(), RENAME_NOREPLACE) == 0)
                return Linked::Moved;
            if (errno == EEXIST) continue;
            if (errno != EINVAL && errno != ENOSYS) {
                *error = errno;
                return Linked::Failed;
            }
            rename_refused = true;
        }
        if (::linkat(tmp_dir, t.name.c_str(), new_dir, final.c_str(), 0) == 0) return Linked::Yes;
        if (errno == EPERM || errno == ENOTSUP || errno == EXDEV || errno == EMLINK) {
            if (!move) return Linked::NoHardLinks;
            if (::renameat2(tmp_dir, t.name.c_str(), new_dir, final.c_str(), RENAME_NOREPLACE) == 0)
                return Linked::Moved;
        }
        if (errno != EEXIST) {
            *error = errno;
            return Linked::Failed;
        }
    }
    *error = EEXIST;
    return Linked::Failed;
}

// After the link: the Maildir's quota line, then new/ made durable. A
// delivery that cannot be made durable is taken back (the sender retries).
void finish(int maildir_fd, int new_dir, const std::string& folder, const std::string& final, std::int64_t size,
            DeliveryResult& r) {
    r.file = (folder.empty() ? "" : folder + "/") + "new/" + final;
    if (::fsync(new_dir) != 0) {
        int err = errno;
        if (::unlinkat(new_dir, final.c_str(), 0) == 0 && r.quota_active) {
            QuotaLock again(maildir_fd);
            again.shared();
            append_quota_line(maildir_fd, -size, -1);
        }
        fail(r, err, "cannot fsync new/: " + errno_text(err));
        return;
    }
    r.status = DeliveryResult::Status::Delivered;
    r.usage.bytes += size;
    r.usage.messages += 1;
}

}  // namespace

DeliveryResult deliver(int maildir_fd, std::string_view message, const DeliveryOptions& o) {
    DeliveryResult r;
    r.size = o.header.size() + message.size();
    const auto size = static_cast<std::int64_t>(r.size);
    FolderDirs d;
    if (!open_folder(maildir_fd, o, d, r)) return r;
    QuotaLock lock(maildir_fd);
    if (!quota_gate(maildir_fd, o, size, lock, r)) return r;
    TmpFile t;
    if (!write_tmp(d.tmp.get(), o.header, message, t, r)) return r;
    std::string final;
    int e = 0;
    auto linked = link_into(d.tmp.get(), t, d.fresh.get(), r.size, crlf_size(o.header) + crlf_size(message), true, o,
                            r.folder, final, &e);
    if (linked == Linked::Moved) g_tmp_dir = -1;
    else forget_tmp(d.tmp.get(), t);
    if (linked == Linked::Failed) return fail(r, e, "cannot move the message into new/: " + errno_text(e));
    if (r.quota_active) append_quota_line(maildir_fd, size, 1);
    lock.release();
    finish(maildir_fd, d.fresh.get(), r.folder, final, size, r);
    return r;
}

std::vector<DeliveryResult> deliver_all(const std::vector<Delivery>& deliveries, std::string_view header,
                                        std::string_view message) {
    const std::size_t n = deliveries.size();
    std::vector<DeliveryResult> results(n);
    std::vector<FolderDirs> dirs(n);
    std::vector<bool> ready(n, false);
    const std::uint64_t total = header.size() + message.size();
    const auto size = static_cast<std::int64_t>(total);
    const std::uint64_t vsize = crlf_size(header) + crlf_size(message);
    std::size_t writer = n;
    for (std::size_t i = 0; i < n; ++i) {
        results[i].size = total;
        ready[i] = open_folder(deliveries[i].maildir_fd, deliveries[i].options, dirs[i], results[i]);
        if (ready[i] && writer == n) writer = i;
    }
    if (writer == n) return results;
    TmpFile t;
    DeliveryResult written;
    if (!write_tmp(dirs[writer].tmp.get(), header, message, t, written)) {
        for (std::size_t i = 0; i < n; ++i)
            if (ready[i]) {
                fail(results[i], written.error, written.why);
                results[i].size = total;
            }
        return results;
    }
    // Each Maildir in turn: its quota under its own lock (one at a time, so
    // recounts cannot deadlock), its link, its line.
    std::vector<std::pair<std::size_t, std::string>> linked;
    std::vector<std::size_t> apart;
    for (std::size_t i = 0; i < n; ++i) {
        if (!ready[i]) continue;
        QuotaLock lock(deliveries[i].maildir_fd);
        if (!quota_gate(deliveries[i].maildir_fd, deliveries[i].options, size, lock, results[i])) continue;
        std::string final;
        int e = 0;
        switch (link_into(dirs[writer].tmp.get(), t, dirs[i].fresh.get(), total, vsize, false, deliveries[i].options,
                          results[i].folder, final, &e)) {
            case Linked::Yes:
            case Linked::Moved:  // not asked for here
                if (results[i].quota_active) append_quota_line(deliveries[i].maildir_fd, size, 1);
                linked.emplace_back(i, std::move(final));
                break;
            case Linked::NoHardLinks: apart.push_back(i); break;
            case Linked::Failed: fail(results[i], e, "cannot link the message into new/: " + errno_text(e)); break;
        }
    }
    // The first fsync commits every link made above; the others find
    // little left to do.
    for (auto& [i, final] : linked)
        finish(deliveries[i].maildir_fd, dirs[i].fresh.get(), results[i].folder, final, size, results[i]);
    forget_tmp(dirs[writer].tmp.get(), t);
    // A Maildir on another file system gets a copy of its own.
    for (std::size_t i : apart) {
        auto o = deliveries[i].options;
        o.header = header;
        results[i] = deliver(deliveries[i].maildir_fd, message, o);
    }
    return results;
}

bool holds(int maildir_fd, std::string_view file) {
    std::string_view folder;
    if (auto slash = file.find('/'); slash != std::string_view::npos && file.substr(0, slash) != "new") {
        folder = file.substr(0, slash);
        file.remove_prefix(slash + 1);
        if (folder.size() < 2 || folder.front() != '.' || folder == "..") return false;
    }
    if (file.substr(0, 4) != "new/") return false;
    std::string_view name = file.substr(4);
    if (name.empty() || name.front() == '.' || name.find('/') != std::string_view::npos) return false;
    Fd dir(::openat(maildir_fd, folder.empty() ? "." : std::string(folder).c_str(), kDirFlags));
    if (!dir) return false;
    struct stat st {};
    if (::fstatat(dir.get(), std::string(file).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return true;
    // A reader moves it to cur/ and adds its flags after a separator (':'
    // by the Maildir convention, ';' or '!' where ':' cannot be used).
    Fd cur(::openat(dir.get(), "cur", kDirFlags));
    if (!cur) return false;
    DIR* d = ::fdopendir(cur.release());
    if (!d) return false;
    bool found = false;
    while (struct dirent* e = ::readdir(d)) {
        std::string_view have = e->d_name;
        if (have.substr(0, name.size()) != name) continue;
        if (have.size() == name.size() || std::string_view(":;!").find(have[name.size()]) != std::string_view::npos) {
            found = true;
            break;
        }
    }
    ::closedir(d);
    return found;
}

PurgeStats purge(int maildir_fd, std::time_t before, bool dry_run) {
    PurgeStats s;
    auto error = [&s](std::string what) {
        if (s.errors++ == 0) s.first_error = std::move(what);
    };
    {
        Fd cur(::openat(maildir_fd, "cur", kDirFlags));
        if (!cur) {
            error(open_problem(maildir_fd, "cur", errno, "cur/"));
            return s;
        }
        int dup = ::dup(cur.get());
        DIR* dir = dup >= 0 ? ::fdopendir(dup) : nullptr;
        if (!dir) {
            if (dup >= 0) ::close(dup);
            error("cur/: " + errno_text(errno));
            return s;
        }
        std::vector<std::pair<std::string, std::uint64_t>> doomed;
        while (struct dirent* e = ::readdir(dir)) {
            if (e->d_name[0] == '.') continue;
            struct stat st {};
            if (::fstatat(cur.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
            if (st.st_mtime >= before) continue;
            if (has_flag(e->d_name, 'F')) {
                ++s.kept_flagged;
                continue;
            }
            auto info = parse_file_name(e->d_name);
            doomed.emplace_back(e->d_name, info.size ? *info.size : static_cast<std::uint64_t>(st.st_size));
        }
        ::closedir(dir);
        std::int64_t bytes = 0, count = 0;
        for (const auto& [name, size] : doomed) {
            if (!dry_run && ::unlinkat(cur.get(), name.c_str(), 0) != 0) {
                if (errno != ENOENT) error("cur/" + name + ": " + errno_text(errno));
                continue;
            }
            ++s.deleted;
            s.bytes += size;
            bytes += static_cast<std::int64_t>(size);
            ++count;
        }
        if (!dry_run && count > 0) {
            QuotaLock lock(maildir_fd);
            lock.shared();
            append_quota_line(maildir_fd, -bytes, -count);
        }
    }
    Fd tmp(::openat(maildir_fd, "tmp", kDirFlags));
    if (!tmp) return s;
    int dup = ::dup(tmp.get());
    DIR* dir = dup >= 0 ? ::fdopendir(dup) : nullptr;
    if (!dir) {
        if (dup >= 0) ::close(dup);
        return s;
    }
    std::time_t stale = std::time(nullptr) - kStaleTmpSeconds;
    std::vector<std::string> old;
    while (struct dirent* e = ::readdir(dir)) {
        if (e->d_name[0] == '.') continue;
        struct stat st {};
        if (::fstatat(tmp.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            st.st_mtime < stale)
            old.emplace_back(e->d_name);
    }
    ::closedir(dir);
    for (const auto& name : old)
        if (dry_run || ::unlinkat(tmp.get(), name.c_str(), 0) == 0) ++s.tmp_removed;
    return s;
}

void track_tmp_for_signals(bool on) { g_track.store(on, std::memory_order_relaxed); }

void remove_tmp_in_progress() {
    int dir = g_tmp_dir;
    if (dir >= 0) ::unlinkat(dir, g_tmp_name, 0);
}

}  // namespace mailgrid::maildir
