// bridge - the MUPDATE master's state, group commit and followers (see
// bridge.hpp); the per-connection protocol is in session.cpp.
#include "bridge.hpp"

#include <openssl/rand.h>
#include <unistd.h>

#include "follow.hpp"
#include "log/log.hpp"
#include "publish.hpp"
#include "util/secure.hpp"
#include "util/strings.hpp"

namespace mailgrid::bridge {

using location::Change;
using location::CommitResult;

const std::vector<ParamSpec>& bridge_params() {
    static const std::vector<ParamSpec> specs = {
        {"mupdate_listen", "0.0.0.0:3905", "where backends and frontends connect (MUPDATE, RFC 3656)"},
        {"mupdate_servername", "", "name in the banner and the SASL server name (default: this host's name)"},
        {"mupdate_store", "file:/var/lib/mailgrid/mupdate", "where the list lives: file:/path (LMDB) or redis://host:port/db"},
        {"mupdate_store_sync", "yes", "file store: fsync every commit (no: survives a crash of the bridge, not of the machine)"},
        {"mupdate_store_map_size", "8G", "file store: largest size the LMDB file may grow to"},
        {"mupdate_redis_log_length", "1000000", "redis store: change log entries kept for the other bridges"},
        {"mupdate_redis_wait_replicas", "0", "redis store: after each commit wait until this many replicas have it"},
        {"mupdate_writers", "mupdate", "SASL identities that may change the list: identity or identity=servername"},
        {"mupdate_readers", "", "SASL identities that may only read (FIND, LIST, UPDATE)"},
        {"mupdate_sasl_pwcheck_method", "saslauthd", "libsasl2 pwcheck_method: saslauthd or auxprop"},
        {"mupdate_sasl_mech_list", "PLAIN", "SASL mechanisms offered (no security layer is ever negotiated)"},
        {"mupdate_sasl_saslauthd_path", "/var/run/saslauthd/mux", "the saslauthd socket (sasl_ldap_auth's or saslauthd's)"},
        {"mupdate_sasl_auxprop_plugin", "", "libsasl2 auxprop_plugin, e.g. sasldb"},
        {"mupdate_sasl_sasldb_path", "", "libsasl2 sasldb_path (empty: /etc/sasldb2)"},
        {"mupdate_sasl_realm", "", "SASL user realm (empty: sasldb uses mupdate_servername)"},
        {"mupdate_plaintext_auth", "yes", "offer PLAIN and LOGIN without TLS (Cyrus: allowplaintext)"},
        {"mupdate_tls_cert_file", "", "certificate chain (PEM) for STARTTLS; empty: no STARTTLS"},
        {"mupdate_tls_key_file", "", "private key (PEM) for STARTTLS"},
        {"mupdate_auth_cache_ttl", "60s", "remember a successful PLAIN login this long (0: ask libsasl2 every time)"},
        {"mupdate_auth_fail_delay", "1s", "wait before answering a failed authentication"},
        {"mupdate_max_connections", "20000", "connections served at once (Cyrus's master stops at 128)"},
        {"mupdate_idle_timeout", "30m", "close a connection silent this long (followers NOOP every 20s)"},
        {"mupdate_push_max_delete", "10%", "a push (ctl_mboxlist -m) may delete at most this share of the server's mailboxes"},
        {"mupdate_push_delete_floor", "10", "... but always at least this many"},
        {"mupdate_commit_max_batch", "10000", "most changes written in one store transaction"},
        {"mupdate_follow", "", "host:port of a Cyrus mupdate master to mirror (read-only); empty: be the master"},
        {"mupdate_follow_user", "mupdate", "SASL PLAIN user for mupdate_follow"},
        {"mupdate_follow_password", "", "its password"},
        {"mupdate_follow_password_file", "", "or a file holding it"},
        {"mupdate_follow_authzid", "", "SASL authorization id for mupdate_follow (empty: none)"},
        {"mupdate_follow_noop_interval", "20s", "NOOP to the followed master this often; no answer by the next one: reconnect"},
        {"mupdate_follow_retry", "5s", "wait this long before reconnecting to the followed master"},
        {"mupdate_publish_ldif", "", "write the user -> backend map to this LDIF file (empty: off)"},
        {"mupdate_publish_ldif_base", "ou=mailboxes,dc=mupdate", "the DN below which the LDIF entries are"},
        {"mupdate_publish_interval", "2s", "write the LDIF at most this often"},
        {"mupdate_socketmap", "", "answer socketmap lookups of the user -> backend map here (empty: off)"},
        {"mupdate_metrics", "", "Prometheus /metrics and /healthz on this address (empty: off)"},
    };
    return specs;
}

struct Bridge::Waiter {
    explicit Waiter(asio::any_io_executor ex) : timer(ex) {}
    asio::steady_timer timer;
    std::size_t offset = 0, count = 0;
    CommitResult result;
    bool done = false;
};

Bridge::Bridge(asio::io_context& io, const SuiteConfig& config, MetricsRegistry* metrics)
    : io_(io), config_(config), metrics_(metrics) {
    static MetricsRegistry unused;
    MetricsRegistry& r = metrics ? *metrics : unused;
    m_.mailboxes = &r.gauge("mupdate_mailboxes", "mailboxes in the list (active and reserved)");
    m_.active = &r.gauge("mupdate_mailboxes_active", "active mailboxes in the list");
    m_.followers = &r.gauge("mupdate_followers", "clients following the list with UPDATE");
    m_.sessions = &r.gauge("mupdate_connections", "open MUPDATE connections");
    m_.commits = &r.counter("mupdate_commits_total", "store transactions");
    m_.committed_changes = &r.counter("mupdate_committed_changes_total", "mailbox changes written to the store");
    m_.commit_failures = &r.counter("mupdate_commit_failures_total", "store transactions that failed");
    m_.commit_seconds = &r.histogram("mupdate_commit_seconds", "time of one store transaction");
    m_.find_seconds = &r.histogram("mupdate_command_seconds", "time to answer a command", {{"command", "find"}});
    m_.list_seconds = &r.histogram("mupdate_command_seconds", "time to answer a command", {{"command", "list"}});
    m_.write_seconds = &r.histogram("mupdate_command_seconds", "time to answer a command", {{"command", "write"}});
    m_.stream_delay = &r.histogram("mupdate_stream_delay_seconds", "from a commit to the change written to a follower");
    m_.sync_seconds = &r.histogram("mupdate_update_sync_seconds", "a new follower's initial list");
    for (Op op : {Op::Activate, Op::Reserve, Op::Deactivate, Op::Delete})
        m_.updates[op] = &r.counter("mupdate_updates_total", "changes accepted", {{"op", to_lower(op_name(op))}});
    for (const char* why : {"conflict", "policy", "push_guard", "read_only", "invalid", "store"})
        m_.refused[why] = &r.counter("mupdate_refused_total", "writes refused", {{"reason", why}});
    for (const char* res : {"ok", "cached", "fail", "unauthorized"})
        m_.auth[res] = &r.counter("mupdate_auth_total", "authentications", {{"result", res}});
    m_.bad_commands = &r.counter("mupdate_bad_commands_total", "malformed or unknown commands");
}

Bridge::~Bridge() = default;

Counter& Bridge::refused(const std::string& why) { return *m_.refused.at(why); }

namespace {

double parse_share(const SuiteConfig& c, const char* name) {
    std::string v(trim(c.get(name)));
    bool percent = !v.empty() && v.back() == '%';
    if (percent) v.pop_back();
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || !end || *end != '\0' || d < 0) c.fail(name, "expected a share like 10% or 0.1");
    if (percent) d /= 100.0;
    if (d > 1.0) c.fail(name, "a share is at most 100%");
    return d;
}

std::string host_name() {
    char buf[256] = {0};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
    return buf;
}

}  // namespace

void Bridge::configure(std::vector<std::string>& warnings) {
    listen_ = config_.get("mupdate_listen");
    std::string err;
    if (!ListenSpec::parse(listen_, &err)) config_.fail("mupdate_listen", err);
    servername_ = config_.get("mupdate_servername");
    if (servername_.empty()) servername_ = host_name();

    store_options_.spec = config_.get("mupdate_store");
    store_options_.sync = config_.get_bool("mupdate_store_sync");
    store_options_.map_size = config_.get_size("mupdate_store_map_size");
    if (store_options_.map_size < (16u << 20)) config_.fail("mupdate_store_map_size", "at least 16M");
    store_options_.log_length = static_cast<std::size_t>(config_.get_int("mupdate_redis_log_length", 1000));
    store_options_.wait_replicas = static_cast<int>(config_.get_int("mupdate_redis_wait_replicas", 0, 100));
    try {
        (void)location::parse_store_spec(store_options_.spec, &config_);
    } catch (const std::exception& e) {
        config_.fail("mupdate_store", e.what());
    }

    try {
        identities_ = parse_identities(config_.get_list("mupdate_writers"), config_.get_list("mupdate_readers"));
    } catch (const std::exception& e) {
        config_.fail("mupdate_writers", e.what());
    }
    bool any_writer = false;
    for (const auto& [id, w] : identities_) any_writer |= w.may_write;
    if (!any_writer && config_.get("mupdate_follow").empty())
        warnings.push_back("mupdate_writers is empty: no backend can change the list");

    sasl_options_.service = "mupdate";
    sasl_options_.server_fqdn = servername_;
    sasl_options_.realm = config_.get("mupdate_sasl_realm");
    for (const char* opt : {"pwcheck_method", "mech_list", "saslauthd_path", "auxprop_plugin", "sasldb_path"}) {
        auto v = config_.get(std::string("mupdate_sasl_") + opt);
        if (!v.empty()) sasl_options_.options[opt] = v;
    }
    for (const auto& mech : config_.get_list("mupdate_sasl_mech_list")) {
        auto m = to_lower(mech);
        if (m == "digest-md5" || m == "gssapi" || m == "gs2-krb5" || m == "otp")
            warnings.push_back("mupdate_sasl_mech_list: " + mech +
                               " can negotiate a security layer; it is offered without one, which some clients refuse");
    }
    plaintext_auth_ = config_.get_bool("mupdate_plaintext_auth");
    auto cert = config_.get("mupdate_tls_cert_file"), key = config_.get("mupdate_tls_key_file");
    if (!cert.empty() || !key.empty()) {
        if (cert.empty() || key.empty()) config_.fail("mupdate_tls_cert_file", "STARTTLS needs both a certificate and a key");
        try {
            tls_ctx_ = make_tls_context(cert, key);
        } catch (const std::exception& e) {
            config_.fail("mupdate_tls_cert_file", e.what());
        }
    }
    if (!plaintext_auth_ && !tls_ctx_)
        warnings.push_back("mupdate_plaintext_auth = no without a TLS certificate: PLAIN is never offered");
    auth_cache_ttl_ = config_.get_duration("mupdate_auth_cache_ttl");
    auth_fail_delay_ = config_.get_duration("mupdate_auth_fail_delay");
    max_connections_ = static_cast<std::size_t>(config_.get_int("mupdate_max_connections", 1, 10000000));
    idle_timeout_ = config_.get_duration("mupdate_idle_timeout");
    if (idle_timeout_ < std::chrono::minutes(1))
        warnings.push_back("mupdate_idle_timeout under a minute: followers that NOOP every 20s may be cut off");
    push_max_share_ = parse_share(config_, "mupdate_push_max_delete");
    push_floor_ = static_cast<std::size_t>(config_.get_int("mupdate_push_delete_floor", 0));
    max_batch_ = static_cast<std::size_t>(config_.get_int("mupdate_commit_max_batch", 1, 1000000));
    follow_ = config_.get("mupdate_follow");
    if (!follow_.empty()) {
        if (!ListenSpec::parse(follow_, &err) || follow_.find(':') == std::string::npos)
            config_.fail("mupdate_follow", "expected host:port");
        upstream_ = std::make_unique<Upstream>(io_, *this, config_);
    }
    publisher_ = std::make_unique<Publisher>(io_, *this, config_, metrics_);
}

awaitable<bool> Bridge::start() {
    try {
        store_ = location::open_store(io_, store_options_, &config_);
    } catch (const std::exception& e) {
        log::error("mupdate_store %s: %s", store_options_.spec.c_str(), e.what());
        co_return false;
    }
    auto t0 = std::chrono::steady_clock::now();
    auto loaded = co_await store_->load(list_);
    if (loaded.status != Status::Found) {
        log::error("cannot load the mailbox list from %s: %s", store_->describe().c_str(), loaded.value.c_str());
        co_return false;
    }
    if (!loaded.value.empty()) log::warning("%s: %s", store_->describe().c_str(), loaded.value.c_str());
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log::info("loaded %zu mailboxes (%zu active) from %s in %.2fs", list_.size(), list_.active(),
              store_->describe().c_str(), secs);
    update_gauges();

    try {
        sasl_ = std::make_unique<SaslServer>(sasl_options_);
    } catch (const std::exception& e) {
        log::error("%s", e.what());
        co_return false;
    }
    mechs_tls_ = sasl_->mechanisms(true);
    mechs_plain_ = plaintext_auth_ ? mechs_tls_ : sasl_->mechanisms(false);
    if (mechs_tls_.empty()) log::warning("libsasl2 offers no mechanism: check mupdate_sasl_mech_list and its plugins");
    std::string key(32, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), 32) != 1) {
        log::error("RAND_bytes failed: cannot key the login cache");
        co_return false;
    }
    login_cache_mac_.emplace(key);
    secure_wipe(key);

    store_->watch(
        [this](std::vector<Change> changes) {
            auto job = apply_external(std::move(changes), false);
            asio::co_spawn(io_, std::move(job), asio::detached);
        },
        [this]() {
            if (resyncing_) return;
            resyncing_ = true;
            auto job = [](Bridge* b) -> awaitable<void> {
                location::MailboxList fresh;
                for (;;) {
                    auto r = co_await b->store_->load(fresh);
                    if (r.status == Status::Found) break;
                    log::warning("reloading the list from %s: %s", b->store_->describe().c_str(), r.value.c_str());
                    co_await sleep_for(std::chrono::seconds(2));
                }
                co_await b->replace_all(std::move(fresh), "the store's change log had a gap", false);
                b->resyncing_ = false;
            };
            asio::co_spawn(io_, job(this), asio::detached);
        });
    publisher_->start();
    if (upstream_) upstream_->start();
    co_return true;
}

void Bridge::listen(Server& server) {
    ServiceOptions opt;
    opt.name = "mupdate";
    opt.max_connections = max_connections_;
    opt.idle_timeout = idle_timeout_;
    opt.max_buffer = 1 << 20;
    auto spec = ListenSpec::parse(listen_);
    server.listen(*spec, opt, [this](Connection& c) { return serve(c); });
    publisher_->listen(server);
}

void Bridge::stop() {
    if (store_) store_->stop();
    if (upstream_) upstream_->stop();
    if (publisher_) publisher_->stop();
    for (auto& f : followers_) {
        f->closed = true;
        f->wake.cancel();
    }
}

void Bridge::update_gauges() {
    m_.mailboxes->set(static_cast<double>(list_.size()));
    m_.active->set(static_cast<double>(list_.active()));
    m_.followers->set(static_cast<double>(followers_.size()));
}

awaitable<CommitResult> Bridge::commit(std::vector<Change> changes) {
    auto w = std::make_shared<Waiter>(io_.get_executor());
    w->timer.expires_at(std::chrono::steady_clock::time_point::max());
    w->offset = queue_.size();
    w->count = changes.size();
    for (auto& c : changes) queue_.push_back(std::move(c));
    queue_waiters_.push_back(w);
    if (!committing_) {
        committing_ = true;
        asio::co_spawn(io_, commit_loop(), asio::detached);
    }
    while (!w->done) {
        asio::error_code ec;
        co_await w->timer.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    co_return std::move(w->result);
}

void Bridge::rollback(std::vector<Change>& changes) {
    for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
        if (it->expected) list_.set(it->name, *it->expected);
        else list_.erase(it->name);
        // What followers now need is the state before the change.
        std::swap(it->value, it->expected);
    }
}

awaitable<void> Bridge::commit_loop() {
    while (!queue_.empty() || !queue_waiters_.empty()) {
        // Whole waiters only, up to the batch limit (one waiter may be
        // larger than the limit on its own).
        std::size_t take = 0, n = 0;
        while (take < queue_waiters_.size() && (take == 0 || n + queue_waiters_[take]->count <= max_batch_)) {
            n += queue_waiters_[take]->count;
            ++take;
        }
        std::vector<Change> batch(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(n)));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
        std::vector<std::shared_ptr<Waiter>> waiters(queue_waiters_.begin(), queue_waiters_.begin() + static_cast<std::ptrdiff_t>(take));
        queue_waiters_.erase(queue_waiters_.begin(), queue_waiters_.begin() + static_cast<std::ptrdiff_t>(take));
        for (auto& w : queue_waiters_) w->offset -= n;

        CommitResult r;
        if (!batch.empty()) {
            auto t0 = std::chrono::steady_clock::now();
            r = co_await store_->commit(batch);
            m_.commit_seconds->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        } else {
            r.ok = true;
        }
        if (!r.ok) {
            m_.commit_failures->inc();
            // Nothing that is not stored may stay visible: take back this
            // batch and everything queued behind it, newest first.
            std::vector<Change> lost = std::move(queue_);
            queue_.clear();
            for (auto& w : queue_waiters_) waiters.push_back(w);
            queue_waiters_.clear();
            rollback(lost);
            rollback(batch);
            log::error("store %s: %s: %zu change(s) not stored and taken back", store_->describe().c_str(),
                       r.error.c_str(), batch.size() + lost.size());
            refused("store").inc(batch.size() + lost.size());
            for (auto& w : waiters) {
                w->result.ok = false;
                w->result.error = r.error;
                w->done = true;
                w->timer.cancel();
            }
            notify(batch);
            notify(lost);
            update_gauges();
            continue;
        }
        m_.commits->inc();
        m_.committed_changes->inc(batch.size());
        for (auto& [idx, current] : r.conflicts) {
            auto& c = batch[idx];
            log::warning("%s was changed by another bridge; this change to it is refused", printable(c.name).c_str());
            if (current) list_.set(c.name, *current);
            else list_.erase(c.name);
            c.value = current;
            refused("conflict").inc();
        }
        for (auto& w : waiters) {
            w->result.ok = true;
            for (auto& [idx, current] : r.conflicts)
                if (idx >= w->offset && idx < w->offset + w->count) w->result.conflicts.emplace_back(idx - w->offset, current);
            w->done = true;
            w->timer.cancel();
        }
        notify(batch);
        update_gauges();
    }
    committing_ = false;
}

void Bridge::notify(const std::vector<Change>& changes) {
    for (const auto& c : changes) {
        std::string_view old_server = c.expected ? location::location_server(c.expected->location) : std::string_view();
        std::string_view new_server = c.value ? location::location_server(c.value->location) : std::string_view();
        notify_name(c.name, old_server, new_server);
        publisher_->changed(c);
    }
}

void Bridge::notify_name(const std::string& name, std::string_view old_server, std::string_view new_server) {
    for (const auto& f : followers_) {
        if (f->closed) continue;
        if (f->hosts && !f->hosts->count(std::string(old_server)) && !f->hosts->count(std::string(new_server))) continue;
        if (!f->pending_set.insert(name).second) continue;
        if (f->pending.empty()) f->first_pending = std::chrono::steady_clock::now();
        f->pending.push_back(name);
        f->wake.cancel();
    }
}

awaitable<bool> Bridge::apply_external(std::vector<Change> changes, bool write) {
    for (auto& c : changes) {
        const auto* cur = list_.find(c.name);
        c.expected = cur ? std::optional<location::Mailbox>(*cur) : std::nullopt;
        if (c.value) list_.set(c.name, *c.value);
        else list_.erase(c.name);
    }
    if (write) {
        auto r = co_await commit(std::move(changes));
        co_return r.ok;
    }
    notify(changes);
    update_gauges();
    co_return true;
}

awaitable<bool> Bridge::replace_all(location::MailboxList fresh, const std::string& why, bool write) {
    std::vector<Change> changes;
    std::size_t deletes = 0;
    std::string after;
    while (list_.visit(after, "", nullptr, 1u << 30, [&](const std::string& name, const location::Mailbox& m) {
        if (!fresh.find(name)) {
            changes.push_back(Change{name, std::nullopt, m});
            ++deletes;
        }
    })) {
    }
    after.clear();
    while (fresh.visit(after, "", nullptr, 1u << 30, [&](const std::string& name, const location::Mailbox& m) {
        const auto* cur = list_.find(name);
        if (!cur || !(*cur == m)) changes.push_back(Change{name, m, std::nullopt});
    })) {
    }
    std::size_t limit = std::max(push_floor_, static_cast<std::size_t>(push_max_share_ * static_cast<double>(list_.size())));
    if (deletes > limit && list_.size() > 0) {
        log::error("%s: the new list would drop %zu of %zu mailboxes (more than mupdate_push_max_delete); not applied, "
                   "still serving the list as it was",
                   why.c_str(), deletes, list_.size());
        co_return false;
    }
    log::info("%s: %zu change(s) (%zu deleted) to bring the list in step", why.c_str(), changes.size(), deletes);
    if (changes.empty()) co_return true;
    // Large replacements go in slices, so commits stay bounded and
    // followers start receiving early.
    const std::size_t slice = std::max<std::size_t>(max_batch_, 1);
    for (std::size_t i = 0; i < changes.size(); i += slice) {
        std::vector<Change> part(std::make_move_iterator(changes.begin() + static_cast<std::ptrdiff_t>(i)),
                                 std::make_move_iterator(changes.begin() + static_cast<std::ptrdiff_t>(std::min(changes.size(), i + slice))));
        if (!co_await apply_external(std::move(part), write)) co_return false;
    }
    co_return true;
}

}  // namespace mailgrid::bridge
