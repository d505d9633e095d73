#include "move.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "hold.hpp"
#include "cyrus_move.hpp"
#include "imap_session.hpp"
#include "log/log.hpp"
#include "util/strings.hpp"

namespace mailgrid::admin {

namespace {

using Clock = std::chrono::steady_clock;

const std::vector<std::string>& steps() {
    static const std::vector<std::string> s = {"planned", "hold", "copy", "flip", "sync", "release", "verify", "cleanup"};
    return s;
}

struct State {
    std::map<std::string, std::string> v;
    std::string path;
    std::string& operator[](const std::string& k) { return v[k]; }
    std::string get(const std::string& k) const {
        auto it = v.find(k);
        return it == v.end() ? std::string() : it->second;
    }

    bool load() {
        std::ifstream in(path);
        if (!in) return false;
        std::string line;
        while (std::getline(in, line)) {
            auto eq = line.find(" = ");
            if (eq != std::string::npos) v[line.substr(0, eq)] = line.substr(eq + 3);
        }
        return !v.empty();
    }
    // Written to a new file, fsync'd and renamed: a crash leaves the old
    // state or the new one.
    void save() const {
        std::string tmp = path + ".tmp";
        {
            std::ofstream out(tmp, std::ios::trunc);
            for (const auto& [k, val] : v) out << k << " = " << val << "\n";
            out.flush();
            if (!out) throw Failure(EX_CANTCREAT, tmp + ": " + std::strerror(errno));
        }
        int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ::fsync(fd);
            ::close(fd);
        }
        if (::rename(tmp.c_str(), path.c_str()) != 0) throw Failure(EX_CANTCREAT, path + ": " + std::strerror(errno));
    }
};

std::string state_path(const Admin& admin, const std::string& address) {
    return admin.config().get("admin_state_dir") + "/" + address;
}

// For tests of resumption: stop dead after a step, as a crash would.
void maybe_crash(const std::string& step) {
    const char* at = std::getenv("MAILGRID_MOVE_CRASH_AFTER");
    if (at && step == at) ::kill(::getpid(), SIGKILL);
}

class Progress {
public:
    Progress(bool on, std::string what, std::uint64_t total) : on_(on), what_(std::move(what)), total_(total) {}
    void update(std::uint64_t done, std::uint64_t files) {
        if (!on_) return;
        auto now = Clock::now();
        if (now - last_ < std::chrono::milliseconds(100) && done != total_) return;
        last_ = now;
        double pct = total_ ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0;
        int bar = static_cast<int>(pct / 5);
        std::fprintf(stderr, "\r%-8s [%-20s] %5.1f%%  %llu files, %.1f of %.1f MB", what_.c_str(),
                     std::string(static_cast<std::size_t>(bar), '#').c_str(), pct,
                     static_cast<unsigned long long>(files), static_cast<double>(done) / 1e6,
                     static_cast<double>(total_) / 1e6);
    }
    ~Progress() {
        if (on_) std::fprintf(stderr, "\n");
    }

private:
    bool on_;
    std::string what_;
    std::uint64_t total_;
    Clock::time_point last_{};
};

struct CopyStats {
    std::uint64_t files = 0, messages = 0, bytes = 0;
};

// Copies what is in from and not yet in to (messages matched by their
// unique name whatever their flags), then syncs and reads every copied
// file back against the checksum of what was read.
CopyStats copy_missing(const std::string& from, const std::string& to, bool show, const char* label) {
    std::string why;
    struct stat st {};
    if (::lstat(from.c_str(), &st) != 0) {
        if (errno == ENOENT) return {};  // nothing was ever delivered
        throw Failure(EX_IOERR, from + ": " + std::strerror(errno));
    }
    auto source = list_tree(from, &why);
    if (!why.empty()) throw Failure(EX_IOERR, why);
    auto present = list_tree(to, &why);
    std::set<std::string> have_messages, have_files;
    for (const auto& f : present) {
        have_files.insert(f.relative);
        if (is_message(f.relative)) have_messages.insert(message_key(f.relative));
    }
    std::vector<TreeFile> todo;
    std::uint64_t total = 0;
    for (const auto& f : source) {
        bool msg = is_message(f.relative);
        if (msg ? have_messages.count(message_key(f.relative)) > 0 : have_files.count(f.relative) > 0) continue;
        todo.push_back(f);
        total += f.size;
    }
    CopyStats s;
    std::vector<std::pair<std::string, std::string>> sums;  // destination, sha256
    {
        Progress bar(show && !todo.empty(), label, total);
        for (const auto& f : todo) {
            std::string sha;
            if (!copy_file(from + "/" + f.relative, to + "/" + f.relative, &sha, &why)) {
                if (errno == ENOENT) continue;  // the user's client moved it (new/ -> cur/): the next pass finds it
                throw Failure(EX_IOERR, "copy: " + why);
            }
            sums.emplace_back(to + "/" + f.relative, sha);
            ++s.files;
            if (is_message(f.relative)) ++s.messages;
            s.bytes += f.size;
            bar.update(s.bytes, s.files);
        }
    }
    if (sums.empty()) return s;
    if (!sync_filesystem(to, &why)) throw Failure(EX_IOERR, why);
    for (const auto& [path, sha] : sums) {
        std::string back;
        if (!file_sha256(path, &back, &why)) throw Failure(EX_IOERR, "verify: " + why);
        if (back != sha) throw Failure(EX_IOERR, "verify: " + path + ": checksum differs from the original");
    }
    return s;
}

std::set<std::string> message_keys(const std::string& path) {
    std::string why;
    std::set<std::string> out;
    for (const auto& f : list_tree(path, &why))
        if (is_message(f.relative)) out.insert(message_key(f.relative));
    return out;
}

}  // namespace

std::vector<std::string> pending_moves(const Admin& admin) {
    std::vector<std::string> out;
    std::string dir = admin.config().get("admin_state_dir");
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d)) {
            std::string n = e->d_name;
            if (n.find('@') != std::string::npos && n.find(".tmp") == std::string::npos &&
                n.find(".cyrus") == std::string::npos)
                out.push_back(n);
        }
        ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

MoveReport move_user(Admin& admin, const std::string& address_in, const std::string& to_in, bool show) {
    auto start = Clock::now();
    std::string address = admin.check_address(address_in);
    make_private_directories(admin.config().get("admin_state_dir"));
    State st;
    st.path = state_path(admin, address);
    MoveReport report;
    report.address = address;
    std::string why;

    if (st.load()) {
        if (!to_in.empty() && !admin.require_backend(to_in).named(st["to"]))
            throw Failure(EX_USAGE, "an unfinished move of " + address + " to " + st["to"] + " is recorded: run "
                                    "\"mailgrid user move " + address + "\" to finish it or add --abort");
        report.resumed = true;
        report.resumed_at = st["step"];
        log::info("%s: resuming the move to %s after step %s", address.c_str(), st["to"].c_str(), st["step"].c_str());
    } else {
        if (to_in.empty()) throw Failure(EX_USAGE, "no unfinished move of " + address + ": name the backend to move to");
        User u = admin.require_user(address);
        const Backend& to = admin.require_backend(to_in);
        if (!u.backend) throw Failure(EX_DATAERR, address + ": its maildrop names no configured backend");
        if (u.backend == &to) throw Failure(EX_USAGE, address + " is already on " + to.name);
        if (u.backend->kind != to.kind)
            throw Failure(EX_USAGE, "moves between a Maildir and a Cyrus backend are not supported (" +
                                        u.backend->name + " is " + u.backend->kind_name() + ", " + to.name + " is " +
                                        to.kind_name() + ")");
        if (!admin.backend_up(to, &why)) throw Failure(EX_UNAVAILABLE, "backend " + to.name + " is down: " + why);
        if (!admin.backend_up(*u.backend, &why))
            throw Failure(EX_UNAVAILABLE, "backend " + u.backend->name + " is down: " + why);
        st["address"] = address;
        st["dn"] = u.dn;
        st["from"] = u.backend->name;
        st["to"] = to.name;
        st["old_maildrop"] = u.maildrops.front();
        st["new_maildrop"] = admin.maildrop_for(address, to);
        std::string dest = admin.maildir_path(to, address);
        struct stat sb {};
        st["dest_existed"] = !dest.empty() && ::lstat(dest.c_str(), &sb) == 0 ? "yes" : "no";
        st["step"] = "planned";
        st.save();
    }
    const Backend& from = admin.require_backend(st["from"]);
    const Backend& to = admin.require_backend(st["to"]);
    report.from = from.name;
    report.to = to.name;
    std::string src = admin.maildir_path(from, address), dst = admin.maildir_path(to, address);
    std::vector<std::string> held = {st["old_maildrop"], st["new_maildrop"]};
    auto hold = HoldStore::open(admin.config(), &why);
    if (!hold) throw Failure(EX_CONFIG, why);
    auto settle = admin.config().get_duration("admin_hold_settle");
    auto wait = admin.config().get_duration("admin_hold_wait");

    auto done_index = std::find(steps().begin(), steps().end(), st["step"]) - steps().begin();
    for (std::size_t i = static_cast<std::size_t>(done_index) + 1; i < steps().size(); ++i) {
        const std::string& step = steps()[i];
        if (step == "hold") {
            std::uint64_t gen = 0;
            if (!hold->change(held, {}, &gen, &why)) throw Failure(EX_TEMPFAIL, "hold: " + why);
            if (!hold->wait_taken_up(gen, wait, &why)) throw Failure(EX_TEMPFAIL, "hold: " + why);
            std::this_thread::sleep_for(settle);
        } else if (step == "copy") {
            if (from.kind == Backend::Kind::Maildir) {
                admin.create_mailbox(to, address, 0);
                auto c = copy_missing(src, dst, show, "copying");
                report.files += c.files;
                report.messages += c.messages;
                report.bytes += c.bytes;
            } else {
                auto box = admin.cyrus_mailbox(address);
                if (st.get("source_messages").empty()) {
                    long n = cyrus_total(admin, from, box, &why);
                    if (n < 0) throw Failure(EX_UNAVAILABLE, from.name + ": " + why);
                    st["source_messages"] = std::to_string(n);
                    st.save();
                }
                auto c = cyrus_move(admin, from, to, box, st.path + ".cyrus", show);
                st["cyrus_method"] = c.method;
                report.bytes = c.bytes;
                report.messages = static_cast<std::uint64_t>(std::atol(st["source_messages"].c_str()));
            }
        } else if (step == "flip") {
            auto user = admin.find_user(address);
            if (!user) throw Failure(EX_NOUSER, address + " disappeared from the directory during the move");
            std::vector<Modification> mods;
            bool flipped = std::any_of(user->maildrops.begin(), user->maildrops.end(),
                                       [&](const auto& m) { return iequals(m, st["new_maildrop"]); });
            if (!flipped) mods.push_back({Modification::Op::Replace, "maildrop", {st["new_maildrop"]}});
            bool accepts_old = std::any_of(user->accepts.begin(), user->accepts.end(),
                                           [&](const auto& m) { return iequals(m, st["old_maildrop"]); });
            if (!accepts_old) mods.push_back({Modification::Op::Add, "mailacceptinggeneralid", {st["old_maildrop"]}});
            if (!mods.empty()) {
                auto w = admin.directory().modify(user->dn, mods);
                if (!w.ok()) Admin::fail_write(w);
            }
            std::vector<std::string> keys = user->accepts;
            keys.push_back(address);
            keys.insert(keys.end(), held.begin(), held.end());
            if (!hold->purge_cached(keys, &why)) throw Failure(EX_TEMPFAIL, "purging cached lookups: " + why);
            std::uint64_t gen = 0;  // a new generation empties every frontend's own cache
            if (!hold->change({}, {}, &gen, &why) || !hold->wait_taken_up(gen, wait, &why))
                throw Failure(EX_TEMPFAIL, "purging cached lookups: " + why);
        } else if (step == "sync") {
            if (from.kind == Backend::Kind::Maildir) {
                auto c = copy_missing(src, dst, show, "syncing");
                report.files += c.files;
                report.messages += c.messages;
                report.bytes += c.bytes;
            }
        } else if (step == "release") {
            std::uint64_t gen = 0;
            if (!hold->change({}, held, &gen, &why)) throw Failure(EX_TEMPFAIL, "release: " + why);
            if (!hold->wait_taken_up(gen, wait, &why))
                log::warning("%s: released, but %s", address.c_str(), why.c_str());
        } else if (step == "verify") {
            if (from.kind == Backend::Kind::Maildir) {
                auto old_keys = message_keys(src);
                auto new_keys = message_keys(dst);
                std::size_t missing = 0;
                for (const auto& k : old_keys) missing += new_keys.count(k) ? 0 : 1;
                if (missing)
                    throw Failure(EX_IOERR, std::to_string(missing) + " message(s) of " + src + " are not in " + dst +
                                                "; the old copy is kept; run the move again to copy them");
                report.messages = old_keys.size();
            } else {
                auto box = admin.cyrus_mailbox(address);
                long before = std::atol(st["source_messages"].c_str());
                long n = cyrus_total(admin, to, box, &why);
                if (n < 0) throw Failure(EX_UNAVAILABLE, to.name + ": " + why);
                if (n < before)
                    throw Failure(EX_IOERR, to.name + ": " + box + " has " + std::to_string(n) + " messages, " +
                                                std::to_string(before) + " were moved");
                report.messages = static_cast<std::uint64_t>(n);
            }
        } else if (step == "cleanup") {
            if (from.kind == Backend::Kind::Maildir && !remove_tree(src, &why))
                throw Failure(EX_IOERR, "removing the old copy: " + why);
            if (from.kind == Backend::Kind::Cyrus && !remove_tree(st.path + ".cyrus", &why))
                throw Failure(EX_IOERR, "removing the exported copy: " + why);
        }
        st["step"] = step;
        st.save();
        log::info("%s: move %s -> %s: %s done", address.c_str(), from.name.c_str(), to.name.c_str(), step.c_str());
        maybe_crash(step);
    }
    if (from.kind == Backend::Kind::Maildir) {
        auto s = maildir_stats(dst);
        report.messages = s.messages;
        if (!report.bytes) report.bytes = s.bytes;
    }
    ::unlink(st.path.c_str());
    report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    log::info("%s: moved from %s to %s: %llu messages, %llu bytes, %.1f s", address.c_str(), from.name.c_str(),
              to.name.c_str(), static_cast<unsigned long long>(report.messages),
              static_cast<unsigned long long>(report.bytes), report.seconds);
    return report;
}

void abort_move(Admin& admin, const std::string& address_in) {
    std::string address = admin.check_address(address_in);
    State st;
    st.path = state_path(admin, address);
    if (!st.load()) throw Failure(EX_USAGE, "no unfinished move of " + address);
    auto idx = std::find(steps().begin(), steps().end(), st["step"]) - steps().begin();
    auto flip = std::find(steps().begin(), steps().end(), "flip") - steps().begin();
    if (idx >= flip)
        throw Failure(EX_USAGE, "the move of " + address + " has switched the directory to " + st["to"] +
                                    ": it can only be finished (mailgrid user move " + address + ")");
    std::string why;
    const Backend& target = admin.require_backend(st["to"]);
    if (target.kind == Backend::Kind::Cyrus) {
        // Past the hold the old mailbox may already be gone (XFER, or
        // deleted after its export): only finishing is safe then.
        struct stat sb {};
        bool started = idx > 1 || ::stat((st.path + ".cyrus").c_str(), &sb) == 0 ||
                       cyrus_total(admin, target, admin.cyrus_mailbox(address), &why) != 0;
        if (started)
            throw Failure(EX_USAGE, "the mailbox of " + address + " is on its way to " + st["to"] +
                                        ": the move can only be finished (mailgrid user move " + address + ")");
    }
    auto hold = HoldStore::open(admin.config(), &why);
    if (!hold) throw Failure(EX_CONFIG, why);
    std::uint64_t gen = 0;
    if (!hold->change({}, {st["old_maildrop"], st["new_maildrop"]}, &gen, &why))
        throw Failure(EX_TEMPFAIL, "release: " + why);
    const Backend& to = admin.require_backend(st["to"]);
    if (to.kind == Backend::Kind::Maildir && st["dest_existed"] == "no") {
        std::string dst = admin.maildir_path(to, address);
        if (!remove_tree(dst, &why)) throw Failure(EX_IOERR, "removing the new copy: " + why);
    }
    ::unlink(st.path.c_str());
    log::info("%s: move to %s aborted", address.c_str(), st["to"].c_str());
}

}  // namespace mailgrid::admin
