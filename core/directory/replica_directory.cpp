#include "directory/replica_directory.hpp"

#include <lber.h>
#include <ldap.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "directory/dn.hpp"
#include "directory/filter.hpp"
#include "directory/ldap_sync.hpp"
#include "directory/sync_messages.hpp"
#include "log/log.hpp"
#include "util/strings.hpp"

namespace mailgrid {

namespace {

using Clock = std::chrono::steady_clock;

std::string_view as_view(const berval& v) { return v.bv_val ? std::string_view(v.bv_val, v.bv_len) : std::string_view(); }

// Attributes a "*" sync search does not carry (RFC 4512 operational ones
// mail tools ask for): a search naming one goes to the server.
bool operational_attribute(std::string_view name) {
    static const std::unordered_set<std::string> names = {
        "+", "entryuuid", "entrycsn", "entrydn", "createtimestamp", "modifytimestamp", "creatorsname",
        "modifiersname", "hassubordinates", "numsubordinates", "subschemasubentry", "structuralobjectclass",
        "memberof", "pwdchangedtime", "pwdfailuretime", "pwdgraceusetime", "pwdreset", "pwdpolicysubentry",
        "contextcsn", "authtimestamp"};
    return names.count(to_lower(name)) > 0;
}

// pwdAccountLockedTime is operational too, but the embedded directory's
// password check reads it, so the copy keeps it.
const char* const kSyncAttributes[] = {"*", "pwdAccountLockedTime", nullptr};

long long ms(Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

std::string hint_for(int code) {
    switch (code) {
        case LDAP_UNAVAILABLE_CRITICAL_EXTENSION:
            return "; the server does not offer content synchronisation (RFC 4533): load slapd's syncprov overlay "
                   "on this database";
        case LDAP_SIZELIMIT_EXCEEDED:
        case LDAP_TIMELIMIT_EXCEEDED:
        case LDAP_ADMINLIMIT_EXCEEDED:
            return "; the server limits this account's searches: give it 'limits dn.exact=\"<bind DN>\" "
                   "size=unlimited time=unlimited' in slapd";
        case LDAP_INSUFFICIENT_ACCESS:
            return "; the bind DN may not read this subtree";
        default:
            return "";
    }
}

// Attributes the event loop has searched the copy by, so that the sync
// thread builds their indexes into the next copy before it goes into
// service instead of the first search after it paying for them.
struct IndexHints {
    std::mutex mu;
    std::vector<std::string> attributes;
    void add(const std::vector<std::string>& names) {
        std::lock_guard lock(mu);
        for (const auto& n : names)
            if (std::find(attributes.begin(), attributes.end(), n) == attributes.end()) attributes.push_back(n);
    }
    std::vector<std::string> get() {
        std::lock_guard lock(mu);
        return attributes;
    }
};

void collect_equality(const Filter& f, std::vector<std::string>& out) {
    if (f.kind == Filter::Kind::Equal) out.push_back(f.attr);
    for (const auto& c : f.children) collect_equality(c, out);
}

}  // namespace

// ---- the event loop's side ----

struct ReplicaDirectory::Live {
    std::shared_ptr<IndexHints> hints = std::make_shared<IndexHints>();
    bool in_service = false;
    std::shared_ptr<const LdifSnapshot> copy;  // the last full copy
    std::uint64_t copy_seq = 0;                // changes up to this one are in it
    // Entries changed since: normalized DN -> the entry now (nullopt: gone).
    struct Change {
        std::uint64_t seq = 0;
        std::uint64_t first_seq = 0;  // an entry new since the copy is placed by this
        std::string place_dn;         // renamed since the copy: the DN whose place it keeps
        bool reborn = false;          // another entry than the copy's, under the same DN
        std::optional<Entry> entry;
    };
    std::unordered_map<std::string, Change> changed;
    // The changed entries that exist, indexed like the copy; rebuilt on the
    // first search after a change.
    mutable std::shared_ptr<LdifSnapshot> changed_index;

    void take_copy(std::shared_ptr<const LdifSnapshot> c, std::uint64_t seq) {
        if (copy) hints->add(copy->indexed_attributes());
        copy = std::move(c);
        copy_seq = seq;
        std::erase_if(changed, [seq](const auto& kv) { return kv.second.seq <= seq; });
        changed_index.reset();
        in_service = true;
    }
    void apply(std::string dn_norm, std::uint64_t seq, std::optional<Entry> entry, std::string place_dn = {},
               bool reborn = false) {
        if (seq <= copy_seq) return;
        auto [it, fresh] = changed.try_emplace(std::move(dn_norm));
        if (fresh || (reborn && !it->second.reborn)) it->second.first_seq = seq;
        it->second.reborn = it->second.reborn || reborn;
        it->second.seq = seq;
        it->second.place_dn = std::move(place_dn);
        it->second.entry = std::move(entry);
        changed_index.reset();
    }
    void drop() {
        in_service = false;
        copy.reset();
        copy_seq = 0;
        changed.clear();
        changed_index.reset();
    }
    SearchResult search(const SearchRequest& req) const {
        if (changed.empty()) return copy->search(req);
        SearchRequest unlimited = req;
        unlimited.size_limit = 0;
        auto r = copy->search(unlimited);
        if (r.code == SearchResult::Code::TempFail) return r;
        if (!changed_index) {
            std::vector<Entry> now;
            for (const auto& [dn, c] : changed)
                if (c.entry) now.push_back(*c.entry);
            std::vector<std::string> errors;
            changed_index = LdifSnapshot::from_entries(std::move(now), errors);
        }
        // In the order the next full copy (Syncer::fold) will have, which is
        // slapd's: an entry keeps its place in the copy when it changes or is
        // renamed, and entries new since come after, in the order they
        // first appeared (also one added under the DN of a copy entry
        // deleted since: slapd gives it a new id).
        std::vector<std::pair<std::size_t, Entry>> placed;
        for (auto& e : r.entries) {
            auto n = normalize_dn(e.dn);
            if (!n) continue;
            if (changed.count(*n)) continue;  // answered from its newer version, or gone
            placed.emplace_back(copy->position(*n).value_or(0), std::move(e));
        }
        auto newer = changed_index->search(unlimited);
        for (auto& e : newer.entries) {
            auto n = normalize_dn(e.dn);
            if (!n) continue;
            auto c = changed.find(*n);
            std::optional<std::size_t> place;
            if (c == changed.end() || !c->second.reborn)
                place = copy->position(c != changed.end() && !c->second.place_dn.empty() ? c->second.place_dn : *n);
            placed.emplace_back(place ? *place : copy->size() + (c == changed.end() ? 0 : c->second.first_seq),
                                std::move(e));
        }
        std::stable_sort(placed.begin(), placed.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        std::vector<Entry> out;
        out.reserve(placed.size());
        for (auto& [place, e] : placed) out.push_back(std::move(e));
        SearchResult result;
        if (out.empty() && r.code == SearchResult::Code::NoSuchObject &&
            newer.code == SearchResult::Code::NoSuchObject) {
            result.code = SearchResult::Code::NoSuchObject;
            result.error = r.error;
            return result;
        }
        if (req.size_limit > 0 && out.size() > static_cast<std::size_t>(req.size_limit)) {
            out.resize(static_cast<std::size_t>(req.size_limit));
            result.code = SearchResult::Code::SizeLimit;
            result.error = "size limit exceeded";
        }
        result.entries = std::move(out);
        return result;
    }
};

// ---- the sync thread ----

class ReplicaDirectory::Syncer {
public:
    Syncer(asio::io_context& io, ServerSet server, ReplicaOptions options, const std::shared_ptr<Live>& live,
           MetricsRegistry* metrics)
        : io_(io), server_(std::move(server)), options_(std::move(options)), live_(live), hints_(live->hints) {
        if (metrics) {
            Labels l{{"servers", server_.describe()}, {"base", options_.base}};
            m_entries_ = &metrics->gauge("mailgrid_ldap_replica_entries", "Entries in the in-memory replica", l);
            m_in_service_ = &metrics->gauge("mailgrid_ldap_replica_in_service",
                                            "1 while searches are answered from the replica", l);
            m_changes_ = &metrics->counter("mailgrid_ldap_replica_changes_total",
                                           "Changes received from the server after the refresh", l);
            m_refreshes_ = &metrics->counter("mailgrid_ldap_replica_refreshes_total", "Full refreshes completed", l);
        }
    }

    void run() {
        while (!stopping()) {
            std::string why;
            LDAP* ld = open_ldap_sync(server_, &why);
            if (ld) {
                session(ld, why);
                ldap_unbind_ext(ld, nullptr, nullptr);
            }
            forget();
            if (stopping()) break;
            lost(why);
            wait(options_.retry_delay);
        }
        post([](Live& l) { l.drop(); });
    }

    void stop() {
        std::lock_guard lock(mu_);
        stop_ = true;
        cv_.notify_all();
    }

private:
    bool stopping() {
        std::lock_guard lock(mu_);
        return stop_;
    }
    void wait(std::chrono::milliseconds d) {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, d, [this] { return stop_; });
    }
    void post(std::function<void(Live&)> f) {
        asio::post(io_, [w = live_, f = std::move(f)] {
            if (auto l = w.lock()) f(*l);
        });
    }
    void set_in_service(bool on) {
        if (m_in_service_) m_in_service_->set(on ? 1 : 0);
    }

    void lost(const std::string& why) {
        bool was = in_service_;
        in_service_ = false;
        set_in_service(false);
        if (m_entries_) m_entries_->set(0);
        post([](Live& l) { l.drop(); });
        auto now = Clock::now();
        if (was || why != last_why_ || now - last_log_ > std::chrono::minutes(1)) {
            log::warning("replica of %s from %s: %s; searches go to the directory until it is in sync again",
                         options_.base.c_str(), server_.describe().c_str(), why.c_str());
            last_why_ = why;
            last_log_ = now;
        }
    }

    // Sends the sync search and follows it until the connection fails, the
    // server ends it or we stop; why says what happened.
    void session(LDAP* ld, std::string& why) {
        BerElement* ber = ber_alloc_t(LBER_USE_DER);
        if (!ber) {
            why = "out of memory";
            return;
        }
        LDAPControl ctrl{};
        ber_printf(ber, "{e}", static_cast<ber_int_t>(LDAP_SYNC_REFRESH_AND_PERSIST));
        if (ber_flatten2(ber, &ctrl.ldctl_value, 0) < 0) {
            ber_free(ber, 1);
            why = "cannot encode the sync request";
            return;
        }
        ctrl.ldctl_oid = const_cast<char*>(LDAP_CONTROL_SYNC);
        ctrl.ldctl_iscritical = 1;
        LDAPControl* ctrls[] = {&ctrl, nullptr};
        int sync_id = -1;
        int rc = ldap_search_ext(ld, options_.base.c_str(), LDAP_SCOPE_SUBTREE, "(objectClass=*)",
                                 const_cast<char**>(kSyncAttributes), 0, ctrls, nullptr, nullptr, 0, &sync_id);
        ber_free(ber, 1);
        if (rc != LDAP_SUCCESS) {
            why = "sync search: " + ldap_error_text(ld, rc);
            return;
        }
        forget();
        refreshing_ = true;
        auto started = Clock::now();
        auto last_rx = started, last_probe = started, probe_sent = started;
        int probe_id = -1;

        while (!stopping()) {
            auto now = Clock::now();
            if (probe_id >= 0 && now - probe_sent > options_.probe_timeout && now - last_rx > options_.probe_timeout) {
                why = "no answer to a probe within " + std::to_string(ms(options_.probe_timeout)) + "ms";
                return;
            }
            if (probe_id < 0 && now - last_rx >= options_.probe_interval && now - last_probe >= options_.probe_interval) {
                static const char* const none[] = {"1.1", nullptr};
                rc = ldap_search_ext(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", const_cast<char**>(none), 0, nullptr,
                                     nullptr, nullptr, 1, &probe_id);
                if (rc != LDAP_SUCCESS) {
                    why = "probe: " + ldap_error_text(ld, rc);
                    return;
                }
                probe_sent = last_probe = now;
            }
            if (!refreshing_ && unfolded_ > 0 &&
                (unfolded_ >= options_.fold_after || now - first_unfolded_ > std::chrono::seconds(60)))
                fold();

            timeval tv{0, 200'000};
            LDAPMessage* msg = nullptr;
            rc = ldap_result(ld, LDAP_RES_ANY, LDAP_MSG_ONE, &tv, &msg);
            if (rc == 0) continue;
            if (rc < 0) {
                int err = LDAP_SERVER_DOWN;
                ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &err);
                why = "connection lost: " + ldap_error_text(ld, err);
                return;
            }
            last_rx = Clock::now();
            int id = ldap_msgid(msg);
            int type = ldap_msgtype(msg);
            bool go_on = true;
            if (id == probe_id) {
                if (type == LDAP_RES_SEARCH_RESULT) probe_id = -1;
            } else if (id == sync_id) {
                std::string problem;
                if (type == LDAP_RES_SEARCH_ENTRY) {
                    problem = on_entry(ld, msg);
                } else if (type == LDAP_RES_INTERMEDIATE) {
                    problem = on_intermediate(ld, msg, started);
                } else if (type == LDAP_RES_SEARCH_RESULT) {
                    int err = LDAP_OTHER;
                    char* text = nullptr;
                    ldap_parse_result(ld, msg, &err, nullptr, &text, nullptr, nullptr, 0);
                    why = std::string("the server ended the sync search: ") + ldap_err2string(err);
                    if (text && *text) why += std::string(" (") + text + ")";
                    why += hint_for(err);
                    if (text) ldap_memfree(text);
                    go_on = false;
                }
                // A message the copy cannot apply would leave an entry
                // missing or stale, answered from the copy as if it were
                // the directory: the sync starts again instead.
                if (!problem.empty()) {
                    why = std::move(problem);
                    go_on = false;
                }
            }
            ldap_msgfree(msg);
            if (!go_on) return;
        }
    }

    // What is wrong with the message, or "" when it was applied.
    std::string on_entry(LDAP* ld, LDAPMessage* msg) {
        LDAPControl** ctrls = nullptr;
        ldap_get_entry_controls(ld, msg, &ctrls);
        std::optional<ldapsync::StateControl> sync;
        for (int i = 0; ctrls && ctrls[i]; ++i) {
            if (std::strcmp(ctrls[i]->ldctl_oid, LDAP_CONTROL_SYNC_STATE) != 0) continue;
            sync = ldapsync::parse_state_control(as_view(ctrls[i]->ldctl_value));
            break;
        }
        if (ctrls) ldap_controls_free(ctrls);
        if (!sync) return "an entry without a valid sync state control";
        const std::string& uuid = sync->uuid;
        if (sync->state == ldapsync::State::Present) return {};  // unchanged since a cookie we never send
        if (sync->state == ldapsync::State::Delete) {
            remove(uuid);
            return {};
        }
        Entry e = read_ldap_entry(ld, msg);
        auto norm = normalize_dn(e.dn);
        if (!norm) return "an entry with an invalid DN: " + printable(e.dn, 200);
        if (refreshing_) {
            // An entry changed while the refresh runs may come twice.
            dn_by_uuid_[uuid] = *norm;
            auto [pos, fresh] = refresh_pos_.try_emplace(uuid, refresh_.size());
            if (fresh) refresh_.push_back(std::move(e));
            else refresh_[pos->second] = std::move(e);
            return {};
        }
        // An add, or a modify (perhaps a rename: the old DN goes, and the
        // entry keeps the place it has in the copy, as in slapd's answers).
        ++seq_;
        auto it = dn_by_uuid_.find(uuid);
        if (it != dn_by_uuid_.end() && it->second != *norm) {
            if (!moved_from_.count(uuid) && !reborn_.count(it->second) && copy_ && copy_->position(it->second))
                moved_from_[uuid] = it->second;
            set_pending(it->second, std::nullopt);
            post([dn = it->second, s = seq_](Live& l) { l.apply(dn, s, std::nullopt); });
        }
        // An entry we have not seen, under the DN of one in the copy (gone
        // or renamed since): a new entry, which slapd answers last.
        bool reborn = it == dn_by_uuid_.end() && copy_ && copy_->find_dn(*norm);
        if (reborn && reborn_.insert(*norm).second) pending_new_.push_back(*norm);
        dn_by_uuid_[uuid] = *norm;
        set_pending(*norm, e);
        auto from = moved_from_.find(uuid);
        std::string place = from == moved_from_.end() ? std::string() : from->second;
        post([dn = std::move(*norm), s = seq_, e = std::move(e), place = std::move(place), reborn](Live& l) mutable {
            l.apply(std::move(dn), s, std::move(e), std::move(place), reborn);
        });
        changed();
        return {};
    }

    void remove(const std::string& uuid) {
        auto it = dn_by_uuid_.find(uuid);
        if (it == dn_by_uuid_.end()) return;
        if (refreshing_) {
            if (auto pos = refresh_pos_.find(uuid); pos != refresh_pos_.end()) refresh_[pos->second].dn.clear();
        } else {
            ++seq_;
            set_pending(it->second, std::nullopt);
            post([dn = it->second, s = seq_](Live& l) { l.apply(dn, s, std::nullopt); });
            changed();
        }
        dn_by_uuid_.erase(it);
        moved_from_.erase(uuid);
    }

    void forget() {
        dn_by_uuid_.clear();
        moved_from_.clear();
        reborn_.clear();
        refresh_.clear();
        refresh_pos_.clear();
        copy_.reset();
        pending_.clear();
        pending_new_.clear();
        unfolded_ = 0;
    }

    void set_pending(const std::string& dn_norm, std::optional<Entry> entry) {
        if (!pending_.count(dn_norm) && !(copy_ && copy_->find_dn(dn_norm))) pending_new_.push_back(dn_norm);
        pending_[dn_norm] = std::move(entry);
    }

    void changed() {
        if (m_changes_) m_changes_->inc();
        if (unfolded_++ == 0) first_unfolded_ = Clock::now();
    }

    std::string on_intermediate(LDAP* ld, LDAPMessage* msg, Clock::time_point started) {
        char* oid = nullptr;
        berval* data = nullptr;
        if (ldap_parse_intermediate(ld, msg, &oid, &data, nullptr, 0) != LDAP_SUCCESS)
            return "an intermediate message that cannot be parsed";
        std::string problem;
        if (oid && data && std::strcmp(oid, LDAP_SYNC_INFO) == 0) {
            using Kind = ldapsync::SyncInfo::Kind;
            auto info = ldapsync::parse_sync_info(as_view(*data));
            if (!info) {
                problem = "a malformed sync info message";
            } else if (info->kind == Kind::RefreshPresent || info->kind == Kind::RefreshDelete) {
                if (info->refresh_done && refreshing_) refreshed(started);
            } else if (info->kind == Kind::IdSet && info->refresh_deletes) {
                for (const auto& uuid : info->uuids) remove(uuid);
            }
        }
        if (oid) ldap_memfree(oid);
        if (data) ber_bvfree(data);
        return problem;
    }

    void refreshed(Clock::time_point started) {
        refreshing_ = false;
        std::vector<Entry> all = std::move(refresh_);
        refresh_.clear();
        refresh_pos_.clear();
        std::erase_if(all, [](const Entry& e) { return e.dn.empty(); });  // deleted meanwhile
        publish(std::move(all));
        in_service_ = true;
        set_in_service(true);
        if (m_refreshes_) m_refreshes_->inc();
        log::info("replica of %s from %s: in service, %zu entries, refreshed in %lld ms", options_.base.c_str(),
                  server_.describe().c_str(), copy_->size(), ms(Clock::now() - started));
    }

    // The last copy with the changes since folded in, in the server's
    // order (changed entries keep their place, new ones come last).
    void fold() {
        std::vector<Entry> all;
        all.reserve(copy_->size() + pending_new_.size());
        // A DN in the copy -> the DN its entry has now, renamed since.
        std::unordered_map<std::string_view, std::string_view> now_at;
        for (const auto& [uuid, from] : moved_from_)
            if (auto d = dn_by_uuid_.find(uuid); d != dn_by_uuid_.end()) now_at[from] = d->second;
        std::unordered_set<std::string_view> placed;
        for (std::size_t i = 0; i < copy_->size(); ++i) {
            const std::string& dn = copy_->normalized_dn_at(i);
            auto p = pending_.find(dn);
            if (p == pending_.end()) {
                all.push_back(copy_->entry_at(i));
            } else if (p->second && !reborn_.count(dn)) {
                all.push_back(*p->second);
            } else if (auto m = now_at.find(dn); m != now_at.end()) {
                auto q = pending_.find(std::string(m->second));
                if (q != pending_.end() && q->second) {
                    all.push_back(*q->second);
                    placed.insert(m->second);
                }
            }
        }
        for (const auto& dn : pending_new_)
            if (!placed.count(dn))
                if (const auto& e = pending_[dn]) all.push_back(*e);
        publish(std::move(all));
    }

    // Puts a new full copy in service; the event loop drops the overlay
    // entries it contains. The sync thread keeps no entries of its own
    // beyond this copy (shared, read-only) and the changes since.
    void publish(std::vector<Entry> all) {
        std::vector<std::string> errors;
        auto copy = LdifSnapshot::from_entries(std::move(all), errors);
        for (const auto& attr : hints_->get()) copy->build_index(attr);
        for (const auto& e : errors) log::warning("replica of %s: %s", options_.base.c_str(), e.c_str());
        copy_ = copy;
        pending_.clear();
        pending_new_.clear();
        moved_from_.clear();
        reborn_.clear();
        unfolded_ = 0;
        post([copy = copy_, s = seq_](Live& l) { l.take_copy(copy, s); });
        if (m_entries_) m_entries_->set(static_cast<double>(copy_->size()));
    }

    asio::io_context& io_;
    ServerSet server_;
    ReplicaOptions options_;
    std::weak_ptr<Live> live_;
    std::shared_ptr<IndexHints> hints_;

    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;

    std::unordered_map<std::string, std::string> dn_by_uuid_;  // entryUUID -> normalized DN
    std::unordered_map<std::string, std::string> moved_from_;  // entryUUID -> its DN in copy_, renamed since
    std::vector<Entry> refresh_;                              // during a refresh, in the server's order
    std::unordered_map<std::string, std::size_t> refresh_pos_;  // entryUUID -> place in refresh_
    std::shared_ptr<const LdifSnapshot> copy_;                // the last one published
    std::unordered_map<std::string, std::optional<Entry>> pending_;  // changes since, by normalized DN
    std::vector<std::string> pending_new_;                    // DNs not in copy_, in arrival order
    std::unordered_set<std::string> reborn_;                  // DNs of copy_ that now name a new entry
    bool refreshing_ = false;
    bool in_service_ = false;
    std::uint64_t seq_ = 0;
    std::size_t unfolded_ = 0;
    Clock::time_point first_unfolded_{};
    std::string last_why_;
    Clock::time_point last_log_{};

    Gauge* m_entries_ = nullptr;
    Gauge* m_in_service_ = nullptr;
    Counter* m_changes_ = nullptr;
    Counter* m_refreshes_ = nullptr;
};

// ---- the Directory ----

ReplicaDirectory::ReplicaDirectory(asio::io_context& io, ServerSet server, std::shared_ptr<LdapDirectory> ldap,
                                   ReplicaOptions options, MetricsRegistry* metrics)
    : io_(io), ldap_(std::move(ldap)), options_(std::move(options)) {
    auto norm = normalize_dn(options_.base);
    if (!norm) throw std::runtime_error("ldap_replica_base: invalid DN: " + printable(options_.base, 200));
    base_norm_ = *norm;
    live_ = std::make_shared<Live>();
    if (metrics) {
        Labels served{{"servers", server.describe()}, {"answered", "replica"}};
        Labels passed{{"servers", server.describe()}, {"answered", "server"}};
        m_served_ = &metrics->counter("mailgrid_ldap_replica_searches_total", "Searches under the replicated base", served);
        m_passed_ = &metrics->counter("mailgrid_ldap_replica_searches_total", "Searches under the replicated base", passed);
    }
    syncer_ = std::make_unique<Syncer>(io_, std::move(server), options_, live_, metrics);
}

ReplicaDirectory::~ReplicaDirectory() { shutdown(); }

void ReplicaDirectory::start() {
    if (thread_.joinable()) return;
    thread_ = std::thread([s = syncer_.get()] { s->run(); });
}

void ReplicaDirectory::shutdown() {
    syncer_->stop();
    if (thread_.joinable()) thread_.join();
    live_->drop();
}

std::string ReplicaDirectory::describe() const { return ldap_->describe() + " (replica of " + options_.base + ")"; }

void ReplicaDirectory::expect_filter(std::string_view filter_template) {
    std::string text;
    for (std::size_t i = 0; i < filter_template.size(); ++i) {
        if (filter_template[i] == '%' && i + 1 < filter_template.size()) {
            text += 'x';
            ++i;
        } else {
            text += filter_template[i];
        }
    }
    auto f = parse_filter(text);
    if (!f) return;
    std::vector<std::string> attrs;
    collect_equality(*f, attrs);
    live_->hints->add(attrs);
}

bool ReplicaDirectory::covers(std::string_view replica_base_norm, const SearchRequest& req) {
    for (const auto& a : req.attributes)
        if (operational_attribute(a)) return false;
    auto base = normalize_dn(req.base);
    return base && dn_in_scope(*base, replica_base_norm, -1);
}

bool ReplicaDirectory::covered(const SearchRequest& req) {
    // Tables search with the same base and attributes every time: decide
    // once, not with a DN normalisation and lowercasing on every lookup.
    if (!covered_known_ || req.base != covered_base_ || req.attributes != covered_attributes_) {
        covered_known_ = true;
        covered_base_ = req.base;
        covered_attributes_ = req.attributes;
        covered_ = covers(base_norm_, req);
    }
    return covered_;
}

awaitable<SearchResult> ReplicaDirectory::search(SearchRequest request) {
    if (live_->in_service && covered(request)) {
        if (m_served_) m_served_->inc();
        co_return live_->search(request);
    }
    if (m_passed_) m_passed_->inc();
    co_return co_await ldap_->search(std::move(request));
}

awaitable<BindResult> ReplicaDirectory::bind_check(std::string dn, std::string password,
                                                    std::chrono::milliseconds timeout) {
    co_return co_await ldap_->bind_check(std::move(dn), std::move(password), timeout);
}

}  // namespace mailgrid
