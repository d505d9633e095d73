#include "daemon/daemon.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/types.h>
#include <sysexits.h>
#include <unistd.h>

#include <csignal>
#include <iostream>

#include "log/log.hpp"
#include "net/http.hpp"

namespace mailgrid {

void add_common_options(CLI::App& app, CommonOptions& o) {
    app.add_option("-c,--config", o.config_path, "mailgrid.cf to read")->capture_default_str();
    app.add_option("-o", o.overrides, "override a parameter: -o name=value")->take_all();
    app.add_flag("-f,--foreground", o.foreground, "stay in the foreground and log to stderr");
    app.add_flag("-v,--verbose", o.verbose, "more logging (repeat for more)");
    app.add_flag("--check", o.check, "validate the configuration and exit");
    app.add_flag("--show", o.show, "print the effective parameters and exit");
}

const std::vector<ParamSpec>& common_params() {
    static const std::vector<ParamSpec> specs = {
        {"syslog_name", "mailgrid", "syslog ident prefix: <syslog_name>/<program>"},
        {"syslog_facility", "mail", "syslog facility"},
        {"daemon_user", "", "user to run as after binding, when started as root"},
        {"cache_size", "100000", "entries in the in-process lookup cache (0 = off)"},
        {"cache_ttl", "60s", "how long a found answer is cached"},
        {"cache_negative_ttl", "30s", "how long a not-found answer is cached"},
        {"redis_server", "", "shared cache: redis://[:password@]host:port/db, or unix:/path; empty = none"},
        {"redis_password", "", "Redis AUTH password (overrides the one in redis_server)"},
        {"redis_timeout", "250ms", "deadline of each Redis command"},
        {"redis_prefix", "mailgrid:", "prefix of every Redis key"},
        {"hold_file", "",
         "list of addresses whose mail is held during a mailbox move, when Redis is not used (one host only)"},
        {"ldap_connections", "4", "search connections per LDAP server set"},
        {"ldap_bind_connections", "8", "connections for user password binds per server set"},
        {"ldap_max_pending", "64", "searches in flight per LDAP connection"},
        {"ldap_idle_probe", "30s", "probe an LDAP connection idle this long"},
        {"ldap_probe_timeout", "3s", "a probe or a quiet busy connection must answer within this"},
        {"ldap_max_lifetime", "1h", "replace LDAP connections older than this"},
        {"ldap_reconnect_delay", "1s", "wait after a failed LDAP connect before trying again"},
        {"ldap_tcp_keepalive", "yes", "TCP keepalive on LDAP connections"},
        {"ldap_idle_spin", "100us", "when only one search is waiting, poll for its answer this long before sleeping"},
        {"ldap_replica_base", "",
         "answer searches under this DN from an in-memory copy kept current by RFC 4533 sync (slapd's syncprov); "
         "empty = ask the server every time"},
        {"ldap_replica_probe", "5s", "the replica's connection must answer a probe this often, or it leaves service"},
        {"ldap_replica_retry", "5s", "wait after a failed or lost sync before a new refresh"},
        {"ldap_replica_fold", "2000", "changes kept beside the replica's copy before a new full copy is made"},
        {"ldif_reload_interval", "1s", "how often the embedded directory's file is checked for changes"},
    };
    return specs;
}

const std::vector<std::string>& program_prefixes() {
    static const std::vector<std::string> p = {"tablemap_", "saslauth_", "deliver_", "mupdate_", "locator_",
                                               "policy_", "milter_", "admin_"};
    return p;
}

SuiteConfig load_config(const CommonOptions& o, const std::vector<ParamSpec>& program_params, bool config_given) {
    try {
        auto c = SuiteConfig::load(o.config_path, o.overrides, config_given);
        c.declare(common_params());
        c.declare(program_params);
        return c;
    } catch (const ConfigError& e) {
        std::cerr << log::program() << ": fatal: " << e.what() << "\n";
        std::exit(EX_CONFIG);
    }
}

void init_logging(const std::string& program, const SuiteConfig& c, bool to_stderr, int verbose) {
    log::init(program, to_stderr ? log::Sink::Stderr : log::Sink::Syslog, c.get("syslog_name"), c.get("syslog_facility"));
    log::set_verbose(verbose);
}

void drop_privileges(const SuiteConfig& c) {
    auto user = c.get("daemon_user");
    if (user.empty() || ::geteuid() != 0) return;
    errno = 0;
    struct passwd* pw = ::getpwnam(user.c_str());
    if (!pw) log::fatal(EX_CONFIG, "daemon_user %s: no such user", user.c_str());
    if (pw->pw_uid == 0) return;
    if (::setgroups(0, nullptr) != 0 || ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0)
        log::fatal(EX_OSERR, "cannot become user %s: %s", user.c_str(), std::strerror(errno));
}

void serve_metrics(Server& server, const SuiteConfig& c, const std::string& param, MetricsRegistry& metrics,
                   std::function<bool()> healthy) {
    auto where = c.get(param);
    if (where.empty()) return;
    std::string err;
    auto spec = ListenSpec::parse(where, &err);
    if (!spec) c.fail(param, err);
    ServiceOptions opt;
    opt.name = "metrics";
    opt.max_connections = 64;
    opt.idle_timeout = std::chrono::seconds(30);
    opt.max_buffer = 65536;
    auto handler = std::make_shared<HttpHandler>(
        [&metrics, healthy](const http::Request& req, Connection&) -> awaitable<http::Response> {
            http::Response r;
            auto path = req.path();
            if (path == "/metrics") {
                r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                r.body = metrics.render();
            } else if (path == "/healthz") {
                bool ok = !healthy || healthy();
                r.status = ok ? 200 : 503;
                r.body = ok ? "ok\n" : "unhealthy\n";
            } else {
                r.status = 404;
                r.body = "not found\n";
            }
            co_return r;
        });
    server.listen(*spec, opt, [handler](Connection& conn) { return serve_http(conn, *handler); });
}

void run_until_signal(asio::io_context& io, std::function<void()> on_stop, std::function<void()> on_reload) {
    asio::signal_set stop(io, SIGTERM, SIGINT);
    asio::signal_set hup(io, SIGHUP);
    std::signal(SIGPIPE, SIG_IGN);
    std::function<void()> wait_hup;
    wait_hup = [&]() {
        hup.async_wait([&](const asio::error_code& ec, int) {
            if (ec) return;
            log::info("reload requested");
            if (on_reload) on_reload();
            wait_hup();
        });
    };
    wait_hup();
    stop.async_wait([&](const asio::error_code& ec, int sig) {
        if (ec) return;
        log::info("terminating on signal %d", sig);
        if (on_stop) on_stop();
        hup.cancel();
        // Let connections finish what they are doing, then stop the loop.
        auto t = std::make_shared<asio::steady_timer>(io, std::chrono::seconds(2));
        t->async_wait([&io, t](const asio::error_code&) { io.stop(); });
    });
    io.run();
    finish_blocking_work();
}

int report_check(const std::string& program, const std::vector<std::string>& warnings,
                 const std::vector<std::string>& errors) {
    for (const auto& w : warnings) std::cerr << program << ": warning: " << w << "\n";
    for (const auto& e : errors) std::cerr << program << ": error: " << e << "\n";
    return errors.empty() ? EX_OK : EX_CONFIG;
}

std::optional<int> settle_config(const std::string& program, const SuiteConfig& config, bool check,
                                 const std::function<void(Findings& warnings, Findings& errors)>& load) {
    Findings warnings, errors;
    try {
        load(warnings, errors);
        for (const auto& w : config.warnings()) warnings.push_back(w);
        for (const auto& w : config.unknown(program_prefixes())) warnings.push_back(w);
    } catch (const std::exception& e) {
        errors.push_back(e.what());
    }
    if (check) return report_check(program, warnings, errors);
    if (!errors.empty()) {
        for (const auto& e : errors) log::error("%s", e.c_str());
        return EX_CONFIG;
    }
    for (const auto& w : warnings) log::warning("%s", w.c_str());
    return std::nullopt;
}

}  // namespace mailgrid
