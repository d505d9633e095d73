#include "locator.hpp"

#include "auth/password.hpp"

#include "log/log.hpp"
#include "util/json.hpp"
#include "util/secure.hpp"
#include "util/strings.hpp"

namespace mailgrid {

const std::vector<ParamSpec>& locator_params() {
    static const std::vector<ParamSpec> specs = {
        {"locator_listen", "127.0.0.1:10080", "where nginx's auth_http and the JSON API are served"},
        {"locator_auth_path", "/auth", "the path in nginx's auth_http URL"},
        {"locator_sources", "",
         "where a user's backend is found, in order: name=/path/ldap_table.cf (the table answers a host name) or "
         "name=mupdate:file:/path | name=mupdate:redis://host:port/db (mupdate_bridge's store), ..."},
        {"locator_backend_map", "", "backend names -> IP address and ports (empty: resolve names, default ports)"},
        {"locator_imap_port", "143", "backend IMAP port unless the backend map says otherwise"},
        {"locator_pop3_port", "110", "backend POP3 port unless the backend map says otherwise"},
        {"locator_smtp_port", "25", "backend SMTP port unless the backend map says otherwise"},
        {"locator_mech", "ldap", "password check: ldap (saslauthd.conf) or ldif:/path/users.ldif"},
        {"locator_saslauthd_conf", "/etc/saslauthd.conf", "how passwords are checked (saslauthd.conf syntax)"},
        {"locator_auth_wait", "3", "seconds nginx waits before letting a client retry after a failure"},
        {"locator_max_attempts", "10", "after this many attempts in one session, answer without Auth-Wait (nginx closes)"},
        {"locator_shared_secret_header", "X-Auth-Key", "header nginx adds with auth_http_header"},
        {"locator_shared_secret", "", "if set, auth_http requests must carry it in locator_shared_secret_header"},
        {"locator_health_ttl", "2s", "how long a backend's reachability is remembered"},
        {"locator_health_timeout", "1s", "connect timeout of the reachability probe"},
        {"locator_smtp_relay", "", "ip:port for SMTP sessions without AUTH (Auth-Method: none); empty = refuse"},
        {"locator_cache", "no", "cache successful password checks"},
        {"locator_cache_ttl", "300s", "how long a successful check is trusted"},
        {"locator_cache_size", "100000", "entries in the credential cache"},
        {"locator_cache_secret", "", "HMAC key of cache entries; needed to share them through Redis"},
        {"locator_join_realm", "no", "not used by nginx (it sends whole logins); as saslauth_join_realm"},
        {"locator_dn_cache_ttl", "10m", "remember which entry a login maps to (bind mode)"},
        {"locator_throttle", "yes", "refuse logins after repeated failures without asking the directory"},
        {"locator_max_account_failures", "10", "failures per account within locator_failure_window"},
        {"locator_max_source_failures", "100", "failures per client address within locator_failure_window"},
        {"locator_failure_window", "15m", "how long failures count"},
        {"locator_max_connections", "10000", "concurrent HTTP connections"},
    };
    return specs;
}

Locator::Locator(asio::io_context& io, const SuiteConfig& config, MetricsRegistry* metrics)
    : io_(io), config_(config), metrics_(metrics) {}

void Locator::load(std::vector<std::string>& warnings) {
    auto pool = DirectoryRegistry::pool_options(config_);
    directories_ = std::make_unique<DirectoryRegistry>(io_, pool, config_.get_duration("ldif_reload_interval"), metrics_,
                                                       DirectoryRegistry::replica_options(config_));
    if (auto ro = RedisOptions::from_config(config_)) redis_ = std::make_unique<RedisClient>(io_, *ro);

    CacheSetup cache;
    cache.enabled = true;
    cache.policy = CachePolicy::from_config(config_);
    cache.redis = redis_.get();
    cache.redis_prefix = config_.get("redis_prefix");
    for (const auto& item : config_.get_list("locator_sources")) {
        auto eq = item.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
            config_.fail("locator_sources", "expected name=/path/to/ldap_table.cf, got \"" + item + "\"");
        std::string name = item.substr(0, eq), file = item.substr(eq + 1);
        if (file.rfind("mupdate:", 0) == 0) {
            // The bridge's own store: an LMDB read or one HGET, no cache needed.
            try {
                sources_.push_back({name, nullptr, location::LocationStore::open(io_, file.substr(8), &config_)});
            } catch (const std::exception& e) {
                config_.fail("locator_sources", name + ": " + e.what());
            }
            continue;
        }
        auto cfg = LdapTableConfig::load(file);
        for (const auto& w : cfg.warnings) warnings.push_back(w);
        auto dir = directories_->for_table(cfg);
        auto table = std::make_unique<LdapTable>(name, std::move(cfg), dir);
        TableOptions opts;
        opts.style = LookupStyle::Exact;
        sources_.push_back({name,
                            std::make_unique<TableService>("locate_" + name, std::move(table), opts, cache, metrics_),
                            nullptr});
    }
    if (sources_.empty()) warnings.push_back("locator_sources is empty: no user can be located");

    BackendPorts ports;
    ports.imap = static_cast<int>(config_.get_int("locator_imap_port", 1, 65535));
    ports.pop3 = static_cast<int>(config_.get_int("locator_pop3_port", 1, 65535));
    ports.smtp = static_cast<int>(config_.get_int("locator_smtp_port", 1, 65535));
    auto map = config_.get("locator_backend_map");
    backends_ = map.empty() ? BackendMap::empty(ports) : BackendMap::load(map, ports);
    probe_ = std::make_unique<HealthProbe>(config_.get_duration("locator_health_ttl"),
                                           config_.get_duration("locator_health_timeout"));

    SaslauthdConf sconf;
    std::shared_ptr<Directory> dir;
    auto mech = config_.get("locator_mech");
    if (to_lower(mech).rfind("ldif:", 0) == 0) {
        if (config_.has("locator_saslauthd_conf")) sconf = SaslauthdConf::load(config_.get("locator_saslauthd_conf"));
        dir = directories_->ldif(mech.substr(5));
    } else if (to_lower(mech) == "ldap") {
        sconf = SaslauthdConf::load(config_.get("locator_saslauthd_conf"));
        dir = directories_->ldap(sconf.server, sconf.filter);
    } else {
        config_.fail("locator_mech", "unsupported mechanism \"" + mech + "\" (ldap or ldif:FILE)");
    }
    auto options = CheckerOptions::from_config(config_, "locator_");
    checker_ = std::make_unique<PasswordChecker>(sconf, dir, options, metrics_, redis_.get(), "mailgrid_locator");

    auth_path_ = config_.get("locator_auth_path");
    secret_header_ = config_.get("locator_shared_secret_header");
    secret_ = config_.get("locator_shared_secret");
    auth_wait_seconds_ = static_cast<int>(config_.get_int("locator_auth_wait", 0, 3600));
    max_attempts_ = static_cast<int>(config_.get_int("locator_max_attempts", 1, 1000));
    smtp_relay_ = config_.get("locator_smtp_relay");
    if (metrics_) {
        const char* h = "auth_http answers by result";
        m_ok_ = &metrics_->counter("mailgrid_locator_auth_http_total", h, {{"result", "ok"}});
        m_invalid_ = &metrics_->counter("mailgrid_locator_auth_http_total", h, {{"result", "invalid"}});
        m_tempfail_ = &metrics_->counter("mailgrid_locator_auth_http_total", h, {{"result", "tempfail"}});
        m_down_ = &metrics_->counter("mailgrid_locator_auth_http_total", h, {{"result", "backend_down"}});
    }
}

awaitable<Location> Locator::locate(const std::string& user) {
    Location loc;
    for (auto& s : sources_) {
        // (Not "hit ? *hit : co_await ...": GCC 12 miscompiles co_await
        // inside a conditional expression.)
        Lookup r;
        if (s.store) r = co_await s.store->lookup(user);
        else if (const Lookup* hit = s.table->cached(user)) r = *hit;
        else r = co_await s.table->lookup(user);
        if (r.status == Status::NotFound) continue;
        if (r.status != Status::Found) {
            // A source that cannot answer must not let a later one guess:
            // the user's mail may be exactly where it would not look.
            loc.status = Status::TempFail;
            loc.reason = s.name + ": " + r.value;
            co_return loc;
        }
        auto comma = r.value.find(',');
        loc.host = std::string(trim(std::string_view(r.value).substr(0, comma)));
        loc.source = s.name;
        // A maildrop value "user@host" names the host after the '@'; a
        // Cyrus servername may carry ":port" (the backend map has the ports).
        if (auto at = loc.host.rfind('@'); at != std::string::npos) loc.host = loc.host.substr(at + 1);
        if (s.store) loc.host = loc.host.substr(0, loc.host.find(':'));
        loc.backend = co_await backends_->find(loc.host);
        if (!loc.backend) {
            loc.status = Status::TempFail;
            loc.reason = "cannot resolve backend " + loc.host;
            co_return loc;
        }
        loc.status = Status::Found;
        co_return loc;
    }
    co_return loc;
}

http::Response Locator::auth_reply(const std::string& status, bool wait, const std::string& error_code) {
    http::Response r;
    r.content_type.clear();
    r.headers.emplace_back("Auth-Status", status);
    if (!error_code.empty()) r.headers.emplace_back("Auth-Error-Code", error_code);
    if (wait && auth_wait_seconds_ > 0) r.headers.emplace_back("Auth-Wait", std::to_string(auth_wait_seconds_));
    return r;
}

awaitable<http::Response> Locator::auth_http(const http::Request& req) {
    if (!secret_.empty() && !constant_time_equal(req.header(secret_header_), secret_)) {
        log::warning("auth_http request without the shared secret (%s)", secret_header_.c_str());
        if (m_invalid_) m_invalid_->inc();
        co_return auth_reply("Invalid login or password", false);
    }
    auto method = to_lower(req.header("Auth-Method"));
    auto protocol = to_lower(req.header("Auth-Protocol"));
    auto attempt = parse_int(req.header("Auth-Login-Attempt")).value_or(1);
    bool may_wait = attempt < max_attempts_;
    std::string client = req.header("Client-IP");

    if (protocol != "imap" && protocol != "pop3" && protocol != "smtp") {
        if (m_invalid_) m_invalid_->inc();
        co_return auth_reply("Unsupported protocol", false);
    }
    if (method == "none") {
        // SMTP without AUTH: nginx still needs a server to proxy to.
        if (protocol != "smtp" || smtp_relay_.empty()) co_return auth_reply("Authentication required", false, "530 5.7.0");
        auto colon = smtp_relay_.rfind(':');
        http::Response r = auth_reply("OK", false);
        r.headers = {{"Auth-Status", "OK"}, {"Auth-Server", smtp_relay_.substr(0, colon)},
                     {"Auth-Port", smtp_relay_.substr(colon + 1)}};
        co_return r;
    }
    if (method != "plain" && method != "login") {
        if (m_invalid_) m_invalid_->inc();
        co_return auth_reply("Unsupported authentication method", false, "504 5.5.4");
    }

    AuthRequest a;
    a.login = http::percent_decode(req.header("Auth-User"));
    std::string raw_pass = req.header("Auth-Pass");
    a.password = http::percent_decode(raw_pass);
    secure_wipe(raw_pass);
    a.service = protocol == "pop3" ? "pop" : protocol;
    a.client_addr = client;
    std::string user = a.login;
    auto result = co_await checker_->check(std::move(a));
    switch (result.outcome) {
        case AuthOutcome::Rejected:
        case AuthOutcome::Throttled:
            if (m_invalid_) m_invalid_->inc();
            co_return auth_reply("Invalid login or password", may_wait, "535 5.7.8");
        case AuthOutcome::TempFail:
            if (m_tempfail_) m_tempfail_->inc();
            co_return auth_reply("Temporary server problem, try again later", may_wait, "451 4.3.0");
        case AuthOutcome::Ok: break;
    }
    auto loc = co_await locate(user);
    if (loc.status != Status::Found) {
        if (m_tempfail_) m_tempfail_->inc();
        log::warning("cannot locate the mailbox of %s: %s", printable(user, 100).c_str(),
                     loc.status == Status::NotFound ? "no source knows the user" : loc.reason.c_str());
        co_return auth_reply("Temporary server problem, try again later", may_wait, "451 4.3.0");
    }
    int port = loc.backend->ports.for_protocol(protocol);
    if (!co_await probe_->up(loc.backend->address, port)) {
        if (m_down_) m_down_->inc();
        log::warning("backend %s (%s:%d) of %s is down", loc.host.c_str(), loc.backend->address.c_str(), port,
                     printable(user, 100).c_str());
        co_return auth_reply("Temporary server problem, try again later", may_wait, "451 4.3.0");
    }
    if (m_ok_) m_ok_->inc();
    log::debug("%s: %s -> %s (%s:%d) from %s", protocol.c_str(), printable(user, 100).c_str(), loc.host.c_str(),
               loc.backend->address.c_str(), port, loc.source.c_str());
    http::Response r;
    r.content_type.clear();
    r.headers = {{"Auth-Status", "OK"}, {"Auth-Server", loc.backend->address}, {"Auth-Port", std::to_string(port)}};
    co_return r;
}

namespace {
}  // namespace

awaitable<http::Response> Locator::locate_json(const std::string& user) {
    http::Response r;
    r.content_type = "application/json";
    auto loc = co_await locate(user);
    if (loc.status == Status::NotFound) {
        r.status = 404;
        r.body = "{\"user\":" + json_string(user) + ",\"error\":\"unknown user\"}\n";
        co_return r;
    }
    if (loc.status != Status::Found) {
        r.status = 503;
        r.body = "{\"user\":" + json_string(user) + ",\"error\":" + json_string(loc.reason) + "}\n";
        co_return r;
    }
    const auto& b = *loc.backend;
    r.body = "{\"user\":" + json_string(user) + ",\"backend\":" + json_string(loc.host) +
             ",\"address\":" + json_string(b.address) + ",\"ports\":{\"imap\":" + std::to_string(b.ports.imap) +
             ",\"pop3\":" + std::to_string(b.ports.pop3) + ",\"smtp\":" + std::to_string(b.ports.smtp) +
             "},\"source\":" + json_string(loc.source) + "}\n";
    co_return r;
}

awaitable<http::Response> Locator::handle(const http::Request& req) {
    auto path = req.path();
    if (path == auth_path_) co_return co_await auth_http(req);
    if (path.rfind("/v1/locate/", 0) == 0) co_return co_await locate_json(http::percent_decode(path.substr(11)));
    http::Response r;
    if (path == "/healthz") {
        r.body = "ok\n";
        co_return r;
    }
    if (path == "/metrics" && metrics_) {
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = metrics_->render();
        co_return r;
    }
    r.status = 404;
    r.body = "not found\n";
    co_return r;
}

}  // namespace mailgrid
