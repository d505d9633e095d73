#include "directory/ldap_directory.hpp"
#include "directory/ldap_sync.hpp"

#include <lber.h>
#include <ldap.h>
#include <sasl/sasl.h>

#include <poll.h>

#include <algorithm>
#include <cstring>

#include "auth/password.hpp"
#include "log/log.hpp"
#include "util/strings.hpp"

namespace mailgrid {

using Clock = std::chrono::steady_clock;

namespace {

const char* kProbeAttrs[] = {"1.1", nullptr};

struct SaslDefaults {
    std::string authcid, passwd, realm, authzid;
};

int sasl_interact(LDAP*, unsigned, void* defaults, void* in) {
    auto* d = static_cast<SaslDefaults*>(defaults);
    for (auto* i = static_cast<sasl_interact_t*>(in); i->id != SASL_CB_LIST_END; ++i) {
        const std::string* v = nullptr;
        switch (i->id) {
            case SASL_CB_AUTHNAME: v = &d->authcid; break;
            case SASL_CB_PASS: v = &d->passwd; break;
            case SASL_CB_GETREALM: v = &d->realm; break;
            case SASL_CB_USER: v = &d->authzid; break;
            default: break;
        }
        i->result = v ? v->c_str() : "";
        i->len = v ? static_cast<unsigned>(v->size()) : 0;
    }
    return LDAP_SUCCESS;
}

struct ConnectOutcome {
    LDAP* ld = nullptr;
    std::string error;
    std::string uri;
};

timeval to_timeval(std::chrono::milliseconds ms) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
    return tv;
}

std::string ldap_error(LDAP* ld, int rc) {
    std::string s = ldap_err2string(rc);
    char* diag = nullptr;
    if (ld && ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag) == LDAP_OPT_SUCCESS && diag) {
        if (*diag) s += std::string(" (") + diag + ")";
        ldap_memfree(diag);
    }
    return s;
}

// Runs on the blocking pool: libldap connects, starts TLS and binds
// synchronously, bounded by the network and operation timeouts.
ConnectOutcome connect_blocking(const ServerSet& s, bool service_bind, const LdapPoolOptions& o) {
    ConnectOutcome out;
    std::string uris;
    for (const auto& u : s.urls) uris += (uris.empty() ? "" : " ") + u;
    LDAP* ld = nullptr;
    int rc = ldap_initialize(&ld, uris.c_str());
    if (rc != LDAP_SUCCESS) {
        out.error = "ldap_initialize(" + uris + "): " + ldap_err2string(rc);
        return out;
    }
    auto fail = [&](const std::string& what, int code) {
        out.error = what + ": " + ldap_error(ld, code);
        ldap_unbind_ext(ld, nullptr, nullptr);
        return out;
    };
    int version = s.version;
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
    auto timeout = std::chrono::milliseconds(std::max(1, s.timeout_seconds) * 1000);
    timeval tv = to_timeval(timeout);
    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
    ldap_set_option(ld, LDAP_OPT_REFERRALS, s.chase_referrals ? LDAP_OPT_ON : LDAP_OPT_OFF);
    int deref = s.dereference;
    ldap_set_option(ld, LDAP_OPT_DEREF, &deref);
    if (o.tcp_keepalive) {
        int idle = 60, probes = 3, interval = 10;
        ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_IDLE, &idle);
        ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_PROBES, &probes);
        ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_INTERVAL, &interval);
    }
    bool tls_opts = false;
    auto set_str = [&](int opt, const std::string& v) {
        if (!v.empty()) {
            ldap_set_option(ld, opt, v.c_str());
            tls_opts = true;
        }
    };
    set_str(LDAP_OPT_X_TLS_CACERTFILE, s.tls_ca_cert_file);
    set_str(LDAP_OPT_X_TLS_CACERTDIR, s.tls_ca_cert_dir);
    set_str(LDAP_OPT_X_TLS_CERTFILE, s.tls_cert);
    set_str(LDAP_OPT_X_TLS_KEYFILE, s.tls_key);
    set_str(LDAP_OPT_X_TLS_RANDOM_FILE, s.tls_random_file);
    set_str(LDAP_OPT_X_TLS_CIPHER_SUITE, s.tls_cipher_suite);
    int req = s.tls_require_cert ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER;
    ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &req);
    (void)tls_opts;
    int newctx = 0;
    ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &newctx);

    if (s.start_tls) {
        rc = ldap_start_tls_s(ld, nullptr, nullptr);
        if (rc != LDAP_SUCCESS) return fail("start_tls", rc);
    }
    if (service_bind && s.bind == BindMode::Simple) {
        berval cred{};
        cred.bv_val = const_cast<char*>(s.bind_pw.c_str());
        cred.bv_len = s.bind_pw.size();
        rc = ldap_sasl_bind_s(ld, s.bind_dn.empty() ? nullptr : s.bind_dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr,
                              nullptr, nullptr);
        if (rc != LDAP_SUCCESS) return fail("bind as " + (s.bind_dn.empty() ? std::string("anonymous") : s.bind_dn), rc);
    } else if (service_bind && s.bind == BindMode::Sasl) {
        SaslDefaults d{s.bind_dn, s.bind_pw, s.sasl_realm, s.sasl_authz_id};
        if (s.sasl_minssf > 0) {
            std::string props = "minssf=" + std::to_string(s.sasl_minssf);
            ldap_set_option(ld, LDAP_OPT_X_SASL_SECPROPS, props.c_str());
        }
        rc = ldap_sasl_interactive_bind_s(ld, nullptr, s.sasl_mechs.empty() ? nullptr : s.sasl_mechs.c_str(), nullptr,
                                          nullptr, LDAP_SASL_QUIET, sasl_interact, &d);
        if (rc != LDAP_SUCCESS) return fail("SASL bind", rc);
    } else {
        rc = ldap_connect(ld);
        if (rc != LDAP_SUCCESS) return fail("connect", rc);
    }
    // A round trip proves the server answers, not just that the kernel
    // accepted the connection.
    LDAPMessage* res = nullptr;
    timeval ptv = to_timeval(timeout);
    rc = ldap_search_ext_s(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", const_cast<char**>(kProbeAttrs), 0, nullptr,
                           nullptr, &ptv, 1, &res);
    if (res) ldap_msgfree(res);
    if (rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR) return fail("probe", rc);
    // libldap reads each message in two small reads (header, then body);
    // a read-ahead layer takes whatever the socket has in one.
    Sockbuf* sb = nullptr;
    if (ldap_get_option(ld, LDAP_OPT_SOCKBUF, &sb) == LDAP_OPT_SUCCESS && sb)
        ber_sockbuf_add_io(sb, &ber_sockbuf_io_readahead, LBER_SBIOD_LEVEL_PROVIDER, nullptr);
    char* uri = nullptr;
    if (ldap_get_option(ld, LDAP_OPT_URI, &uri) == LDAP_OPT_SUCCESS && uri) {
        out.uri = uri;
        ldap_memfree(uri);
    }
    out.ld = ld;
    return out;
}

}  // namespace

LDAP* open_ldap_sync(const ServerSet& servers, std::string* error) {
    auto out = connect_blocking(servers, true, LdapPoolOptions{});
    if (!out.ld && error) *error = out.error;
    return out.ld;
}

std::string ldap_error_text(LDAP* ld, int rc) { return ldap_error(ld, rc); }

Entry read_ldap_entry(LDAP* ld, LDAPMessage* msg) {
    Entry e;
    if (char* dn = ldap_get_dn(ld, msg)) {
        e.dn = dn;
        ldap_memfree(dn);
    }
    BerElement* ber = nullptr;
    for (char* a = ldap_first_attribute(ld, msg, &ber); a; a = ldap_next_attribute(ld, msg, ber)) {
        Attribute attr;
        attr.name = a;
        if (berval** vals = ldap_get_values_len(ld, msg, a)) {
            for (int i = 0; vals[i]; ++i) attr.values.emplace_back(vals[i]->bv_val, vals[i]->bv_len);
            ldap_value_free_len(vals);
        }
        e.attributes.push_back(std::move(attr));
        ldap_memfree(a);
    }
    if (ber) ber_free(ber, 0);
    return e;
}

struct LdapDirectory::Pending {
    explicit Pending(asio::any_io_executor ex) : timer(ex) {}
    asio::steady_timer timer;
    Clock::time_point sent;
    bool done = false;
    bool connection_lost = false;
    SearchResult result;    // for searches
    int bind_code = -1;     // for binds
    std::string bind_error;
};

struct LdapDirectory::Conn {
    std::uint64_t id = 0;
    Pool* pool = nullptr;
    LDAP* ld = nullptr;
    std::unique_ptr<asio::posix::stream_descriptor> sd;
    bool dead = false;
    bool retiring = false;
    std::unordered_map<int, std::shared_ptr<Pending>> pending;
    Clock::time_point created, last_rx, last_tx;
    int probe_msgid = -1;
    Clock::time_point probe_sent;
};

struct LdapDirectory::Pool {
    std::string kind;  // "search" or "bind"
    bool service_bind = true;
    int max_connections = 1;
    int max_pending = 1;
    std::vector<std::shared_ptr<Conn>> conns;
    bool connecting = false;
    Clock::time_point down_until{};
    std::string last_error;
    std::deque<asio::steady_timer*> waiters;
};

LdapDirectory::LdapDirectory(asio::io_context& io, ServerSet server, LdapPoolOptions options, MetricsRegistry* metrics)
    : io_(io), server_(std::move(server)), options_(options) {
    search_pool_ = std::make_unique<Pool>();
    search_pool_->kind = "search";
    search_pool_->max_connections = std::max(1, options_.connections);
    search_pool_->max_pending = std::max(1, options_.max_pending);
    bind_pool_ = std::make_unique<Pool>();
    bind_pool_->kind = "bind";
    bind_pool_->service_bind = false;
    bind_pool_->max_connections = std::max(1, options_.bind_connections);
    bind_pool_->max_pending = 1;  // no other operation may run during a bind
    if (metrics) {
        Labels l{{"servers", server_.describe()}};
        m_connects_ = &metrics->counter("mailgrid_ldap_connects_total", "LDAP connections established", l);
        m_connect_failures_ = &metrics->counter("mailgrid_ldap_connect_failures_total", "Failed LDAP connection attempts", l);
        m_replaced_ = &metrics->counter("mailgrid_ldap_connections_replaced_total",
                                        "LDAP connections dropped after an error, a failed probe or their lifetime", l);
        m_retries_ = &metrics->counter("mailgrid_ldap_retries_total", "Searches sent again after losing a connection", l);
        m_timeouts_ = &metrics->counter("mailgrid_ldap_timeouts_total", "LDAP operations that ran out of time", l);
        m_latency_ = &metrics->histogram("mailgrid_ldap_request_seconds", "LDAP round trip time", l);
    }
    asio::co_spawn(io_, maintenance(), asio::detached);
}

LdapDirectory::~LdapDirectory() { shutdown(); }

void LdapDirectory::shutdown() {
    *alive_ = false;
    for (auto* pool : {search_pool_.get(), bind_pool_.get()}) {
        if (!pool) continue;
        auto conns = pool->conns;
        for (auto& c : conns) kill(*c, "shutdown", true);
        for (auto* w : pool->waiters) w->cancel();
        pool->waiters.clear();
    }
}

std::size_t LdapDirectory::open_connections() const {
    return search_pool_->conns.size() + bind_pool_->conns.size();
}

void LdapDirectory::warn_limited(const std::string& text) {
    auto now = Clock::now();
    if (text == last_warning_text_ && now - last_warning_ < std::chrono::seconds(10)) return;
    last_warning_ = now;
    last_warning_text_ = text;
    log::warning("%s", text.c_str());
}

void LdapDirectory::notify(Pool& pool) {
    auto waiters = std::move(pool.waiters);
    pool.waiters.clear();
    for (auto* w : waiters) w->cancel();
}

awaitable<std::shared_ptr<LdapDirectory::Conn>> LdapDirectory::acquire(Pool& pool, Clock::time_point deadline,
                                                                        std::string& why) {
    auto alive = alive_;
    for (;;) {
        if (!*alive) {
            why = "shutting down";
            co_return nullptr;
        }
        std::shared_ptr<Conn> best;
        for (auto& c : pool.conns) {
            if (c->dead || c->retiring || static_cast<int>(c->pending.size()) >= pool.max_pending) continue;
            if (!best || c->pending.size() < best->pending.size()) best = c;
        }
        bool can_grow = static_cast<int>(pool.conns.size()) < pool.max_connections && !pool.connecting;
        bool grow_wanted = !best || best->pending.size() >= 4;
        if (can_grow && grow_wanted && Clock::now() >= pool.down_until)
            asio::co_spawn(io_, connect(pool), asio::detached);
        if (best) co_return best;
        if (!pool.connecting && Clock::now() < pool.down_until && pool.conns.empty()) {
            why = "LDAP server unavailable: " + pool.last_error;
            co_return nullptr;
        }
        if (Clock::now() >= deadline) {
            why = pool.conns.empty() ? "timed out connecting to LDAP server" : "all LDAP connections busy";
            co_return nullptr;
        }
        asio::steady_timer t(io_);
        t.expires_at(std::min(deadline, Clock::now() + std::chrono::milliseconds(250)));
        pool.waiters.push_back(&t);
        asio::error_code ec;
        co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
        if (!*alive) {
            why = "shutting down";
            co_return nullptr;
        }
        auto it = std::find(pool.waiters.begin(), pool.waiters.end(), &t);
        if (it != pool.waiters.end()) pool.waiters.erase(it);
    }
}

awaitable<void> LdapDirectory::connect(Pool& pool) {
    auto alive = alive_;
    pool.connecting = true;
    auto server = server_;
    bool service_bind = pool.service_bind;
    auto options = options_;
    auto job = [server, service_bind, options]() { return connect_blocking(server, service_bind, options); };
    ConnectOutcome outcome = co_await run_blocking(std::move(job));
    if (!*alive) {
        if (outcome.ld) ldap_unbind_ext(outcome.ld, nullptr, nullptr);
        co_return;
    }
    pool.connecting = false;
    if (!outcome.ld) {
        pool.last_error = outcome.error;
        pool.down_until = Clock::now() + options_.reconnect_delay;
        if (m_connect_failures_) m_connect_failures_->inc();
        warn_limited(server_.describe() + ": " + outcome.error);
        notify(pool);
        co_return;
    }
    int fd = -1;
    if (ldap_get_option(outcome.ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS || fd < 0) {
        ldap_unbind_ext(outcome.ld, nullptr, nullptr);
        pool.last_error = "no socket after connect";
        pool.down_until = Clock::now() + options_.reconnect_delay;
        notify(pool);
        co_return;
    }
    auto conn = std::make_shared<Conn>();
    conn->id = next_id_++;
    conn->pool = &pool;
    conn->ld = outcome.ld;
    conn->sd = std::make_unique<asio::posix::stream_descriptor>(io_, fd);
    conn->created = conn->last_rx = conn->last_tx = Clock::now();
    pool.conns.push_back(conn);
    pool.last_error.clear();
    if (m_connects_) m_connects_->inc();
    log::debug("%s: %s connection %llu ready", server_.describe().c_str(), pool.kind.c_str(),
               static_cast<unsigned long long>(conn->id));
    asio::co_spawn(io_, reader(conn), asio::detached);
    notify(pool);
}

awaitable<void> LdapDirectory::reader(std::shared_ptr<Conn> conn) {
    auto alive = alive_;
    while (!conn->dead) {
        asio::error_code ec;
        co_await conn->sd->async_wait(asio::posix::stream_descriptor::wait_read, asio::redirect_error(use_awaitable, ec));
        if (!*alive || conn->dead) co_return;
        if (ec) {
            kill(*conn, "socket error: " + ec.message());
            co_return;
        }
        drain(*conn);
    }
}

void LdapDirectory::drain(Conn& conn) {
    for (int n = 0; n < 10000 && !conn.dead; ++n) {
        LDAPMessage* msg = nullptr;
        timeval zero{0, 0};
        int rc = ldap_result(conn.ld, LDAP_RES_ANY, LDAP_MSG_ONE, &zero, &msg);
        if (rc == 0) return;
        if (rc < 0) {
            int err = LDAP_SERVER_DOWN;
            ldap_get_option(conn.ld, LDAP_OPT_RESULT_CODE, &err);
            kill(conn, ldap_err2string(err));
            return;
        }
        conn.last_rx = Clock::now();
        handle_message(conn, msg);
        ldap_msgfree(msg);
    }
}

// With nothing else to do, waiting a few tens of microseconds for slapd's
// answer costs less than going to sleep and being woken: at light load
// (one client asking one key at a time, like postmap or one smtpd) this
// takes a wakeup off every lookup. Under load it never spins.
void LdapDirectory::spin_for(Conn& conn, const Pending& p) {
    // Only when the server usually answers within the budget: against a
    // server across the network the spin would just burn the CPU.
    if (options_.spin.count() <= 0 || in_flight_ != 1 || typical_us_ > options_.spin.count()) return;
    int fd = conn.sd->native_handle();
    auto until = Clock::now() + options_.spin;
    while (!p.done && !conn.dead && Clock::now() < until) {
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, 0) > 0) drain(conn);
    }
}

void LdapDirectory::handle_message(Conn& conn, void* m) {
    auto* msg = static_cast<LDAPMessage*>(m);
    int id = ldap_msgid(msg);
    int type = ldap_msgtype(msg);
    if (id == conn.probe_msgid) {
        if (type == LDAP_RES_SEARCH_RESULT) conn.probe_msgid = -1;
        return;
    }
    auto it = conn.pending.find(id);
    if (it == conn.pending.end()) return;  // abandoned after a timeout
    auto& p = *it->second;
    switch (type) {
        case LDAP_RES_SEARCH_ENTRY: {
            Entry e = read_ldap_entry(conn.ld, static_cast<LDAPMessage*>(msg));
            p.result.entries.push_back(std::move(e));
            return;
        }
        case LDAP_RES_SEARCH_REFERENCE: return;
        case LDAP_RES_SEARCH_RESULT: {
            int err = LDAP_OTHER;
            char* text = nullptr;
            ldap_parse_result(conn.ld, msg, &err, nullptr, &text, nullptr, nullptr, 0);
            std::string detail = text && *text ? std::string(" (") + text + ")" : std::string();
            if (text) ldap_memfree(text);
            switch (err) {
                case LDAP_SUCCESS: p.result.code = SearchResult::Code::Ok; break;
                case LDAP_NO_SUCH_OBJECT:
                    p.result.code = SearchResult::Code::NoSuchObject;
                    p.result.error = ldap_err2string(err) + detail;
                    break;
                case LDAP_SIZELIMIT_EXCEEDED:
                    p.result.code = SearchResult::Code::SizeLimit;
                    p.result.error = ldap_err2string(err) + detail;
                    break;
                default:
                    p.result.code = SearchResult::Code::TempFail;
                    p.result.error = ldap_err2string(err) + detail;
            }
            break;
        }
        case LDAP_RES_BIND: {
            int err = LDAP_OTHER;
            char* text = nullptr;
            ldap_parse_result(conn.ld, msg, &err, nullptr, &text, nullptr, nullptr, 0);
            p.bind_code = err;
            p.bind_error = std::string(ldap_err2string(err)) + (text && *text ? std::string(" (") + text + ")" : "");
            if (text) ldap_memfree(text);
            break;
        }
        default: return;
    }
    p.done = true;
    p.timer.cancel();
    auto took = std::chrono::duration<double>(Clock::now() - p.sent).count();
    typical_us_ = 0.9 * typical_us_ + 0.1 * took * 1e6;
    if (m_latency_) m_latency_->observe(took);
    auto keep = it->second;
    conn.pending.erase(it);
    if (conn.pool) notify(*conn.pool);
}

void LdapDirectory::kill(Conn& conn, const std::string& why, bool quiet) {
    if (conn.dead) return;
    conn.dead = true;
    if (!quiet) {
        warn_limited(server_.describe() + ": dropping " + conn.pool->kind + " connection: " + why);
        if (m_replaced_) m_replaced_->inc();
    }
    if (conn.sd) {
        asio::error_code ec;
        conn.sd->cancel(ec);
        conn.sd->release();
    }
    auto pending = std::move(conn.pending);
    conn.pending.clear();
    for (auto& [id, p] : pending) {
        p->connection_lost = true;
        p->timer.cancel();
    }
    if (conn.ld) {
        ldap_unbind_ext(conn.ld, nullptr, nullptr);
        conn.ld = nullptr;
    }
    auto& v = conn.pool->conns;
    v.erase(std::remove_if(v.begin(), v.end(), [&](const auto& c) { return c.get() == &conn; }), v.end());
    notify(*conn.pool);
}

void LdapDirectory::send_probe(Conn& conn) {
    int msgid = -1;
    timeval tv = to_timeval(options_.probe_timeout);
    int rc = ldap_search_ext(conn.ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", const_cast<char**>(kProbeAttrs), 0,
                             nullptr, nullptr, &tv, 1, &msgid);
    if (rc != LDAP_SUCCESS) {
        kill(conn, std::string("probe: ") + ldap_err2string(rc));
        return;
    }
    conn.probe_msgid = msgid;
    conn.probe_sent = conn.last_tx = Clock::now();
}

awaitable<void> LdapDirectory::maintenance() {
    auto alive = alive_;
    const auto tick = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(500), options_.probe_timeout / 2);
    while (*alive) {
        co_await sleep_for(tick);
        if (!*alive) co_return;
        auto now = Clock::now();
        for (auto* pool : {search_pool_.get(), bind_pool_.get()}) {
            auto conns = pool->conns;
            for (auto& c : conns) {
                if (c->dead) continue;
                if (c->probe_msgid >= 0) {
                    if (now - c->probe_sent > options_.probe_timeout)
                        kill(*c, "no answer to a probe within " +
                                     std::to_string(options_.probe_timeout.count()) + " ms");
                    continue;
                }
                if (now - c->created > options_.max_lifetime) c->retiring = true;
                if (c->retiring && c->pending.empty()) {
                    kill(*c, "maximum lifetime reached", true);
                    continue;
                }
                bool idle = c->pending.empty() && now - std::max(c->last_rx, c->last_tx) >= options_.probe_interval;
                bool quiet = false;
                if (!c->pending.empty()) {
                    auto oldest = now;
                    for (auto& [id, p] : c->pending) oldest = std::min(oldest, p->sent);
                    quiet = now - oldest > options_.probe_timeout && c->last_rx < oldest;
                }
                // A bind connection carries one bind at a time; probing it
                // in the middle of one would break that rule.
                if (pool == bind_pool_.get() && !c->pending.empty()) quiet = false;
                if (idle || quiet) send_probe(*c);
            }
        }
    }
}

awaitable<SearchResult> LdapDirectory::search(SearchRequest req) {
    auto alive = alive_;
    auto deadline = Clock::now() + req.timeout;
    std::vector<char*> attrs;
    for (auto& a : req.attributes) attrs.push_back(a.data());
    attrs.push_back(nullptr);
    int scope = req.scope == Scope::Base ? LDAP_SCOPE_BASE : (req.scope == Scope::One ? LDAP_SCOPE_ONELEVEL : LDAP_SCOPE_SUBTREE);
    std::string last_error = "no attempt";
    for (int attempt = 0; attempt < 3; ++attempt) {
        std::string why;
        auto conn = co_await acquire(*search_pool_, deadline, why);
        if (!conn) {
            SearchResult r;
            r.code = SearchResult::Code::TempFail;
            r.error = why;
            co_return r;
        }
        int msgid = -1;
        auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        timeval tv = to_timeval(std::max<std::chrono::milliseconds>(remaining, std::chrono::milliseconds(1000)));
        int rc = ldap_search_ext(conn->ld, req.base.c_str(), scope, req.filter.c_str(),
                                 req.attributes.empty() ? nullptr : attrs.data(), 0, nullptr, nullptr, &tv,
                                 req.size_limit > 0 ? req.size_limit : LDAP_NO_LIMIT, &msgid);
        if (rc != LDAP_SUCCESS) {
            last_error = ldap_err2string(rc);
            if (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR) {
                kill(*conn, last_error);
                if (m_retries_) m_retries_->inc();
                continue;
            }
            SearchResult r;
            r.code = SearchResult::Code::TempFail;
            r.error = "search: " + last_error;
            co_return r;
        }
        auto pending = std::make_shared<Pending>(io_.get_executor());
        pending->sent = conn->last_tx = Clock::now();
        pending->timer.expires_at(deadline);
        conn->pending.emplace(msgid, pending);
        ++in_flight_;
        spin_for(*conn, *pending);
        if (!pending->done) {
            asio::error_code ec;
            co_await pending->timer.async_wait(asio::redirect_error(use_awaitable, ec));
        }
        --in_flight_;
        if (pending->done) co_return std::move(pending->result);
        if (!*alive) co_return SearchResult{SearchResult::Code::TempFail, "shutting down", {}};
        if (pending->connection_lost) {
            last_error = "connection lost";
            if (m_retries_) m_retries_->inc();
            continue;
        }
        // Out of time: abandon it so the server can stop working on it.
        if (!conn->dead) {
            conn->pending.erase(msgid);
            ldap_abandon_ext(conn->ld, msgid, nullptr, nullptr);
        }
        if (m_timeouts_) m_timeouts_->inc();
        SearchResult r;
        r.code = SearchResult::Code::TempFail;
        r.error = "timed out after " + std::to_string(req.timeout.count()) + " ms";
        co_return r;
    }
    SearchResult r;
    r.code = SearchResult::Code::TempFail;
    r.error = last_error;
    co_return r;
}

awaitable<BindResult> LdapDirectory::bind_check(std::string dn, std::string password, std::chrono::milliseconds timeout) {
    if (password.empty()) co_return BindResult{BindOutcome::InvalidCredentials, "empty password"};
    if (dn.empty()) co_return BindResult{BindOutcome::InvalidCredentials, "empty DN"};
    auto alive = alive_;
    auto deadline = Clock::now() + timeout;
    std::string last_error = "no attempt";
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::string why;
        auto conn = co_await acquire(*bind_pool_, deadline, why);
        if (!conn) {
            secure_wipe(password);
            co_return BindResult{BindOutcome::TempFail, why};
        }
        berval cred{};
        cred.bv_val = password.data();
        cred.bv_len = password.size();
        int msgid = -1;
        int rc = ldap_sasl_bind(conn->ld, dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, &msgid);
        if (rc != LDAP_SUCCESS) {
            last_error = ldap_err2string(rc);
            kill(*conn, "bind: " + last_error);
            continue;
        }
        auto pending = std::make_shared<Pending>(io_.get_executor());
        pending->sent = conn->last_tx = Clock::now();
        pending->timer.expires_at(deadline);
        conn->pending.emplace(msgid, pending);
        asio::error_code ec;
        co_await pending->timer.async_wait(asio::redirect_error(use_awaitable, ec));
        if (pending->done) {
            secure_wipe(password);
            if (pending->bind_code == LDAP_SUCCESS) co_return BindResult{BindOutcome::Ok, {}};
            if (pending->bind_code == LDAP_INVALID_CREDENTIALS || pending->bind_code == LDAP_INAPPROPRIATE_AUTH ||
                pending->bind_code == LDAP_INVALID_DN_SYNTAX || pending->bind_code == LDAP_NO_SUCH_OBJECT)
                co_return BindResult{BindOutcome::InvalidCredentials, pending->bind_error};
            co_return BindResult{BindOutcome::TempFail, pending->bind_error};
        }
        if (!*alive) break;
        if (pending->connection_lost) {
            last_error = "connection lost";
            continue;
        }
        // A bind that did not come back leaves the connection in an unknown
        // state: never use it again.
        if (!conn->dead) kill(*conn, "bind timed out", true);
        if (m_timeouts_) m_timeouts_->inc();
        secure_wipe(password);
        co_return BindResult{BindOutcome::TempFail, "bind timed out after " + std::to_string(timeout.count()) + " ms"};
    }
    secure_wipe(password);
    co_return BindResult{BindOutcome::TempFail, last_error};
}

}  // namespace mailgrid
