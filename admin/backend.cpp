#include "backend.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mail/maildir.hpp"
#include "util/fd_io.hpp"
#include "util/strings.hpp"

namespace mailgrid::admin {

namespace {

std::string err(const std::string& what) { return what + ": " + std::strerror(errno); }

// Backend names compare case-insensitively (they are host names).
std::vector<std::pair<std::string, std::string>> pairs(const SuiteConfig& c, std::string_view param) {
    auto out = c.get_pairs(param);
    for (auto& p : out) p.first = to_lower(p.first);
    return out;
}

}  // namespace

bool Backend::named(std::string_view n) const {
    if (iequals(n, name)) return true;
    auto dot = name.find('.');
    return dot != std::string::npos && iequals(n, std::string_view(name).substr(0, dot));
}

std::vector<Backend> parse_backends(const SuiteConfig& c) {
    std::vector<Backend> out;
    for (auto& [name, spec] : pairs(c, "admin_backends")) {
        Backend b;
        b.name = name;
        if (auto problem = maildir::component_problem(name, "backend name")) c.fail("admin_backends", *problem);
        if (spec.rfind("maildir:", 0) == 0) {
            b.kind = Backend::Kind::Maildir;
            b.root = spec.substr(8);
            if (b.root.empty() || b.root.front() != '/')
                c.fail("admin_backends", name + ": maildir: needs an absolute path");
            while (b.root.size() > 1 && b.root.back() == '/') b.root.pop_back();
        } else if (spec.rfind("cyrus:", 0) == 0) {
            b.kind = Backend::Kind::Cyrus;
            std::string hp = spec.substr(6);
            if (hp.rfind("imap://", 0) == 0) hp = hp.substr(7);
            while (!hp.empty() && hp.back() == '/') hp.pop_back();
            auto colon = hp.rfind(':');
            b.imap_host = colon == std::string::npos ? hp : hp.substr(0, colon);
            if (colon != std::string::npos) {
                auto port = parse_int(hp.substr(colon + 1));
                if (!port || *port < 1 || *port > 65535) c.fail("admin_backends", name + ": bad IMAP port");
                b.imap_port = static_cast<std::uint16_t>(*port);
            }
            if (b.imap_host.empty()) c.fail("admin_backends", name + ": cyrus: needs host[:port]");
        } else {
            c.fail("admin_backends", name + ": expected maildir:/path or cyrus:host[:port], got \"" + spec + "\"");
        }
        for (const auto& other : out)
            if (other.name == b.name) c.fail("admin_backends", "backend " + name + " is listed twice");
        out.push_back(std::move(b));
    }
    auto find = [&](const std::string& param, const std::string& n) -> Backend& {
        for (auto& b : out)
            if (b.named(n)) return b;
        c.fail(param, "no such backend: " + n);
    };
    for (auto& [n, v] : pairs(c, "admin_backend_weights")) {
        char* end = nullptr;
        double w = std::strtod(v.c_str(), &end);
        if (!end || *end || !(w > 0) || w > 1e6) c.fail("admin_backend_weights", n + ": bad weight \"" + v + "\"");
        find("admin_backend_weights", n).weight = w;
    }
    for (auto& [n, v] : pairs(c, "admin_backend_capacity")) {
        auto size = parse_size(v);
        if (!size) c.fail("admin_backend_capacity", n + ": bad size \"" + v + "\"");
        find("admin_backend_capacity", n).capacity = *size;
    }
    return out;
}

std::optional<std::vector<std::string>> MaildirLayout::components(std::string_view address, std::string* why) const {
    auto at = address.rfind('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) {
        *why = "not user@domain: " + printable(address);
        return std::nullopt;
    }
    std::string user(address.substr(0, at));
    std::string domain = to_lower(address.substr(at + 1));
    if (fold_case_) user = to_lower(user);
    if (auto p = maildir::component_problem(user, "user")) {
        *why = *p;
        return std::nullopt;
    }
    if (auto p = maildir::component_problem(domain, "domain")) {
        *why = *p;
        return std::nullopt;
    }
    return maildir::mailbox_components(layout_, user, domain);
}

std::string MaildirLayout::path(const Backend& b, std::string_view address) const {
    std::string why;
    auto comps = components(address, &why);
    if (!comps) return {};
    std::string p = b.root;
    for (const auto& c : *comps) p += "/" + c;
    return p;
}

bool create_maildir(const Backend& b, const std::vector<std::string>& components, const maildirsize::Limit& limit,
                    std::string* why) {
    auto root = maildir::open_root(b.root);
    if (!root) {
        *why = root.why;
        return false;
    }
    struct stat rs {};
    if (::fstat(root.fd.get(), &rs) != 0) {
        *why = err(b.root);
        return false;
    }
    // Make each level, then hand what we made to the owner of the store
    // (the user maildir_deliver runs as): we are usually root.
    int dir = root.fd.get();
    maildir::Fd holder;
    std::string display = b.root;
    for (std::size_t i = 0; i < components.size(); ++i) {
        bool last = i + 1 == components.size();
        display += "/" + components[i];
        bool made = ::mkdirat(dir, components[i].c_str(), last ? 0700 : 0755) == 0;
        if (!made && errno != EEXIST) {
            *why = err(display);
            return false;
        }
        auto next = maildir::open_below(dir, {components[i]}, false, 0700, display);
        if (!next) {
            *why = next.why;
            return false;
        }
        if (made && ::geteuid() == 0 && rs.st_uid != 0) (void)::fchown(next.fd.get(), rs.st_uid, rs.st_gid);
        holder = std::move(next.fd);
        dir = holder.get();
    }
    int e = 0;
    if (!maildir::make_maildir(dir, false, &e)) {
        errno = e;
        *why = err(display + "/{tmp,new,cur}");
        return false;
    }
    if (!limit.unlimited() && !maildir::read_quota_file(dir).exists) {
        if (!maildir::recount(dir, limit, false, why)) return false;
    }
    if (::geteuid() == 0 && rs.st_uid != 0) {
        for (const char* sub : {"tmp", "new", "cur", "maildirsize"}) {
            if (::fchownat(dir, sub, rs.st_uid, rs.st_gid, AT_SYMLINK_NOFOLLOW) != 0 && errno != ENOENT) {
                *why = err(display + "/" + sub);
                return false;
            }
        }
    }
    return true;
}

bool maildir_exists(const Backend& b, const std::vector<std::string>& components) {
    auto root = maildir::open_root(b.root);
    if (!root) return false;
    auto m = maildir::open_below(root.fd.get(), components, false, 0700, b.root);
    return m && maildir::is_maildir(m.fd.get());
}

bool is_message(std::string_view relative) {
    auto slash = relative.rfind('/');
    if (slash == std::string_view::npos) return false;
    auto dir = relative.substr(0, slash);
    auto leaf = dir.substr(dir.rfind('/') == std::string_view::npos ? 0 : dir.rfind('/') + 1);
    return (leaf == "cur" || leaf == "new") && relative.size() > slash + 1 && relative[slash + 1] != '.';
}

std::string message_key(std::string_view relative) {
    auto slash = relative.rfind('/');
    auto dir = relative.substr(0, slash);
    auto parent = dir.rfind('/') == std::string_view::npos ? std::string_view() : dir.substr(0, dir.rfind('/'));
    auto name = relative.substr(slash + 1);
    auto colon = name.find(':');
    if (colon != std::string_view::npos) name = name.substr(0, colon);
    return std::string(parent) + "|" + std::string(name);
}

namespace {

bool walk(const std::string& base, const std::string& rel, std::vector<TreeFile>& out, std::string* why) {
    std::string dir = rel.empty() ? base : base + "/" + rel;
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
        *why = err(dir);
        return false;
    }
    bool ok = true;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        std::string r = rel.empty() ? n : rel + "/" + n;
        struct stat st {};
        if (::fstatat(::dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) continue;  // moved away (new/ -> cur/) while we looked
            *why = err(dir + "/" + n);
            ok = false;
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            if (n == "tmp") continue;  // deliveries in progress: never copied
            if (!walk(base, r, out, why)) {
                ok = false;
                break;
            }
        } else if (S_ISREG(st.st_mode)) {
            out.push_back({r, static_cast<std::uint64_t>(st.st_size)});
        }
    }
    ::closedir(d);
    return ok;
}

class Sha256 {
public:
    Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
    ~Sha256() { EVP_MD_CTX_free(ctx_); }
    void update(const char* p, std::size_t n) { EVP_DigestUpdate(ctx_, p, n); }
    std::string hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        EVP_DigestFinal_ex(ctx_, md, &len);
        static const char* digits = "0123456789abcdef";
        std::string out;
        for (unsigned i = 0; i < len; ++i) {
            out += digits[md[i] >> 4];
            out += digits[md[i] & 15];
        }
        return out;
    }

private:
    EVP_MD_CTX* ctx_;
};

bool make_parents(const std::string& path, const struct stat& like) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) return true;
    std::string parent = path.substr(0, slash);
    struct stat st {};
    if (::lstat(parent.c_str(), &st) == 0) return S_ISDIR(st.st_mode);
    if (!make_parents(parent, like)) return false;
    if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST) return false;
    if (::geteuid() == 0) (void)::lchown(parent.c_str(), like.st_uid, like.st_gid);
    return true;
}

}  // namespace

std::vector<TreeFile> list_tree(const std::string& path, std::string* why) {
    std::vector<TreeFile> out;
    if (!walk(path, "", out, why)) out.clear();
    return out;
}

MailboxStats maildir_stats(const std::string& path) {
    MailboxStats s;
    std::string why;
    for (const auto& f : list_tree(path, &why)) {
        ++s.files;
        if (!is_message(f.relative)) continue;
        ++s.messages;
        s.bytes += f.size;
    }
    return s;
}

bool copy_file(const std::string& from, const std::string& to, std::string* sha256, std::string* why) {
    int in = ::open(from.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0) {
        *why = err(from);
        return false;
    }
    struct stat st {};
    ::fstat(in, &st);
    if (!make_parents(to, st)) {
        *why = err(to);
        ::close(in);
        return false;
    }
    std::string tmp = to + ".mailgrid-copy";
    int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, st.st_mode & 0777);
    if (out < 0) {
        *why = err(tmp);
        ::close(in);
        return false;
    }
    Sha256 h;
    static thread_local std::string buf(1 << 20, '\0');
    bool ok = true;
    for (;;) {
        ssize_t n = ::read(in, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *why = err(from);
            ok = false;
            break;
        }
        if (n == 0) break;
        h.update(buf.data(), static_cast<std::size_t>(n));
        if (int e = 0; !write_all(out, std::string_view(buf.data(), static_cast<std::size_t>(n)), &e)) {
            errno = e;
            *why = err(tmp);
            ok = false;
            break;
        }
    }
    if (ok && ::geteuid() == 0) (void)::fchown(out, st.st_uid, st.st_gid);
    timespec times[2] = {st.st_atim, st.st_mtim};
    if (ok) ::futimens(out, times);
    ::close(in);
    if (::close(out) != 0 && ok) {
        *why = err(tmp);
        ok = false;
    }
    // link(2) never replaces: a file already at the destination (copied
    // before a crash) stays, and the caller compares checksums.
    if (ok && ::link(tmp.c_str(), to.c_str()) != 0 && errno != EEXIST) {
        *why = err(to);
        ok = false;
    }
    ::unlink(tmp.c_str());
    if (ok) *sha256 = h.hex();
    return ok;
}

bool file_sha256(const std::string& path, std::string* sha256, std::string* why) {
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        *why = err(path);
        return false;
    }
    Sha256 h;
    static thread_local std::string buf(1 << 20, '\0');
    for (;;) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            *why = err(path);
            ::close(fd);
            return false;
        }
        if (n == 0) break;
        h.update(buf.data(), static_cast<std::size_t>(n));
    }
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
    *sha256 = h.hex();
    return true;
}

bool sync_filesystem(const std::string& path, std::string* why) {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        *why = err(path);
        return false;
    }
    bool ok = ::syncfs(fd) == 0;
    if (!ok) *why = err("syncfs " + path);
    ::close(fd);
    if (ok) {
        std::string w;
        for (const auto& f : list_tree(path, &w)) {
            int ffd = ::open((path + "/" + f.relative).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (ffd < 0) continue;
            ::posix_fadvise(ffd, 0, 0, POSIX_FADV_DONTNEED);
            ::close(ffd);
        }
    }
    return ok;
}

bool remove_tree(const std::string& path, std::string* why) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT ? true : (*why = err(path), false);
    if (!S_ISDIR(st.st_mode)) {
        if (::unlink(path.c_str()) != 0) return *why = err(path), false;
        return true;
    }
    DIR* d = ::opendir(path.c_str());
    if (!d) return *why = err(path), false;
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    for (const auto& n : names)
        if (!remove_tree(path + "/" + n, why)) return false;
    if (::rmdir(path.c_str()) != 0) return *why = err(path), false;
    return true;
}

}  // namespace mailgrid::admin
