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
