#include "directory/ldif_directory.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "auth/password.hpp"
#include "directory/dn.hpp"
#include "directory/ldif.hpp"
#include "directory/table_results.hpp"
#include "log/log.hpp"
#include "util/strings.hpp"

namespace mailgrid {

Entry project_entry(const Entry& e, const std::vector<std::string>& attributes) {
    Entry out;
    out.dn = e.dn;
    if (attributes.size() == 1 && attributes[0] == "1.1") return out;
    for (const auto& a : e.attributes) {
        bool wanted = attributes.empty();
        for (const auto& w : attributes)
            if (w == "*" || attribute_matches(w, a.name)) { wanted = true; break; }
        if (wanted) out.attributes.push_back(a);
    }
    return out;
}

std::shared_ptr<LdifSnapshot> LdifSnapshot::load(const std::string& path, std::vector<std::string>& errors) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    auto parsed = parse_ldif(ss.str(), path);
    errors = std::move(parsed.errors);
    return from_entries(std::move(parsed.entries), errors);
}

std::shared_ptr<LdifSnapshot> LdifSnapshot::from_entries(std::vector<Entry> entries, std::vector<std::string>& errors) {
    auto s = std::make_shared<LdifSnapshot>();
    s->entries_.reserve(entries.size());
    for (auto& e : entries) {
        auto n = normalize_dn(e.dn);
        if (!n) {
            errors.push_back("malformed DN: " + printable(e.dn, 100));
            continue;
        }
        if (s->by_dn_.count(*n)) {
            errors.push_back("duplicate entry: " + printable(e.dn, 100));
            continue;
        }
        s->by_dn_.emplace(*n, static_cast<std::uint32_t>(s->entries_.size()));
        s->norm_dns_.push_back(std::move(*n));
        s->entries_.push_back(std::move(e));
    }
    return s;
}

const Entry* LdifSnapshot::find_dn(std::string_view dn) const {
    auto n = normalize_dn(dn);
    if (!n) return nullptr;
    auto it = by_dn_.find(*n);
    return it == by_dn_.end() ? nullptr : &entries_[it->second];
}

std::optional<std::size_t> LdifSnapshot::position(const std::string& normalized_dn) const {
    auto it = by_dn_.find(normalized_dn);
    if (it == by_dn_.end()) return std::nullopt;
    return it->second;
}

std::vector<std::string> LdifSnapshot::indexed_attributes() const {
    std::vector<std::string> names;
    for (const auto& [attr, idx] : indexes_) names.push_back(attr);
    return names;
}

const std::unordered_map<std::string, std::vector<std::uint32_t>>& LdifSnapshot::index(const std::string& attr) const {
    auto it = indexes_.find(attr);
    if (it != indexes_.end()) return it->second;
    auto& idx = indexes_[attr];
    bool exact = case_exact_attribute(attr);
    for (std::uint32_t i = 0; i < entries_.size(); ++i) {
        const auto* vals = entries_[i].values(attr);
        if (!vals) continue;
        for (const auto& v : *vals) {
            auto& list = idx[exact ? v : to_lower(v)];
            if (list.empty() || list.back() != i) list.push_back(i);
        }
    }
    return idx;
}

std::vector<std::uint32_t> LdifSnapshot::candidates(const Filter& f, bool& all) const {
    all = false;
    switch (f.kind) {
        case Filter::Kind::Equal: {
            const auto& idx = index(f.attr);
            auto it = idx.find(case_exact_attribute(f.attr) ? f.value : to_lower(f.value));
            if (it == idx.end()) return {};
            return it->second;
        }
        case Filter::Kind::And: {
            std::vector<std::uint32_t> best;
            bool have = false;
            for (const auto& c : f.children) {
                bool call = false;
                auto cand = candidates(c, call);
                if (call) continue;
                if (!have || cand.size() < best.size()) {
                    best = std::move(cand);
                    have = true;
                }
            }
            if (!have) all = true;
            return best;
        }
        case Filter::Kind::Or: {
            std::vector<std::uint32_t> merged;
            for (const auto& c : f.children) {
                bool call = false;
                auto cand = candidates(c, call);
                if (call) { all = true; return {}; }
                merged.insert(merged.end(), cand.begin(), cand.end());
            }
            std::sort(merged.begin(), merged.end());
            merged.erase(std::unique(merged.begin(), merged.end()), merged.end());
            return merged;
        }
        default:
            all = true;
            return {};
    }
}

SearchResult LdifSnapshot::search(const SearchRequest& req) const {
    SearchResult r;
    std::string err;
    auto filter = parse_filter(req.filter, &err);
    if (!filter) {
        r.code = SearchResult::Code::TempFail;
        r.error = "bad search filter " + printable(req.filter, 200) + ": " + err;
        return r;
    }
    auto base = normalize_dn(req.base);
    if (!base) {
        r.code = SearchResult::Code::NoSuchObject;
        r.error = "invalid DN syntax: " + printable(req.base, 200);
        return r;
    }
    int depth = req.scope == Scope::Base ? 0 : (req.scope == Scope::One ? 1 : -1);

    // The base must exist (as slapd requires) or at least have entries
    // under it: an LDIF export often leaves out the suffix entry.
    if (!base->empty() && !by_dn_.count(*base)) {
        bool any = false;
        for (const auto& dn : norm_dns_)
            if (dn_in_scope(dn, *base, -1)) { any = true; break; }
        if (!any) {
            r.code = SearchResult::Code::NoSuchObject;
            r.error = "no such object: " + printable(req.base, 200);
            return r;
        }
    }

    auto emit = [&](std::uint32_t i) -> bool {
        const auto& e = entries_[i];
        if (!dn_in_scope(norm_dns_[i], *base, depth)) return true;
        if (!matches(*filter, e)) return true;
        if (req.size_limit > 0 && static_cast<int>(r.entries.size()) >= req.size_limit) {
            r.code = SearchResult::Code::SizeLimit;
            r.error = "size limit exceeded";
            return false;
        }
        r.entries.push_back(project_entry(e, req.attributes));
        return true;
    };

    if (depth == 0) {
        auto it = by_dn_.find(*base);
        if (it != by_dn_.end()) emit(it->second);
        return r;
    }
    bool all = false;
    auto cand = candidates(*filter, all);
    if (all) {
        for (std::uint32_t i = 0; i < entries_.size(); ++i)
            if (!emit(i)) break;
    } else {
        for (auto i : cand)
            if (!emit(i)) break;
    }
    return r;
}

LdifDirectory::LdifDirectory(asio::io_context& io, std::string path, std::chrono::milliseconds interval)
    : io_(io), path_(std::move(path)), interval_(interval) {
    loaded_ = stamp();
    std::vector<std::string> errors;
    snapshot_ = LdifSnapshot::load(path_, errors);
    for (const auto& e : errors) log::warning("%s", e.c_str());
}

LdifDirectory::Stamp LdifDirectory::stamp() const {
    struct stat st {};
    Stamp s;
    if (::stat(path_.c_str(), &st) == 0) {
        s.mtime = st.st_mtim.tv_sec;
        s.mtime_ns = st.st_mtim.tv_nsec;
        s.size = st.st_size;
        s.inode = st.st_ino;
    }
    return s;
}

LdifDirectory::LoadOutcome LdifDirectory::load_file(const std::string& path) {
    LoadOutcome l;
    try {
        l.snapshot = LdifSnapshot::load(path, l.errors);
    } catch (const std::exception& e) {
        l.failure = e.what();
    }
    return l;
}

bool LdifDirectory::adopt(LoadOutcome l, Stamp stamp) {
    loaded_ = stamp;
    if (!l.failure.empty()) {
        log::warning("%s: reload failed: %s", path_.c_str(), l.failure.c_str());
        return false;
    }
    if (!l.errors.empty()) {
        for (const auto& e : l.errors) log::warning("%s", e.c_str());
        log::warning("%s: %zu error(s); keeping the previous %zu entries", path_.c_str(), l.errors.size(),
                     snapshot_->size());
        return false;
    }
    snapshot_ = std::move(l.snapshot);
    log::info("%s: reloaded, %zu entries", path_.c_str(), snapshot_->size());
    return true;
}

bool LdifDirectory::reload_if_changed() {
    auto now = stamp();
    if (now == loaded_ || now.size < 0) return false;
    return adopt(load_file(path_), now);
}

void LdifDirectory::start_watching() { asio::co_spawn(io_, watch(), asio::detached); }

awaitable<void> LdifDirectory::watch() {
    for (;;) {
        co_await sleep_for(interval_);
        auto now = stamp();
        if (now == loaded_ || now.size < 0) continue;
        // Give a writer that is still writing a moment, then parse away
        // from the event loop.
        co_await sleep_for(std::chrono::milliseconds(50));
        now = stamp();
        auto job = [path = path_]() { return load_file(path); };
        auto outcome = co_await run_blocking(std::move(job));
        adopt(std::move(outcome), now);
    }
}

awaitable<SearchResult> LdifDirectory::search(SearchRequest request) {
    co_return snapshot_->search(request);
}

awaitable<BindResult> LdifDirectory::bind_check(std::string dn, std::string password, std::chrono::milliseconds) {
    if (password.empty()) co_return BindResult{BindOutcome::InvalidCredentials, "empty password"};
    auto snap = snapshot_;
    const Entry* e = snap->find_dn(dn);
    if (!e) co_return BindResult{BindOutcome::InvalidCredentials, "no such entry"};
    if (e->find("pwdAccountLockedTime")) co_return BindResult{BindOutcome::InvalidCredentials, "account locked"};
    const auto* stored = e->values("userPassword");
    if (!stored || stored->empty()) co_return BindResult{BindOutcome::InvalidCredentials, "no userPassword"};
    auto hashes = *stored;
    auto job = [hashes, pw = std::move(password)]() mutable {
        bool match = false;
        for (const auto& h : hashes)
            if (verify_password(h, pw) == PasswordCheck::Match) { match = true; break; }
        secure_wipe(pw);
        return match;
    };
    bool ok = co_await run_blocking(std::move(job));
    co_return ok ? BindResult{BindOutcome::Ok, {}} : BindResult{BindOutcome::InvalidCredentials, "password mismatch"};
}

}  // namespace mailgrid
