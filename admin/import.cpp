#include "import.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "auth/password.hpp"
#include "directory/ldif.hpp"
#include "log/log.hpp"
#include "util/csv.hpp"
#include "util/strings.hpp"

namespace mailgrid::admin {

namespace {

using Clock = std::chrono::steady_clock;

struct Candidate {
    NewUser user;
    std::string origin;           // "line 12" / the DN
    std::optional<Entry> entry;   // LDIF: the entry as given
};

void progress(bool on, const char* what, std::size_t done, std::size_t total, Clock::time_point& last) {
    if (!on) return;
    auto now = Clock::now();
    if (now - last < std::chrono::milliseconds(100) && done != total) return;
    last = now;
    double pct = total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0;
    std::fprintf(stderr, "\r%-10s [%-20s] %5.1f%%  %zu of %zu", what,
                 std::string(static_cast<std::size_t>(pct / 5), '#').c_str(), pct, done, total);
    if (done == total) std::fprintf(stderr, "\n");
}

std::vector<Candidate> read_csv(const std::string& text, ImportReport& rep) {
    auto parsed = csv::parse(text);
    if (!parsed.error.empty()) rep.errors.push_back(parsed.error);
    std::vector<Candidate> out;
    if (parsed.records.empty()) return out;
    std::map<std::string, std::size_t> col;
    const auto& header = parsed.records.front().fields;
    static const std::set<std::string> known = {"address", "password", "password_hash", "quota",
                                                "backend", "name",     "aliases"};
    for (std::size_t i = 0; i < header.size(); ++i) {
        auto h = to_lower(trim(header[i]));
        if (!known.count(h)) throw Failure(EX_DATAERR, "line 1: unknown column \"" + printable(h) + "\"");
        col[h] = i;
    }
    if (!col.count("address")) throw Failure(EX_DATAERR, "line 1: the header must name an address column");
    for (std::size_t r = 1; r < parsed.records.size(); ++r) {
        const auto& rec = parsed.records[r];
        auto field = [&](const char* name) -> std::string {
            auto it = col.find(name);
            return it == col.end() || it->second >= rec.fields.size() ? std::string()
                                                                      : std::string(trim(rec.fields[it->second]));
        };
        Candidate c;
        c.origin = "line " + std::to_string(rec.line);
        c.user.address = field("address");
        c.user.name = field("name");
        c.user.backend = field("backend");
        if (auto p = field("password"); !p.empty()) c.user.password = p;
        if (auto h = field("password_hash"); !h.empty()) c.user.password_hash = h;
        if (auto q = field("quota"); !q.empty()) {
            auto size = parse_size(q);
            if (!size) {
                rep.errors.push_back(c.origin + ": bad quota \"" + printable(q) + "\"");
                ++rep.failed;
                continue;
            }
            c.user.quota = *size;
        }
        std::string aliases = field("aliases");
        for (auto& ch : aliases)
            if (ch == ';') ch = ' ';
        for (const auto& a : split_list(aliases)) c.user.aliases.push_back(a);
        out.push_back(std::move(c));
    }
    return out;
}

std::vector<Candidate> read_ldif(const std::string& text, const std::string& path, ImportReport& rep) {
    auto parsed = parse_ldif(text, path);
    for (const auto& e : parsed.errors) {
        rep.errors.push_back(e);
        ++rep.failed;
    }
    std::vector<Candidate> out;
    for (auto& e : parsed.entries) {
        Candidate c;
        c.origin = e.dn;
        c.user.address = e.first("mail");
        if (c.user.address.empty()) {
            ++rep.skipped;  // not an account (an organisational unit, a group ...)
            continue;
        }
        auto q = parse_int(e.first("mailQuotaBytes"));
        if (q && *q > 0) c.user.quota = static_cast<std::uint64_t>(*q);
        c.entry = std::move(e);
        out.push_back(std::move(c));
    }
    return out;
}

}  // namespace

ImportReport import_users(Admin& admin, const std::string& path, bool dry_run, bool show) {
    auto start = Clock::now();
    ImportReport rep;
    std::ifstream in(path);
    if (!in) throw Failure(EX_NOINPUT, path + ": " + std::strerror(errno));
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    bool ldif = path.size() > 5 && to_lower(path.substr(path.size() - 5)) == ".ldif";
    if (!ldif && text.rfind("dn:", 0) == 0) ldif = true;
    auto candidates = ldif ? read_ldif(text, path, rep) : read_csv(text, rep);
    rep.records = candidates.size() + rep.failed + rep.skipped;

    // Every address the directory already has, once, instead of a search
    // per user.
    std::set<std::string> taken;
    auto existing = admin.directory().search(admin.config().get("admin_search_base"),
                                             "(|(mail=*)(mailacceptinggeneralid=*))", {"mail", "mailacceptinggeneralid"});
    if (existing.code == SearchResult::Code::TempFail) throw Failure(EX_TEMPFAIL, "directory: " + existing.error);
    for (const auto& e : existing.entries) {
        for (const char* a : {"mail", "mailacceptinggeneralid"})
            if (auto v = e.values(a))
                for (const auto& x : *v) taken.insert(to_lower(x));
    }
    auto use = admin.usage();
    std::string why;
    for (const auto& b : admin.backends())
        if (!admin.backend_up(b, &why)) {
            use[b.name].up = false;
            use[b.name].why_down = why;
        }

    struct Planned {
        Entry entry;
        const Backend* backend;
        std::string address;
        std::uint64_t quota;
    };
    std::vector<Planned> plan;
    for (auto& c : candidates) {
        try {
            c.user.address = admin.check_address(c.user.address);
            for (auto& a : c.user.aliases) a = admin.check_address(a);
            bool clash = taken.count(c.user.address) > 0;
            for (const auto& a : c.user.aliases) clash |= taken.count(a) > 0;
            if (clash) throw Failure(EX_CANTCREAT, c.user.address + ": the address or an alias exists already");
            Placement p = admin.place(c.user.backend, use);
            if (!use[p.backend->name].up)
                throw Failure(EX_UNAVAILABLE, "backend " + p.backend->name + " is down: " + use[p.backend->name].why_down);
            Entry e;
            if (c.entry) {
                e = *c.entry;
                if (e.first("maildrop").empty()) e.get_or_add("maildrop").values.push_back(admin.maildrop_for(c.user.address, *p.backend));
                else if (const Backend* named = admin.backend(e.first("maildrop").substr(e.first("maildrop").rfind('@') + 1)))
                    p.backend = named;
                if (e.find("userPassword"))
                    for (auto& v : e.get_or_add("userPassword").values)
                        if (v.empty() || v.front() != '{') v = admin.hash_password(v);
            } else {
                e = admin.make_entry(c.user, *p.backend);
            }
            taken.insert(c.user.address);
            for (const auto& a : c.user.aliases) taken.insert(a);
            ++use[p.backend->name].users;
            if (c.user.quota) use[p.backend->name].quota_allocated += *c.user.quota;
            plan.push_back({std::move(e), p.backend, c.user.address, c.user.quota.value_or(0)});
        } catch (const Failure& f) {
            rep.errors.push_back(c.origin + ": " + f.what());
            ++rep.failed;
        }
    }
    if (dry_run) {
        for (const auto& p : plan) ++rep.per_backend[p.backend->name];
        rep.added = plan.size();
        rep.seconds = std::chrono::duration<double>(Clock::now() - start).count();
        return rep;
    }

    std::vector<Entry> entries;
    entries.reserve(plan.size());
    for (const auto& p : plan) entries.push_back(p.entry);
    std::vector<WriteResult> written(plan.size());
    // Each mailbox is made as soon as its entry is in: the Maildirs are
    // made while the directory is still writing the next entries.
    std::size_t done = 0;
    auto last = Clock::time_point{};
    std::vector<std::size_t> undo;
    admin.directory().add_many(entries, static_cast<int>(admin.config().get_int("admin_import_window", 1, 10000)),
                               [&](std::size_t i, const WriteResult& r) {
                                   progress(show, "importing", ++done, plan.size(), last);
                                   if (!r.ok()) {
                                       rep.errors.push_back(plan[i].address + ": " + r.error);
                                       ++rep.failed;
                                       return;
                                   }
                                   try {
                                       admin.create_mailbox(*plan[i].backend, plan[i].address, plan[i].quota);
                                       ++rep.added;
                                       ++rep.per_backend[plan[i].backend->name];
                                   } catch (const Failure& f) {
                                       rep.errors.push_back(plan[i].address + ": " + f.what());
                                       undo.push_back(i);
                                   }
                               });
    // Entries whose mailbox could not be made are taken back, once the
    // adds in flight are all answered.
    for (std::size_t i : undo) {
        auto r = admin.directory().remove(plan[i].entry.dn);
        rep.errors.push_back(plan[i].address + (r.ok() ? ": entry taken back" : ": taking back the entry failed: " + r.error));
        ++rep.failed;
    }
    rep.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    log::info("import of %s: %zu added, %zu failed, %.1f s", path.c_str(), rep.added, rep.failed, rep.seconds);
    return rep;
}

}  // namespace mailgrid::admin
