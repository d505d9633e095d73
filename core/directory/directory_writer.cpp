#include "directory/directory_writer.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>

#include "directory/dn.hpp"
#include "directory/filter.hpp"
#include "directory/ldap_sync.hpp"
#include "directory/ldif.hpp"
#include "util/fd_io.hpp"
#include "util/strings.hpp"

namespace mailgrid {

namespace {

using Code = WriteResult::Code;

bool same_value(const std::string& a, const std::string& b) { return iequals(a, b); }

// ---------------------------------------------------------------- LDAP

Code code_of(int rc) {
    switch (rc) {
        case LDAP_SUCCESS: return Code::Ok;
        case LDAP_ALREADY_EXISTS: return Code::AlreadyExists;
        case LDAP_NO_SUCH_OBJECT: return Code::NoSuchObject;
        case LDAP_INSUFFICIENT_ACCESS:
        case LDAP_STRONG_AUTH_REQUIRED:
        case LDAP_CONFIDENTIALITY_REQUIRED:
        case LDAP_INAPPROPRIATE_AUTH:
        case LDAP_UNWILLING_TO_PERFORM: return Code::Denied;
        case LDAP_SERVER_DOWN:
        case LDAP_TIMEOUT:
        case LDAP_CONNECT_ERROR:
        case LDAP_BUSY:
        case LDAP_UNAVAILABLE:
        case LDAP_TIMELIMIT_EXCEEDED:
        case LDAP_ADMINLIMIT_EXCEEDED:
        case LDAP_OTHER: return Code::TempFail;
        default: return Code::Invalid;
    }
}

// NULL-terminated LDAPMod arrays that own their strings.
class Mods {
public:
    void add(int op, const std::string& attr, const std::vector<std::string>& values) {
        auto& m = storage_.emplace_back();
        m.name = attr;
        m.values = values;
        m.mod.mod_op = op | LDAP_MOD_BVALUES;
        m.mod.mod_type = m.name.data();
    }
    LDAPMod** get() {
        ptrs_.clear();
        for (auto& m : storage_) {
            m.bvals.clear();
            m.bptrs.clear();
            for (auto& v : m.values) m.bvals.push_back(berval{static_cast<ber_len_t>(v.size()), v.data()});
            for (auto& b : m.bvals) m.bptrs.push_back(&b);
            m.bptrs.push_back(nullptr);
            m.mod.mod_bvalues = m.values.empty() ? nullptr : m.bptrs.data();
            m.mod.mod_type = m.name.data();
            ptrs_.push_back(&m.mod);
        }
        ptrs_.push_back(nullptr);
        return ptrs_.data();
    }

private:
    struct One {
        std::string name;
        std::vector<std::string> values;
        std::vector<berval> bvals;
        std::vector<berval*> bptrs;
        LDAPMod mod{};
    };
    std::deque<One> storage_;
    std::vector<LDAPMod*> ptrs_;
};

Mods mods_for_add(const Entry& e) {
    Mods m;
    for (const auto& a : e.attributes) m.add(LDAP_MOD_ADD, a.name, a.values);
    return m;
}

class LdapWriter : public DirectoryWriter {
public:
    LdapWriter(LDAP* ld, ServerSet servers) : ld_(ld), servers_(std::move(servers)) {}
    ~LdapWriter() override { ldap_unbind_ext(ld_, nullptr, nullptr); }

    SearchResult search(const std::string& base, const std::string& filter,
                        const std::vector<std::string>& attributes) override {
        SearchResult out;
        std::vector<char*> attrs;
        std::vector<std::string> copy = attributes;
        for (auto& a : copy) attrs.push_back(a.data());
        attrs.push_back(nullptr);
        berval* cookie = nullptr;
        timeval tv{std::max(1, servers_.timeout_seconds) * 6, 0};
        for (;;) {
            LDAPControl* page = nullptr;
            int rc = ldap_create_page_control(ld_, 1000, cookie, 0, &page);
            if (cookie) {
                ber_bvfree(cookie);
                cookie = nullptr;
            }
            if (rc != LDAP_SUCCESS) return temp(out, rc);
            LDAPControl* controls[] = {page, nullptr};
            LDAPMessage* res = nullptr;
            rc = ldap_search_ext_s(ld_, base.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(),
                                   attributes.empty() ? nullptr : attrs.data(), 0, controls, nullptr, &tv, 0, &res);
            ldap_control_free(page);
            if (rc == LDAP_NO_SUCH_OBJECT) {
                if (res) ldap_msgfree(res);
                out.code = SearchResult::Code::NoSuchObject;
                return out;
            }
            if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
                if (res) ldap_msgfree(res);
                return temp(out, rc);
            }
            for (LDAPMessage* m = ldap_first_entry(ld_, res); m; m = ldap_next_entry(ld_, m))
                out.entries.push_back(read_ldap_entry(ld_, m));
            LDAPControl** returned = nullptr;
            int err = 0;
            ldap_parse_result(ld_, res, &err, nullptr, nullptr, nullptr, &returned, 0);
            ldap_msgfree(res);
            if (returned) {
                if (LDAPControl* c = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, returned, nullptr)) {
                    ber_int_t estimate = 0;
                    berval next{};
                    if (ldap_parse_pageresponse_control(ld_, c, &estimate, &next) == LDAP_SUCCESS && next.bv_len > 0)
                        cookie = ber_bvdup(&next);
                    if (next.bv_val) ber_memfree(next.bv_val);
                }
                ldap_controls_free(returned);
            }
            if (!cookie) break;
        }
        return out;
    }

    WriteResult add(const Entry& entry) override {
        auto mods = mods_for_add(entry);
        return result(ldap_add_ext_s(ld_, entry.dn.c_str(), mods.get(), nullptr, nullptr), "add " + entry.dn);
    }

    WriteResult modify(const std::string& dn, const std::vector<Modification>& changes) override {
        Mods mods;
        for (const auto& c : changes) {
            int op = c.op == Modification::Op::Add      ? LDAP_MOD_ADD
                     : c.op == Modification::Op::Delete ? LDAP_MOD_DELETE
                                                        : LDAP_MOD_REPLACE;
            mods.add(op, c.attribute, c.values);
        }
        return result(ldap_modify_ext_s(ld_, dn.c_str(), mods.get(), nullptr, nullptr), "modify " + dn);
    }

    WriteResult remove(const std::string& dn) override {
        return result(ldap_delete_ext_s(ld_, dn.c_str(), nullptr, nullptr), "delete " + dn);
    }

    void add_many(const std::vector<Entry>& entries, int window,
                  const std::function<void(std::size_t, const WriteResult&)>& done) override {
        std::map<int, std::size_t> in_flight;
        std::size_t next = 0;
        timeval tv{std::max(1, servers_.timeout_seconds) * 6, 0};
        while (next < entries.size() || !in_flight.empty()) {
            while (next < entries.size() && static_cast<int>(in_flight.size()) < std::max(1, window)) {
                auto mods = mods_for_add(entries[next]);
                int msgid = 0;
                int rc = ldap_add_ext(ld_, entries[next].dn.c_str(), mods.get(), nullptr, nullptr, &msgid);
                if (rc != LDAP_SUCCESS) {
                    done(next, result(rc, "add " + entries[next].dn));
                    if (code_of(rc) == Code::TempFail) {  // the connection is gone: fail the rest
                        for (auto& [id, i] : in_flight) done(i, result(rc, "add " + entries[i].dn));
                        for (std::size_t i = next + 1; i < entries.size(); ++i)
                            done(i, result(rc, "add " + entries[i].dn));
                        return;
                    }
                } else {
                    in_flight[msgid] = next;
                }
                ++next;
            }
            if (in_flight.empty()) continue;
            LDAPMessage* res = nullptr;
            int type = ldap_result(ld_, LDAP_RES_ANY, LDAP_MSG_ONE, &tv, &res);
            if (type <= 0) {
                int rc = LDAP_TIMEOUT;
                if (type < 0) ldap_get_option(ld_, LDAP_OPT_RESULT_CODE, &rc);
                if (res) ldap_msgfree(res);
                for (auto& [id, i] : in_flight) done(i, result(rc, "add " + entries[i].dn));
                for (std::size_t i = next; i < entries.size(); ++i) done(i, result(rc, "add " + entries[i].dn));
                return;
            }
            int msgid = ldap_msgid(res);
            int err = LDAP_OTHER;
            ldap_parse_result(ld_, res, &err, nullptr, nullptr, nullptr, nullptr, 1);
            auto it = in_flight.find(msgid);
            if (it != in_flight.end()) {
                done(it->second, result(err, "add " + entries[it->second].dn));
                in_flight.erase(it);
            }
        }
    }

    std::string describe() const override { return servers_.describe(); }

private:
    WriteResult result(int rc, const std::string& what) {
        if (rc == LDAP_SUCCESS) return WriteResult::success();
        return WriteResult::failure(code_of(rc), what + ": " + ldap_error_text(ld_, rc));
    }
    SearchResult temp(SearchResult& out, int rc) {
        out.code = SearchResult::Code::TempFail;
        out.error = ldap_error_text(ld_, rc);
        return out;
    }

    LDAP* ld_;
    ServerSet servers_;
};

// ---------------------------------------------------------------- LDIF

class FileLock {
public:
    explicit FileLock(const std::string& path) {
        fd_ = ::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd_ >= 0) ::flock(fd_, LOCK_EX);
    }
    ~FileLock() {
        if (fd_ >= 0) ::close(fd_);
    }
    bool ok() const { return fd_ >= 0; }

private:
    int fd_ = -1;
};

class LdifWriter : public DirectoryWriter {
public:
    explicit LdifWriter(std::string path) : path_(std::move(path)) {}

    SearchResult search(const std::string& base, const std::string& filter,
                        const std::vector<std::string>& attributes) override {
        SearchResult out;
        std::string why;
        auto f = parse_filter(filter, &why);
        auto b = normalize_dn(base);
        if (!f || !b) {
            out.code = SearchResult::Code::TempFail;
            out.error = f ? "bad base DN: " + base : "bad filter: " + why;
            return out;
        }
        std::vector<Entry> entries;
        if (!load(entries, why)) {
            out.code = SearchResult::Code::TempFail;
            out.error = why;
            return out;
        }
        for (auto& e : entries) {
            auto n = normalize_dn(e.dn);
            if (!n || !dn_in_scope(*n, *b, -1) || !matches(*f, e)) continue;
            if (!attributes.empty()) {
                Entry slim;
                slim.dn = e.dn;
                for (auto& a : e.attributes)
                    for (const auto& want : attributes)
                        if (iequals(a.name, want)) slim.attributes.push_back(a);
                out.entries.push_back(std::move(slim));
            } else {
                out.entries.push_back(std::move(e));
            }
        }
        return out;
    }

    WriteResult add(const Entry& entry) override {
        WriteResult r;
        add_many({entry}, 1, [&](std::size_t, const WriteResult& w) { r = w; });
        return r;
    }

    WriteResult modify(const std::string& dn, const std::vector<Modification>& changes) override {
        return update([&](std::vector<Entry>& entries) {
            auto it = find(entries, dn);
            if (it == entries.end()) return WriteResult::failure(Code::NoSuchObject, "modify " + dn + ": no such entry");
            Entry copy = *it;
            auto r = apply_modifications(copy, changes);
            if (r.ok()) *it = std::move(copy);
            return r;
        });
    }

    WriteResult remove(const std::string& dn) override {
        return update([&](std::vector<Entry>& entries) {
            auto it = find(entries, dn);
            if (it == entries.end()) return WriteResult::failure(Code::NoSuchObject, "delete " + dn + ": no such entry");
            entries.erase(it);
            return WriteResult::success();
        });
    }

    void add_many(const std::vector<Entry>& batch, int, const std::function<void(std::size_t, const WriteResult&)>& done)
        override {
        std::vector<WriteResult> results(batch.size());
        auto r = update([&](std::vector<Entry>& entries) {
            std::map<std::string, bool> present;
            for (const auto& e : entries)
                if (auto n = normalize_dn(e.dn)) present[*n] = true;
            bool any = false;
            for (std::size_t i = 0; i < batch.size(); ++i) {
                auto n = normalize_dn(batch[i].dn);
                if (!n) {
                    results[i] = WriteResult::failure(Code::Invalid, "add " + batch[i].dn + ": invalid DN");
                } else if (present.count(*n)) {
                    results[i] = WriteResult::failure(Code::AlreadyExists, "add " + batch[i].dn + ": already exists");
                } else {
                    present[*n] = true;
                    entries.push_back(batch[i]);
                    any = true;
                }
            }
            return any ? WriteResult::success() : WriteResult::failure(Code::Invalid, "nothing to add");
        });
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (r.code == Code::TempFail || r.code == Code::Denied) results[i] = r;
            done(i, results[i]);
        }
    }

    std::string describe() const override { return "ldif:" + path_; }

private:
    static std::vector<Entry>::iterator find(std::vector<Entry>& entries, const std::string& dn) {
        auto want = normalize_dn(dn);
        return std::find_if(entries.begin(), entries.end(), [&](const Entry& e) {
            auto n = normalize_dn(e.dn);
            return want && n && *n == *want;
        });
    }

    bool load(std::vector<Entry>& entries, std::string& why) const {
        int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            why = path_ + ": " + std::strerror(errno);
            return false;
        }
        std::string text;
        char buf[65536];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
        ::close(fd);
        auto parsed = parse_ldif(text, path_);
        if (!parsed.errors.empty()) {
            why = parsed.errors.front();
            return false;
        }
        entries = std::move(parsed.entries);
        return true;
    }

    // Under the lock: read, change, write a new file and rename it over
    // the old one (fsync'd), so readers see the old or the new file whole.
    template <typename F>
    WriteResult update(F&& change) {
        FileLock lock(path_);
        if (!lock.ok()) return WriteResult::failure(Code::Denied, path_ + ".lock: " + std::strerror(errno));
        std::vector<Entry> entries;
        std::string why;
        if (!load(entries, why)) return WriteResult::failure(Code::TempFail, why);
        WriteResult r = change(entries);
        if (!r.ok()) return r;
        std::string text;
        for (const auto& e : entries) text += to_ldif(e) + "\n";
        struct stat st {};
        mode_t mode = ::stat(path_.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0640;
        std::string tmp = path_ + ".mailgrid-tmp";
        int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0) return WriteResult::failure(Code::Denied, tmp + ": " + std::strerror(errno));
        if (::geteuid() == 0) (void)::fchown(fd, st.st_uid, st.st_gid);
        if (int e = 0; !write_all(fd, text, &e)) {
            ::close(fd);
            ::unlink(tmp.c_str());
            return WriteResult::failure(Code::TempFail, tmp + ": " + std::strerror(e));
        }
        if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), path_.c_str()) != 0) {
            int e = errno;
            ::unlink(tmp.c_str());
            return WriteResult::failure(Code::TempFail, path_ + ": " + std::strerror(e));
        }
        return WriteResult::success();
    }

    std::string path_;
};

}  // namespace

WriteResult apply_modifications(Entry& entry, const std::vector<Modification>& changes) {
    for (const auto& c : changes) {
        auto it = std::find_if(entry.attributes.begin(), entry.attributes.end(),
                               [&](const Attribute& a) { return iequals(a.name, c.attribute); });
        switch (c.op) {
            case Modification::Op::Replace:
                if (it != entry.attributes.end()) entry.attributes.erase(it);
                if (!c.values.empty()) entry.attributes.push_back({c.attribute, c.values});
                break;
            case Modification::Op::Add: {
                if (c.values.empty()) return WriteResult::failure(Code::Invalid, c.attribute + ": nothing to add");
                Attribute& a = entry.get_or_add(c.attribute);
                for (const auto& v : c.values) {
                    if (std::any_of(a.values.begin(), a.values.end(), [&](const auto& x) { return same_value(x, v); }))
                        return WriteResult::failure(Code::Invalid, c.attribute + ": value exists: " + v);
                    a.values.push_back(v);
                }
                break;
            }
            case Modification::Op::Delete:
                if (it == entry.attributes.end())
                    return WriteResult::failure(Code::Invalid, c.attribute + ": no such attribute");
                if (c.values.empty()) {
                    entry.attributes.erase(it);
                    break;
                }
                for (const auto& v : c.values) {
                    auto& vals = it->values;
                    auto pos = std::find_if(vals.begin(), vals.end(), [&](const auto& x) { return same_value(x, v); });
                    if (pos == vals.end()) return WriteResult::failure(Code::Invalid, c.attribute + ": no such value: " + v);
                    vals.erase(pos);
                }
                if (it->values.empty()) entry.attributes.erase(it);
                break;
        }
    }
    return WriteResult::success();
}

std::unique_ptr<DirectoryWriter> open_ldap_writer(const ServerSet& servers, std::string* error) {
    LDAP* ld = open_ldap_sync(servers, error);
    if (!ld) return nullptr;
    return std::make_unique<LdapWriter>(ld, servers);
}

std::unique_ptr<DirectoryWriter> open_ldif_writer(const std::string& path, std::string* error) {
    if (::access(path.c_str(), R_OK) != 0) {
        if (error) *error = path + ": " + std::strerror(errno);
        return nullptr;
    }
    return std::make_unique<LdifWriter>(path);
}

}  // namespace mailgrid
