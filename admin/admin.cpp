#include "admin.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <sstream>

#include "auth/password.hpp"
#include "config/suite_ldap.hpp"
#include "directory/escape.hpp"
#include "imap_session.hpp"
#include "log/log.hpp"
#include "mail/maildir.hpp"
#include "util/strings.hpp"

namespace mailgrid::admin {

const std::vector<ParamSpec>& admin_params() {
    static const std::vector<ParamSpec> specs = [] {
        std::vector<ParamSpec> s = {
            {"admin_user_dn", "uid=%u,ou=people,${admin_search_base}", "DN of a new user's entry (%s %u %d of the address)"},
            {"admin_user_filter", "(mail=%s)", "finds a user's entry by address"},
            {"admin_object_classes", "inetOrgPerson, mailSuiteRecipient", "object classes of a new user's entry"},
            {"admin_maildrop", "%u@%b", "maildrop of a user: %u %d %s of the address, %b the backend's name"},
            {"admin_backends", "",
             "the backends: name=maildir:/store/root or name=cyrus:host[:port], the name as in maildrop (md01.example.com)"},
            {"admin_backend_weights", "", "weighted placement: name=weight, ... (default 1)"},
            {"admin_backend_capacity", "", "bytes a backend may hold: name=500G, ... (most_free placement)"},
            {"admin_placement", "fewest_users", "where new users go: fewest_users, most_free or weighted"},
            {"admin_password_scheme", "SSHA512", "how passwords are stored: SSHA512 or ARGON2"},
            {"admin_default_quota", "0", "quota of new users (bytes, K/M/G); 0 = none"},
            {"admin_maildir_hash", "classic", "directory hashing of Maildir backends (as deliver_hash)"},
            {"admin_maildir_fold_case", "yes", "lower-case the user part of Maildir paths (as deliver_fold_case)"},
            {"admin_cyrus_admin", "cyrus", "Cyrus administrator (admins in imapd.conf) the command logs in as"},
            {"admin_cyrus_password", "", "its password (better: admin_cyrus_password_file)"},
            {"admin_cyrus_password_file", "", "file holding that password"},
            {"admin_cyrus_mailbox", "user.%u", "a user's Cyrus mailbox (%u %d %s of the address)"},
            {"admin_backend_timeout", "30s", "deadline of each backend (IMAP) operation"},
            {"admin_attic_days", "30", "days a removed user's mail stays in the attic"},
            {"admin_state_dir", "/var/lib/mailgrid/moves", "where unfinished moves are recorded"},
            {"admin_hold_settle", "2s", "wait after every frontend holds a user's mail, for deliveries in flight"},
            {"admin_hold_wait", "30s", "how long a move waits for the frontends to take up a hold"},
            {"admin_import_window", "64", "directory adds in flight during an import"},
        };
        static std::deque<std::string> names, helps;
        for (const auto& key : suite_ldap_keys()) {
            if (key == "query_filter" || key == "domain" || key == "scope") continue;
            names.push_back("admin_" + key);
            helps.push_back("the directory written to: as " + key + " in ldap_table(5)" +
                            (key == "server_host" ? "; ldif:/path for the embedded LDIF file" : ""));
            const char* def = key == "version" ? "3" : key == "timeout" ? "10" : key == "bind" ? "yes" : "";
            s.push_back({names.back().c_str(), def, helps.back().c_str()});
        }
        return s;
    }();
    return specs;
}

void make_private_directories(const std::string& path) {
    std::string partial;
    for (auto part : split(path, '/')) {
        if (part.empty()) continue;
        partial += "/" + std::string(part);
        if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
            throw Failure(EX_CANTCREAT, partial + ": " + std::strerror(errno));
    }
}

namespace {

std::string now_stamp() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    return buf;
}

std::string domain_of(std::string_view a) {
    auto at = a.rfind('@');
    return at == std::string_view::npos ? std::string() : std::string(a.substr(at + 1));
}

}  // namespace

std::vector<std::string> User::aliases() const {
    std::vector<std::string> out;
    for (const auto& a : accepts) {
        if (iequals(a, address)) continue;
        // Moves keep the old maildrop as an accepted address (for mail
        // queued with it); those are not aliases a user chose.
        bool old_drop = false;
        for (const auto& m : maildrops) old_drop |= iequals(m, a);
        for (const auto& m : former_maildrops) old_drop |= iequals(m, a);
        if (!old_drop) out.push_back(a);
    }
    return out;
}

Admin::Admin(const SuiteConfig& config) : config_(config) {
    backends_ = parse_backends(config_);
    if (config_.get("admin_server_host").empty())
        config_.fail("admin_server_host", "not set: the directory to write to (ldap://... or ldif:/path)");
    directory_config_ = ldap_query_from_suite(config_, "admin_");
    std::string why;
    auto layout = maildir::Layout::parse(config_.get("admin_maildir_hash"), &why);
    if (!layout) config_.fail("admin_maildir_hash", why);
    layout_ = std::make_unique<MaildirLayout>(*layout, config_.get_bool("admin_maildir_fold_case"));
    try {
        user_filter_ctx_.add_template(config_.get("admin_user_filter"), true);
        user_dn_ctx_.add_template(config_.get("admin_user_dn"), true);
    } catch (const std::invalid_argument& e) {
        throw ConfigError(std::string("admin_user_filter/admin_user_dn: ") + e.what());
    }
    auto scheme = to_lower(config_.get("admin_password_scheme"));
    if (scheme != "ssha512" && scheme != "argon2")
        config_.fail("admin_password_scheme", "expected SSHA512 or ARGON2");
    auto placement = config_.get("admin_placement");
    if (placement != "fewest_users" && placement != "most_free" && placement != "weighted")
        config_.fail("admin_placement", "expected fewest_users, most_free or weighted");
    if (!parse_size(config_.get("admin_default_quota"))) config_.fail("admin_default_quota", "not a size");
    (void)config_.get_duration("admin_backend_timeout");
    (void)config_.get_int("admin_attic_days", 0, 100000);
    (void)config_.get_int("admin_import_window", 1, 10000);
}

const Backend* Admin::backend(std::string_view name) const {
    for (const auto& b : backends_)
        if (b.named(name)) return &b;
    return nullptr;
}

const Backend& Admin::require_backend(std::string_view name) const {
    if (const Backend* b = backend(name)) return *b;
    std::string known;
    for (const auto& b : backends_) known += (known.empty() ? "" : ", ") + b.name;
    throw Failure(EX_USAGE, "unknown backend " + printable(name) + " (admin_backends: " +
                                (known.empty() ? "none" : known) + ")");
}

DirectoryWriter& Admin::directory() {
    if (writer_) return *writer_;
    std::string why;
    if (directory_config_.embedded) writer_ = open_ldif_writer(directory_config_.ldif_path, &why);
    else writer_ = open_ldap_writer(directory_config_.server, &why);
    if (!writer_) throw Failure(EX_TEMPFAIL, "directory unavailable: " + why);
    return *writer_;
}

std::string Admin::check_address(std::string_view address) const {
    std::string a = to_lower(trim(address));
    auto at = a.rfind('@');
    if (at == std::string::npos || at == 0 || at + 1 == a.size() || a.find('@') != at)
        throw Failure(EX_DATAERR, "invalid address " + printable(address) + ": expected user@domain");
    for (unsigned char c : a)
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '\\' || c == '"' || c == ',' || c == '(' || c == ')' ||
            c == '<' || c == '>' || c == ';' || c == ':' || c == '[' || c == ']')
            throw Failure(EX_DATAERR, "invalid address " + printable(address) + ": character not allowed");
    auto domain = std::string_view(a).substr(at + 1);
    if (domain.front() == '.' || domain.back() == '.' || domain.find("..") != std::string_view::npos ||
        domain.find('.') == std::string_view::npos)
        throw Failure(EX_DATAERR, "invalid address " + printable(address) + ": bad domain");
    std::string why;
    if (!layout_->components(a, &why)) throw Failure(EX_DATAERR, "invalid address " + printable(address) + ": " + why);
    return a;
}

std::string Admin::expand(const std::string& param, std::string_view address, Quote quote) const {
    const auto& ctx = param == "admin_user_dn" ? user_dn_ctx_ : user_filter_ctx_;
    auto v = ctx.expand_query(config_.get(param), address, quote);
    if (!v) throw Failure(EX_DATAERR, param + " cannot be filled in for " + printable(address));
    return *v;
}

std::string Admin::backend_of_maildrop(std::string_view maildrop) const {
    auto d = domain_of(maildrop);
    const Backend* b = backend(d);
    return b ? b->name : std::string();
}

User Admin::user_from_entry(const Entry& e) const {
    User u;
    u.dn = e.dn;
    u.address = to_lower(e.first("mail"));
    u.name = e.first("cn");
    if (auto v = e.values("mailacceptinggeneralid")) u.accepts = *v;
    if (auto v = e.values("maildrop")) u.maildrops = *v;
    for (const auto& a : u.accepts)
        if (backend(domain_of(a))) u.former_maildrops.push_back(a);
    if (auto q = parse_int(e.first("mailQuotaBytes")); q && *q > 0) u.quota = static_cast<std::uint64_t>(*q);
    auto pw = e.first("userPassword");
    u.has_password = !pw.empty();
    if (u.has_password) u.password_scheme = password_scheme(pw);
    if (!u.maildrops.empty()) u.backend = backend(domain_of(u.maildrops.front()));
    return u;
}

std::optional<User> Admin::find_user(std::string_view address) {
    std::string a = check_address(address);
    auto r = directory().search(config_.get("admin_search_base"), expand("admin_user_filter", a, Quote::Filter), {});
    if (r.code == SearchResult::Code::TempFail) throw Failure(EX_TEMPFAIL, "directory: " + r.error);
    if (r.entries.empty()) return std::nullopt;
    if (r.entries.size() > 1)
        throw Failure(EX_DATAERR, a + ": " + std::to_string(r.entries.size()) + " entries match admin_user_filter");
    return user_from_entry(r.entries.front());
}

User Admin::require_user(std::string_view address) {
    auto u = find_user(address);
    if (!u) throw Failure(EX_NOUSER, "no such user: " + printable(address));
    return *u;
}

std::vector<User> Admin::list_users(const std::string& backend_filter) {
    const Backend* only = backend_filter.empty() ? nullptr : &require_backend(backend_filter);
    std::string filter = "(&(mail=*)(maildrop=*))";
    auto r = directory().search(config_.get("admin_search_base"), filter,
                                {"mail", "cn", "mailacceptinggeneralid", "maildrop", "mailQuotaBytes", "userPassword"});
    if (r.code == SearchResult::Code::TempFail) throw Failure(EX_TEMPFAIL, "directory: " + r.error);
    std::vector<User> out;
    for (const auto& e : r.entries) {
        auto u = user_from_entry(e);
        if (only && u.backend != only) continue;
        out.push_back(std::move(u));
    }
    std::sort(out.begin(), out.end(), [](const User& a, const User& b) { return a.address < b.address; });
    return out;
}

std::optional<std::string> Admin::address_owner(std::string_view address) {
    std::string f = "(|(mail=" + filter_escape(address) + ")(mailacceptinggeneralid=" + filter_escape(address) + "))";
    auto r = directory().search(config_.get("admin_search_base"), f, {"mail"});
    if (r.code == SearchResult::Code::TempFail) throw Failure(EX_TEMPFAIL, "directory: " + r.error);
    if (r.entries.empty()) return std::nullopt;
    return r.entries.front().dn;
}

std::map<std::string, BackendUsage> Admin::usage() {
    std::map<std::string, BackendUsage> out;
    for (const auto& b : backends_) {
        auto& u = out[b.name];
        u.capacity = b.capacity;
        if (b.kind == Backend::Kind::Maildir && !u.capacity) {
            struct statvfs vfs {};
            if (::statvfs(b.root.c_str(), &vfs) == 0) u.capacity = static_cast<std::uint64_t>(vfs.f_blocks) * vfs.f_frsize;
        }
    }
    auto r = directory().search(config_.get("admin_search_base"), "(maildrop=*)", {"maildrop", "mailQuotaBytes", "mail"});
    if (r.code == SearchResult::Code::TempFail) throw Failure(EX_TEMPFAIL, "directory: " + r.error);
    for (const auto& e : r.entries) {
        if (e.first("mail").empty()) continue;  // aliases and lists are not users
        auto name = backend_of_maildrop(e.first("maildrop"));
        if (name.empty()) continue;
        auto& u = out[name];
        ++u.users;
        if (auto q = parse_int(e.first("mailQuotaBytes")); q && *q > 0) u.quota_allocated += static_cast<std::uint64_t>(*q);
    }
    return out;
}

bool Admin::backend_up(const Backend& b, std::string* why) {
    if (b.kind == Backend::Kind::Maildir) {
        auto root = maildir::open_root(b.root);
        if (!root) {
            *why = root.why;
            return false;
        }
        if (::faccessat(root.fd.get(), ".", W_OK, AT_EACCESS) != 0) {
            *why = b.root + ": " + std::strerror(errno);
            return false;
        }
        return true;
    }
    ImapSession s;
    return s.open(b.imap_host, b.imap_port, cyrus_admin(), cyrus_password(), config_.get_duration("admin_backend_timeout"), why);
}

Placement Admin::place(const std::string& requested, const std::map<std::string, BackendUsage>& usage) const {
    Placement p;
    if (!requested.empty()) {
        p.backend = &require_backend(requested);
        p.why = "asked for";
        return p;
    }
    auto policy = config_.get("admin_placement");
    double best = 0;
    for (const auto& b : backends_) {
        auto it = usage.find(b.name);
        BackendUsage u = it == usage.end() ? BackendUsage{} : it->second;
        if (!u.up) continue;
        double score;  // higher is better
        std::string why;
        char buf[160];
        if (policy == "most_free") {
            double free = static_cast<double>(u.capacity) - static_cast<double>(u.quota_allocated);
            score = free;
            std::snprintf(buf, sizeof buf, "most free quota space: %.1f GB of %.1f GB not allotted", free / 1e9,
                          static_cast<double>(u.capacity) / 1e9);
        } else if (policy == "weighted") {
            score = -static_cast<double>(u.users) / b.weight;
            std::snprintf(buf, sizeof buf, "fewest users per weight: %llu users, weight %g",
                          static_cast<unsigned long long>(u.users), b.weight);
        } else {
            score = -static_cast<double>(u.users);
            std::snprintf(buf, sizeof buf, "fewest users: %llu", static_cast<unsigned long long>(u.users));
        }
        if (!p.backend || score > best) {
            p.backend = &b;
            p.why = buf;
            best = score;
        }
    }
    if (!p.backend) throw Failure(EX_UNAVAILABLE, backends_.empty() ? "no backends configured (admin_backends)"
                                                                     : "no backend is available");
    return p;
}

std::string Admin::maildrop_for(std::string_view address, const Backend& b) const {
    std::string tmpl = config_.get("admin_maildrop");
    auto at = address.rfind('@');
    std::string user(address.substr(0, at)), domain(address.substr(at + 1));
    std::string out;
    for (std::size_t i = 0; i < tmpl.size(); ++i) {
        if (tmpl[i] != '%' || i + 1 == tmpl.size()) {
            out += tmpl[i];
            continue;
        }
        switch (tmpl[++i]) {
            case 'u': out += user; break;
            case 'd': out += domain; break;
            case 's': out += address; break;
            case 'b': out += b.name; break;
            case '%': out += '%'; break;
            default: config_.fail("admin_maildrop", std::string("unknown %-code %") + tmpl[i]);
        }
    }
    return out;
}

std::string Admin::hash_password(std::string_view password) const {
    return to_lower(config_.get("admin_password_scheme")) == "argon2" ? hash_argon2(password) : hash_ssha512(password);
}

Entry Admin::make_entry(const NewUser& u, const Backend& b) const {
    Entry e;
    e.dn = expand("admin_user_dn", u.address, Quote::Dn);
    auto at = u.address.rfind('@');
    std::string local = u.address.substr(0, at);
    e.get_or_add("objectClass").values = config_.get_list("admin_object_classes");
    // The RDN's value must be in the entry too.
    auto eq = e.dn.find('=');
    auto comma = e.dn.find(',');
    if (eq != std::string::npos && comma != std::string::npos && eq < comma) {
        std::string rdn_attr = e.dn.substr(0, eq);
        if (!iequals(rdn_attr, "mail") && !iequals(rdn_attr, "cn")) e.get_or_add(rdn_attr).values.push_back(local);
    }
    e.get_or_add("cn").values.push_back(u.name.empty() ? local : u.name);
    e.get_or_add("sn").values.push_back(u.name.empty() ? local : u.name.substr(u.name.rfind(' ') + 1));
    e.get_or_add("mail").values.push_back(u.address);
    auto& accepts = e.get_or_add("mailacceptinggeneralid").values;
    accepts.push_back(u.address);
    for (const auto& a : u.aliases) accepts.push_back(a);
    e.get_or_add("maildrop").values.push_back(maildrop_for(u.address, b));
    std::uint64_t quota = u.quota ? *u.quota : *parse_size(config_.get("admin_default_quota"));
    if (quota) e.get_or_add("mailQuotaBytes").values.push_back(std::to_string(quota));
    if (u.password_hash) e.get_or_add("userPassword").values.push_back(*u.password_hash);
    else if (u.password) e.get_or_add("userPassword").values.push_back(hash_password(*u.password));
    return e;
}

std::string Admin::maildir_path(const Backend& b, std::string_view address) const {
    return b.kind == Backend::Kind::Maildir ? layout_->path(b, address) : std::string();
}

std::string Admin::cyrus_mailbox(std::string_view address) const {
    std::string tmpl = config_.get("admin_cyrus_mailbox");
    auto at = address.rfind('@');
    std::string out;
    for (std::size_t i = 0; i < tmpl.size(); ++i) {
        if (tmpl[i] == '%' && i + 1 < tmpl.size()) {
            char c = tmpl[++i];
            if (c == 'u') out += address.substr(0, at);
            else if (c == 'd') out += address.substr(at + 1);
            else if (c == 's') out += address;
            else out += c;
        } else {
            out += tmpl[i];
        }
    }
    return out;
}

std::string Admin::cyrus_password() const {
    auto file = config_.get("admin_cyrus_password_file");
    if (file.empty()) return config_.get("admin_cyrus_password");
    std::ifstream in(file);
    if (!in) throw Failure(EX_CONFIG, "admin_cyrus_password_file: " + file + ": " + std::strerror(errno));
    std::string line;
    std::getline(in, line);
    return std::string(trim(line));
}

void Admin::create_mailbox(const Backend& b, std::string_view address, std::uint64_t quota) {
    std::string why;
    if (b.kind == Backend::Kind::Maildir) {
        auto comps = layout_->components(address, &why);
        if (!comps) throw Failure(EX_DATAERR, why);
        maildirsize::Limit limit;
        limit.bytes = quota;
        if (!create_maildir(b, *comps, limit, &why)) throw Failure(EX_CANTCREAT, b.name + ": " + why);
        return;
    }
    ImapSession s;
    if (!s.open(b.imap_host, b.imap_port, cyrus_admin(), cyrus_password(), config_.get_duration("admin_backend_timeout"), &why))
        throw Failure(EX_UNAVAILABLE, b.name + ": " + why);
    auto box = cyrus_mailbox(address);
    auto r = s.run("CREATE", {box});
    if (!r.ok && r.text.find("already exists") == std::string::npos)
        throw Failure(r.failed_io ? EX_UNAVAILABLE : EX_CANTCREAT, b.name + ": CREATE " + box + ": " + r.text);
    if (quota) {
        // SETQUOTA counts storage in KiB (RFC 2087).
        auto q = s.run("SETQUOTA", {box}, "(STORAGE " + std::to_string((quota + 1023) / 1024) + ")");
        if (!q.ok) {
            s.run("SETACL", {box, cyrus_admin(), "lrswipkxtecda"});
            s.run("DELETE", {box});
            throw Failure(EX_CANTCREAT, b.name + ": SETQUOTA " + box + ": " + q.text + " (mailbox removed)");
        }
    }
}

void Admin::fail_write(const WriteResult& r) {
    switch (r.code) {
        case WriteResult::Code::Ok: throw Failure(EX_SOFTWARE, "fail_write called for a success");
        case WriteResult::Code::AlreadyExists: throw Failure(EX_CANTCREAT, r.error);
        case WriteResult::Code::NoSuchObject: throw Failure(EX_NOUSER, r.error);
        case WriteResult::Code::Denied: throw Failure(EX_NOPERM, "directory write denied: " + r.error);
        case WriteResult::Code::Invalid: throw Failure(EX_DATAERR, r.error);
        case WriteResult::Code::TempFail: throw Failure(EX_TEMPFAIL, "directory: " + r.error);
    }
    throw Failure(EX_SOFTWARE, r.error);
}

User Admin::add_user(const NewUser& in, bool dry_run, Placement* placed) {
    NewUser u = in;
    u.address = check_address(in.address);
    for (auto& a : u.aliases) a = check_address(a);
    if (auto owner = address_owner(u.address)) throw Failure(EX_CANTCREAT, u.address + " exists: " + *owner);
    for (const auto& a : u.aliases)
        if (auto owner = address_owner(a)) throw Failure(EX_CANTCREAT, "alias " + a + " is taken: " + *owner);
    auto use = usage();
    std::string why;
    if (in.backend.empty()) {
        for (const auto& b : backends_)
            if (!backend_up(b, &why)) {
                use[b.name].up = false;
                use[b.name].why_down = why;
            }
    }
    Placement p = place(in.backend, use);
    if (placed) *placed = p;
    Entry e = make_entry(u, *p.backend);
    if (dry_run) return user_from_entry(e);
    if (!backend_up(*p.backend, &why)) throw Failure(EX_UNAVAILABLE, "backend " + p.backend->name + " is down: " + why);
    auto drop = e.first("maildrop");
    auto taken = directory().search(config_.get("admin_search_base"), "(maildrop=" + filter_escape(drop) + ")", {"mail"});
    if (taken.code == SearchResult::Code::TempFail) throw Failure(EX_TEMPFAIL, "directory: " + taken.error);
    if (!taken.entries.empty()) throw Failure(EX_CANTCREAT, "maildrop " + drop + " is taken: " + taken.entries.front().dn);
    auto w = directory().add(e);
    if (!w.ok()) fail_write(w);
    try {
        std::uint64_t quota = 0;
        if (auto q = parse_int(e.first("mailQuotaBytes"))) quota = static_cast<std::uint64_t>(*q);
        create_mailbox(*p.backend, u.address, quota);
    } catch (const Failure& f) {
        auto undo = directory().remove(e.dn);
        throw Failure(f.code(), f.what() + std::string(undo.ok() ? "; the directory entry was taken back"
                                                                 : "; taking back the entry failed too: " + undo.error));
    }
    log::info("user %s added on %s (%s)", u.address.c_str(), p.backend->name.c_str(), p.why.c_str());
    return user_from_entry(e);
}

std::size_t Admin::clean_attic(const Backend& b) {
    if (b.kind != Backend::Kind::Maildir) return 0;
    std::string attic = b.root + "/.attic";
    DIR* d = ::opendir(attic.c_str());
    if (!d) return 0;
    std::time_t cutoff = std::time(nullptr) - config_.get_int("admin_attic_days", 0, 100000) * 86400;
    std::vector<std::string> old;
    while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        struct stat st {};
        if (::fstatat(::dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_mtime < cutoff) old.push_back(n);
    }
    ::closedir(d);
    std::size_t removed = 0;
    std::string why;
    for (const auto& n : old)
        if (remove_tree(attic + "/" + n, &why)) ++removed;
    return removed;
}

std::string Admin::remove_user(std::string_view address, bool purge) {
    User u = require_user(address);
    auto w = directory().remove(u.dn);
    if (!w.ok()) fail_write(w);
    log::info("user %s removed from the directory (%s)", u.address.c_str(), u.dn.c_str());
    if (!u.backend) return "no backend: no mailbox touched";
    const Backend& b = *u.backend;
    std::string why;
    if (b.kind == Backend::Kind::Maildir) {
        std::string path = maildir_path(b, u.address);
        struct stat st {};
        if (path.empty() || ::lstat(path.c_str(), &st) != 0) return "no mailbox on " + b.name;
        if (purge) {
            if (!remove_tree(path, &why)) throw Failure(EX_IOERR, "removing the mailbox: " + why);
            clean_attic(b);
            return "mailbox deleted on " + b.name;
        }
        std::string attic = b.root + "/.attic";
        if (::mkdir(attic.c_str(), 0700) != 0 && errno != EEXIST) throw Failure(EX_IOERR, attic + ": " + std::strerror(errno));
        std::string dest = attic + "/" + now_stamp() + "-" + u.address;
        if (::rename(path.c_str(), dest.c_str()) != 0) throw Failure(EX_IOERR, "moving the mailbox to " + dest + ": " + std::strerror(errno));
        ::utimensat(AT_FDCWD, dest.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);
        clean_attic(b);
        return "mailbox kept in " + dest + " for " + config_.get("admin_attic_days") + " days";
    }
    ImapSession s;
    if (!s.open(b.imap_host, b.imap_port, cyrus_admin(), cyrus_password(), config_.get_duration("admin_backend_timeout"), &why))
        throw Failure(EX_UNAVAILABLE, "entry removed, but backend " + b.name + " is down: " + why);
    auto box = cyrus_mailbox(u.address);
    s.run("SETACL", {box, cyrus_admin(), "lrswipkxtecda"});
    auto r = s.run("DELETE", {box});
    if (!r.ok) throw Failure(EX_UNAVAILABLE, "entry removed, but DELETE " + box + " on " + b.name + ": " + r.text);
    return "mailbox " + box + " deleted on " + b.name + " (kept by Cyrus if delete_mode is delayed)";
}

void Admin::set_password(std::string_view address, std::string_view password) {
    User u = require_user(address);
    auto w = directory().modify(u.dn, {{Modification::Op::Replace, "userPassword", {hash_password(password)}}});
    if (!w.ok()) fail_write(w);
}

void Admin::set_quota(std::string_view address, std::uint64_t quota) {
    User u = require_user(address);
    Modification m{Modification::Op::Replace, "mailQuotaBytes", {}};
    if (quota) m.values.push_back(std::to_string(quota));
    else if (!u.quota) return;
    auto w = directory().modify(u.dn, {m});
    if (!w.ok()) fail_write(w);
    if (u.backend && u.backend->kind == Backend::Kind::Cyrus) {
        ImapSession s;
        std::string why;
        if (s.open(u.backend->imap_host, u.backend->imap_port, cyrus_admin(), cyrus_password(),
                   config_.get_duration("admin_backend_timeout"), &why)) {
            std::string limit = quota ? "(STORAGE " + std::to_string((quota + 1023) / 1024) + ")" : "()";
            auto q = s.run("SETQUOTA", {cyrus_mailbox(u.address)}, limit);
            if (!q.ok) throw Failure(EX_UNAVAILABLE, u.backend->name + ": SETQUOTA: " + q.text);
        }
    }
    // Maildir backends: maildir_deliver rewrites maildirsize with the
    // directory's limit on the next delivery.
}

void Admin::change_aliases(std::string_view address, const std::vector<std::string>& add,
                           const std::vector<std::string>& remove) {
    User u = require_user(address);
    std::vector<Modification> mods;
    for (const auto& a : add) {
        auto c = check_address(a);
        if (auto owner = address_owner(c)) throw Failure(EX_CANTCREAT, "alias " + c + " is taken: " + *owner);
        mods.push_back({Modification::Op::Add, "mailacceptinggeneralid", {c}});
    }
    for (const auto& a : remove) {
        auto c = check_address(a);
        if (iequals(c, u.address)) throw Failure(EX_USAGE, c + " is the user's own address, not an alias");
        bool has = std::any_of(u.accepts.begin(), u.accepts.end(), [&](const auto& x) { return iequals(x, c); });
        if (!has) throw Failure(EX_DATAERR, c + " is not an alias of " + u.address);
        mods.push_back({Modification::Op::Delete, "mailacceptinggeneralid", {c}});
    }
    if (mods.empty()) return;
    auto w = directory().modify(u.dn, mods);
    if (!w.ok()) fail_write(w);
}

}  // namespace mailgrid::admin
