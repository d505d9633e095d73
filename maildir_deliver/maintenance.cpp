// maintenance - purge and reconcile over the whole store (see
// maintenance.hpp).
#include "maintenance.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "util/strings.hpp"

namespace mailgrid {

namespace {

// A one-line progress bar on stderr, only when it is a terminal, redrawn
// at most ten times a second.
class Progress {
public:
    Progress(std::string label, std::size_t total) : label_(std::move(label)), total_(total), on_(::isatty(2)) {}
    ~Progress() { finish(); }
    void step(std::size_t done) {
        if (!on_ || total_ == 0) return;
        auto now = std::chrono::steady_clock::now();
        if (done != total_ && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        constexpr int kWidth = 40;
        int filled = static_cast<int>(kWidth * done / total_);
        std::fprintf(stderr, "\r%s [%.*s%*s] %zu/%zu", label_.c_str(), filled,
                     "########################################", kWidth - filled, "", done, total_);
        std::fflush(stderr);
        drawn_ = true;
    }
    void finish() {
        if (!drawn_) return;
        std::fprintf(stderr, "\r%*s\r", static_cast<int>(label_.size()) + 70, "");
        std::fflush(stderr);
        drawn_ = false;
    }

private:
    std::string label_;
    std::size_t total_;
    bool on_;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point last_{};
};

std::string human_bytes(std::uint64_t n) {
    char buf[32];
    if (n >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.1f GB", static_cast<double>(n) / (1ull << 30));
    else if (n >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(n) / (1ull << 20));
    else if (n >= 1024) std::snprintf(buf, sizeof buf, "%.1f KB", static_cast<double>(n) / 1024);
    else std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(n));
    return buf;
}

// Every Maildir below dir (relative paths), not descending into Maildirs,
// names starting with '.' (folders, the attic) or symbolic links.
void find_maildirs(int dir_fd, const std::string& prefix, int depth, std::set<std::string>& out,
                   std::vector<std::string>& errors) {
    if (depth > 8) return;
    int dup = ::dup(dir_fd);
    DIR* dir = dup >= 0 ? ::fdopendir(dup) : nullptr;
    if (!dir) {
        if (dup >= 0) ::close(dup);
        errors.push_back((prefix.empty() ? "." : prefix) + ": " + std::strerror(errno));
        return;
    }
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(dir))
        if (e->d_name[0] != '.') names.emplace_back(e->d_name);
    ::closedir(dir);
    for (const auto& name : names) {
        maildir::Fd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) continue;  // a file or a link: not part of the store's tree
        std::string rel = prefix.empty() ? name : prefix + "/" + name;
        if (maildir::is_maildir(sub.get())) out.insert(rel);
        else find_maildirs(sub.get(), rel, depth + 1, out, errors);
    }
}

std::vector<std::string> split_path(const std::string& rel) {
    std::vector<std::string> out;
    for (auto part : split(rel, '/'))
        if (!part.empty()) out.emplace_back(part);
    return out;
}

bool make_directories(const std::string& path) {
    std::string at;
    for (auto part : split(path, '/')) {
        if (part.empty()) continue;
        at += "/" + std::string(part);
        if (::mkdir(at.c_str(), 0700) != 0 && errno != EEXIST) return false;
    }
    return true;
}

}  // namespace

awaitable<int> run_purge(Agent& agent, const PurgeOptions& o) {
    std::string why;
    auto users = co_await agent.list_users(&why);
    if (!users) {
        std::fprintf(stderr, "maildir_deliver: purge: %s; nothing was removed\n", why.c_str());
        co_return EX_TEMPFAIL;
    }
    auto root = agent.store().open_store();
    if (!root) {
        std::fprintf(stderr, "maildir_deliver: purge: mail store %s\n", root.why.c_str());
        co_return EX_TEMPFAIL;
    }
    const std::time_t before = std::time(nullptr) - static_cast<std::time_t>(o.days) * 86400;
    const char* verb = o.dry_run ? "would remove" : "removed";
    std::size_t purged = 0, skipped = 0, missing = 0, errors = 0, flagged = 0, tmp = 0, messages = 0;
    std::uint64_t bytes = 0;
    Progress progress("purge", users->size());
    for (std::size_t i = 0; i < users->size(); ++i) {
        progress.step(i + 1);
        const auto& u = (*users)[i];
        const std::string who = u.address.empty() ? u.dn : u.address;
        if (!u.purge) {
            ++skipped;
            continue;
        }
        if (u.components.empty()) {
            ++errors;
            progress.finish();
            std::printf("error: %s: %s\n", u.dn.c_str(), u.why.c_str());
            continue;
        }
        std::string path = agent.store().root() + "/" + maildir::join_components(u.components);
        auto md = maildir::open_below(root.fd.get(), u.components, false, 0700, path);
        if (!md || !maildir::is_maildir(md.fd.get())) {
            if (md.error == ENOENT) {
                ++missing;
                continue;
            }
            ++errors;
            progress.finish();
            std::printf("error: %s: %s\n", who.c_str(), md ? (path + " is not a Maildir").c_str() : md.why.c_str());
            continue;
        }
        auto s = maildir::purge(md.fd.get(), before, o.dry_run);
        ++purged;
        messages += s.deleted;
        bytes += s.bytes;
        flagged += s.kept_flagged;
        tmp += s.tmp_removed;
        if (s.deleted || s.errors) progress.finish();
        if (s.deleted)
            std::printf("%s: %s %zu message%s (%s)\n", who.c_str(), verb, s.deleted, s.deleted == 1 ? "" : "s",
                        human_bytes(s.bytes).c_str());
        if (s.errors) {
            errors += s.errors;
            std::printf("error: %s: %s\n", who.c_str(), s.first_error.c_str());
        }
    }
    progress.finish();
    std::printf("purge%s: %zu users: %zu purged, %zu skipped (%s: no), %zu without a Maildir; "
                "%zu messages (%s) older than %d days %s, %zu flagged kept, %zu stale tmp files %s, %zu errors\n",
                o.dry_run ? " (dry run)" : "", users->size(), purged, skipped,
                agent.store().purge_attribute().empty() ? "-" : agent.store().purge_attribute().c_str(), missing, messages,
                human_bytes(bytes).c_str(), o.days, verb, flagged, tmp, verb, errors);
    std::fflush(stdout);
    co_return errors ? EX_IOERR : EX_OK;
}

awaitable<int> run_reconcile(Agent& agent, const ReconcileOptions& o) {
    std::string why;
    auto users = co_await agent.list_users(&why);
    if (!users) {
        std::fprintf(stderr, "maildir_deliver: reconcile: %s; nothing was changed\n", why.c_str());
        co_return EX_TEMPFAIL;
    }
    auto root = agent.store().open_store();
    if (!root) {
        std::fprintf(stderr, "maildir_deliver: reconcile: mail store %s\n", root.why.c_str());
        co_return EX_TEMPFAIL;
    }
    std::map<std::string, std::string> expected;  // relative path -> who
    std::size_t unusable = 0;
    for (const auto& u : *users) {
        if (u.components.empty()) {
            ++unusable;
            std::printf("no usable mailbox path: %s: %s\n", u.dn.c_str(), u.why.c_str());
            continue;
        }
        expected.emplace(maildir::join_components(u.components), u.address.empty() ? u.dn : u.address);
    }
    std::set<std::string> found;
    std::vector<std::string> errors;
    {
        Progress progress("reconcile: scanning " + agent.store().root(), 1);
        progress.step(0);
        find_maildirs(root.fd.get(), "", 0, found, errors);
    }
    for (const auto& e : errors) std::printf("error: %s/%s\n", agent.store().root().c_str(), e.c_str());
    std::vector<std::string> orphans, missing;
    for (const auto& f : found)
        if (!expected.count(f)) orphans.push_back(f);
    for (const auto& [rel, who] : expected)
        if (!found.count(rel)) missing.push_back(rel);
    for (const auto& rel : missing)
        std::printf("no Maildir: %s (%s/%s)\n", expected[rel].c_str(), agent.store().root().c_str(), rel.c_str());
    for (const auto& rel : orphans) std::printf("no directory entry: %s/%s\n", agent.store().root().c_str(), rel.c_str());

    std::size_t moved = 0;
    if (o.remove && !orphans.empty()) {
        // A directory that answers with far fewer users than there are
        // Maildirs is more likely broken than right.
        bool suspicious = users->empty() || (found.size() >= 4 && orphans.size() * 2 > found.size());
        if (suspicious && !o.force) {
            std::printf("refusing to move %zu of %zu Maildirs to the attic: the directory lists %zu users. "
                        "Check deliver_user_filter and deliver_search_base, or use --force.\n",
                        orphans.size(), found.size(), users->size());
            std::fflush(stdout);
            co_return 1;
        }
        char stamp[32];
        std::time_t now = std::time(nullptr);
        std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
        std::string attic = o.attic + "/" + stamp;
        auto attic_fd = make_directories(attic) ? maildir::open_root(attic) : maildir::Opened{};
        if (!attic_fd) {
            std::printf("error: cannot create the attic %s: %s\n", attic.c_str(), std::strerror(errno));
            co_return EX_IOERR;
        }
        Progress progress("reconcile: moving", orphans.size());
        for (std::size_t i = 0; i < orphans.size(); ++i) {
            progress.step(i + 1);
            auto parts = split_path(orphans[i]);
            std::string name = parts.back();
            parts.pop_back();
            auto from = maildir::open_below(root.fd.get(), parts, false, 0755, agent.store().root());
            auto to = maildir::open_below(attic_fd.fd.get(), parts, true, 0755, attic);
            if (!from || !to || ::renameat(from.fd.get(), name.c_str(), to.fd.get(), name.c_str()) != 0) {
                int e = !from ? from.error : !to ? to.error : errno;
                progress.finish();
                std::printf("error: cannot move %s/%s to %s: %s%s\n", agent.store().root().c_str(), orphans[i].c_str(),
                            attic.c_str(), std::strerror(e),
                            e == EXDEV ? " (the attic must be on the store's file system)" : "");
                errors.push_back(orphans[i]);
                continue;
            }
            ++moved;
        }
        progress.finish();
        std::printf("moved %zu Maildirs to %s\n", moved, attic.c_str());
    }
    std::printf("reconcile: %zu users, %zu Maildirs: %zu Maildirs without a directory entry%s, "
                "%zu users without a Maildir, %zu entries without a usable mailbox path, %zu errors\n",
                users->size(), found.size(), orphans.size(), o.remove ? (" (" + std::to_string(moved) +
                                                                          " moved)").c_str() : "",
                missing.size(), unusable, errors.size());
    std::fflush(stdout);
    if (!errors.empty()) co_return EX_IOERR;
    co_return orphans.empty() && missing.empty() && unusable == 0 ? EX_OK : 1;
}

}  // namespace mailgrid
