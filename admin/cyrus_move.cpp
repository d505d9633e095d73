#include "cyrus_move.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "imap_session.hpp"
#include "log/log.hpp"
#include "util/fd_io.hpp"
#include "util/strings.hpp"

namespace mailgrid::admin {

namespace {

class Session {
public:
    Session(Admin& admin, const Backend& b) : b_(b) {
        std::string why;
        if (!s_.open(b.imap_host, b.imap_port, admin.cyrus_admin(), admin.cyrus_password(),
                     admin.config().get_duration("admin_backend_timeout"), &why))
            throw Failure(EX_UNAVAILABLE, b.name + ": " + why);
    }
    ImapResult must(std::string_view cmd, const std::vector<std::string>& args, std::string_view list = {}) {
        auto r = s_.run(cmd, args, list);
        if (!r.ok) fail(cmd, args, r);
        for (const auto& u : r.untagged)
            if (u.tag == "*" && (u.status == "NO" || u.status == "BAD")) {
                r.ok = false;
                r.text = u.status + " " + u.text;
                fail(cmd, args, r);
            }
        return r;
    }
    ImapResult run(std::string_view cmd, const std::vector<std::string>& args, std::string_view list = {}) {
        return s_.run(cmd, args, list);
    }
    ImapSession& raw() { return s_; }
    [[noreturn]] void fail(std::string_view cmd, const std::vector<std::string>& args, const ImapResult& r) {
        throw Failure(r.failed_io ? EX_UNAVAILABLE : EX_TEMPFAIL,
                      b_.name + ": " + std::string(cmd) + (args.empty() ? "" : " " + args.front()) + ": " + r.text);
    }
    // The mailbox and its folders, parents first.
    std::vector<std::string> tree(const std::string& box) {
        std::vector<std::string> out;
        for (const std::string& pattern : {box, box + ".*"}) {
            auto r = must("LIST", {"", pattern});
            for (const auto& u : r.untagged) {
                if (u.text.rfind("LIST ", 0) != 0) continue;
                auto lits = imap::literals(u.raw);
                auto t = imap::tokens(std::string_view(u.text).substr(5));
                if (!lits.empty()) out.emplace_back(lits.back());
                else if (t.size() >= 3) out.push_back(t[2]);
            }
        }
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
        return out;
    }

private:
    const Backend& b_;
    ImapSession s_;
};

void write_durably(const std::string& path, std::string_view data) {
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw Failure(EX_CANTCREAT, tmp + ": " + std::strerror(errno));
    if (int e = 0; !write_all(fd, data, &e)) {
        ::close(fd);
        throw Failure(EX_IOERR, tmp + ": " + std::strerror(e));
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0)
        throw Failure(EX_IOERR, path + ": " + std::strerror(errno));
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

std::string hex(std::string_view s) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        out += d[c >> 4];
        out += d[c & 15];
    }
    return out;
}

long count_messages(Session& s, const std::string& box) {
    auto r = s.must("STATUS", {box}, "(MESSAGES)");
    for (const auto& u : r.untagged) {
        auto pos = u.text.find("MESSAGES ");
        if (pos != std::string::npos) return std::atol(u.text.c_str() + pos + 9);
    }
    return 0;
}

// Flags a message can be appended with (\Recent is the server's own).
std::string appendable_flags(const std::string& list) {
    std::string inner = list.size() >= 2 ? list.substr(1, list.size() - 2) : "";
    std::string out;
    for (const auto& f : split_list(inner))
        if (!iequals(f, "\\Recent")) out += (out.empty() ? "" : " ") + f;
    return out.empty() ? std::string() : "(" + out + ")";  // Cyrus refuses an empty list
}

}  // namespace

long cyrus_total(Admin& admin, const Backend& b, const std::string& mailbox, std::string* why) {
    try {
        Session s(admin, b);
        long total = 0;
        for (const auto& box : s.tree(mailbox)) total += count_messages(s, box);
        return total;
    } catch (const Failure& f) {
        *why = f.what();
        return -1;
    }
}

CyrusMoveResult cyrus_move(Admin& admin, const Backend& from, const Backend& to, const std::string& mailbox,
                           const std::string& work_dir, bool show) {
    CyrusMoveResult res;
    const std::string exported = work_dir + "/exported";
    Session src(admin, from);
    Session dst(admin, to);
    auto on_src = src.tree(mailbox);
    auto on_dst = dst.tree(mailbox);

    if (on_src.empty() && !on_dst.empty() && !exists(work_dir)) {  // an XFER finished before a crash
        res.method = "xfer";
        return res;
    }
    // The Murder's own way, unless an export is already under way.
    if (!on_src.empty() && on_dst.empty() && !exists(work_dir)) {
        auto r = src.run("XFER", {mailbox, to.name});
        bool refused = !r.ok;
        for (const auto& u : r.untagged) refused |= u.status == "NO" || u.status == "BAD";
        if (!refused && src.tree(mailbox).empty()) {
            res.method = "xfer";
            return res;
        }
        log::info("%s: XFER to %s did not move it (%s%s): copying over IMAP instead", mailbox.c_str(),
                  to.name.c_str(), r.text.c_str(),
                  r.untagged.empty() ? "" : ("; " + r.untagged.back().status + " " + r.untagged.back().text).c_str());
    }
    res.method = "copy";
    make_private_directories(work_dir);

    // 1. Export, unless done: boxes (ACLs, quota) and every message.
    if (!exists(exported)) {
        if (on_src.empty()) throw Failure(EX_NOINPUT, from.name + ": no mailbox " + mailbox + " to move");
        std::string manifest;
        std::string quota;
        auto qr = src.run("GETQUOTAROOT", {mailbox});
        for (const auto& u : qr.untagged) {
            auto pos = u.text.find("STORAGE ");
            if (u.text.rfind("QUOTA ", 0) == 0 && pos != std::string::npos) {
                auto t = imap::tokens(std::string_view(u.text).substr(pos + 8));
                if (t.size() >= 2) quota = t[1];
            }
        }
        std::size_t n = 0;
        for (const auto& box : on_src) {
            std::string dir = work_dir + "/" + hex(box);
            make_private_directories(dir);
            std::string acl;
            auto ar = src.must("GETACL", {box});
            for (const auto& u : ar.untagged)
                if (u.text.rfind("ACL ", 0) == 0) {
                    auto t = imap::tokens(std::string_view(u.text).substr(4));
                    for (std::size_t i = 1; i + 1 < t.size(); i += 2) acl += t[i] + " " + t[i + 1] + " ";
                }
            manifest += hex(box) + "\t" + acl + "\n";
            src.must("EXAMINE", {box});
            auto sr = src.must("UID", {"SEARCH", "ALL"});
            std::vector<std::string> uids;
            for (const auto& u : sr.untagged)
                if (u.text.rfind("SEARCH", 0) == 0)
                    for (const auto& t : split_list(u.text.substr(6))) uids.push_back(t);
            for (const auto& uid : uids) {
                std::string file = dir + "/" + uid;
                if (exists(file + ".eml")) continue;
                auto fr = src.must("UID", {"FETCH", uid}, "(FLAGS INTERNALDATE BODY.PEEK[])");
                for (const auto& u : fr.untagged) {
                    if (u.text.find("FETCH") == std::string::npos) continue;
                    auto lits = imap::literals(u.raw);
                    if (lits.empty()) continue;
                    std::string flags, date;
                    auto fp = u.text.find("FLAGS (");
                    if (fp != std::string::npos) flags = u.text.substr(fp + 6, u.text.find(')', fp) - fp - 5);
                    auto dp = u.text.find("INTERNALDATE \"");
                    if (dp != std::string::npos) date = u.text.substr(dp + 14, u.text.find('"', dp + 14) - dp - 14);
                    // " 4-Dec-2026 ..." as FETCH gives it; APPEND wants "04-Dec-2026 ...".
                    if (!date.empty() && date.front() == ' ') date.front() = '0';
                    write_durably(file + ".meta", appendable_flags(flags) + "\n" + date + "\n");
                    write_durably(file + ".eml", lits.front());
                    res.bytes += lits.front().size();
                }
                if (show && ++n % 100 == 0) std::fprintf(stderr, "\rexporting %zu messages", n);
            }
            if (show && n) std::fprintf(stderr, "\rexporting %zu messages\n", n);
            auto want = static_cast<std::size_t>(count_messages(src, box));
            std::size_t have = 0;
            for (const auto& uid : uids) have += exists(dir + "/" + uid + ".eml") ? 1 : 0;
            if (have != want || uids.size() != want)
                throw Failure(EX_TEMPFAIL, from.name + ": " + box + ": exported " + std::to_string(have) + " of " +
                                               std::to_string(want) + " messages");
            manifest += "#uids " + hex(box);
            for (const auto& uid : uids) manifest += " " + uid;
            manifest += "\n";
        }
        write_durably(work_dir + "/manifest", manifest + "#quota " + quota + "\n");
        write_durably(exported, "done\n");
    }

    // 2. The old mailboxes go (deepest first): the Murder forgets them.
    auto manifest = read_file(work_dir + "/manifest");
    std::vector<std::pair<std::string, std::string>> boxes;  // name, acl
    std::map<std::string, std::vector<std::string>> uids;
    std::string quota;
    for (auto line : split(manifest, '\n')) {
        if (line.rfind("#quota ", 0) == 0) {
            quota = std::string(trim(line.substr(7)));
        } else if (line.rfind("#uids ", 0) == 0) {
            auto t = split_list(line.substr(6));
            if (t.empty()) continue;
            uids[t.front()].assign(t.begin() + 1, t.end());
        } else if (auto tab = line.find('\t'); tab != std::string_view::npos) {
            std::string name;
            auto h = line.substr(0, tab);
            for (std::size_t i = 0; i + 1 < h.size(); i += 2) name += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
            boxes.emplace_back(name, std::string(line.substr(tab + 1)));
        }
    }
    on_src = src.tree(mailbox);
    for (auto it = on_src.rbegin(); it != on_src.rend(); ++it) {
        src.run("SETACL", {*it, admin.cyrus_admin(), "lrswipkxtecda"});
        src.must("DELETE", {*it});
    }

    // 3. The new ones, with their ACLs and quota, and every message.
    on_dst = dst.tree(mailbox);
    for (const auto& [box, acl] : boxes) {
        if (std::find(on_dst.begin(), on_dst.end(), box) == on_dst.end()) dst.must("CREATE", {box});
        auto t = split_list(acl);
        for (std::size_t i = 0; i + 1 < t.size(); i += 2) dst.must("SETACL", {box, t[i], t[i + 1]});
        dst.run("SETACL", {box, admin.cyrus_admin(), "lrswipkxtecda"});
    }
    if (!quota.empty()) dst.must("SETQUOTA", {mailbox}, "(STORAGE " + quota + ")");
    std::size_t n = 0;
    for (const auto& [box, acl] : boxes) {
        std::string dir = work_dir + "/" + hex(box);
        std::string log = dir + "/appended";
        std::set<std::string> done;
        const std::string logged = read_file(log);
        for (auto l : split(logged, '\n'))
            if (!l.empty()) done.insert(std::string(l));
        std::ofstream appended(log, std::ios::app);
        for (const auto& uid : uids[hex(box)]) {
            if (done.count(uid)) continue;
            const std::string meta_text = read_file(dir + "/" + uid + ".meta");
            auto meta = split(meta_text, '\n');
            std::string body = read_file(dir + "/" + uid + ".eml");
            auto r = dst.raw().append(box, meta.size() > 0 ? std::string(meta[0]) : "",
                                      meta.size() > 1 ? std::string(meta[1]) : "", body);
            if (!r.ok) dst.fail("APPEND", {box}, r);
            appended << uid << "\n" << std::flush;
            ++res.messages;
            if (show && ++n % 100 == 0) std::fprintf(stderr, "\rappending %zu messages", n);
        }
        // Our own rights were for the move only: back to what they were.
        std::string own;
        auto t = split_list(acl);
        for (std::size_t i = 0; i + 1 < t.size(); i += 2)
            if (t[i] == admin.cyrus_admin()) own = t[i + 1];
        if (own.empty()) dst.run("DELETEACL", {box, admin.cyrus_admin()});
        else dst.must("SETACL", {box, admin.cyrus_admin(), own});
        auto want = static_cast<long>(uids[hex(box)].size());
        if (count_messages(dst, box) < want)
            throw Failure(EX_TEMPFAIL, to.name + ": " + box + " has fewer messages than were exported");
    }
    if (show && n) std::fprintf(stderr, "\rappending %zu messages\n", n);
    return res;
}

}  // namespace mailgrid::admin
