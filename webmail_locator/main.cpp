// webmail_locator - nginx mail auth_http: checks a login's password against
// the directory and sends the session to the backend that holds the mail.
//
//   webmail_locator -f [-c mailgrid.cf] [-o name=value]... [--listen HOST:PORT]
//   webmail_locator [-c mailgrid.cf] locate USER     # prints the backend and the source
//   webmail_locator --check | --show
//
// Exit codes (sysexits): 0; 1 unknown user (locate); 64 usage; 69 cannot
// listen; 75 temporary failure (locate); 78 configuration error.
#include <sysexits.h>
#include <unistd.h>

#include <iostream>

#include "daemon/daemon.hpp"
#include "locator.hpp"
#include "log/log.hpp"

using namespace mailgrid;

int main(int argc, char** argv) {
    CLI::App app{"webmail_locator: nginx auth_http and a locate API for mail backends"};
    app.set_version_flag("--version", "webmail_locator " MAILGRID_VERSION);
    CommonOptions common;
    add_common_options(app, common);
    std::string listen;
    app.add_option("--listen", listen, "where to serve auth_http and the API (HOST:PORT)");
    std::string locate_user;
    auto* locate = app.add_subcommand("locate", "print where a user's mail is, and which source said so");
    locate->add_option("user", locate_user, "the login")->required();
    CLI11_PARSE(app, argc, argv);

    log::init("webmail_locator", log::Sink::Stderr);
    auto config = load_config(common, locator_params(), app.count("-c") > 0);
    if (!listen.empty()) config.set("locator_listen", listen);
    bool interactive = common.foreground || common.check || common.show || locate->parsed() || ::isatty(2);
    init_logging("webmail_locator", config, interactive, common.verbose);
    if (common.show) {
        std::cout << config.show(false);
        return 0;
    }

    asio::io_context io;
    MetricsRegistry metrics;
    Locator locator(io, config, &metrics);
    auto settled = settle_config("webmail_locator", config, common.check, [&](Findings& warnings, Findings& /*errors*/) {
        locator.load(warnings);
        if (!ListenSpec::parse(config.get("locator_listen"))) config.fail("locator_listen", "bad address");
    });
    if (settled) return *settled;

    if (locate->parsed()) {
        int status = EX_SOFTWARE;
        asio::co_spawn(
            io,
            [&]() -> awaitable<void> {
                auto loc = co_await locator.locate(locate_user);
                if (loc.status == Status::Found) {
                    const auto& b = *loc.backend;
                    std::cout << loc.host << " " << b.address << " imap=" << b.ports.imap << " pop3=" << b.ports.pop3
                              << " smtp=" << b.ports.smtp << " source=" << loc.source << "\n";
                    status = 0;
                } else if (loc.status == Status::NotFound) {
                    std::cerr << "webmail_locator: " << locate_user << ": unknown user\n";
                    status = 1;
                } else {
                    std::cerr << "webmail_locator: " << locate_user << ": " << loc.reason << "\n";
                    status = EX_TEMPFAIL;
                }
                locator.directories().shutdown();
                // A Redis client (a mupdate: source) would keep the loop alive.
                io.stop();
            },
            asio::detached);
        io.run();
        finish_blocking_work();
        return status;
    }

    Server server(io);
    try {
        ServiceOptions opt;
        opt.name = "auth_http";
        opt.max_connections = static_cast<std::size_t>(config.get_int("locator_max_connections", 1, 1'000'000));
        opt.idle_timeout = std::chrono::seconds(60);
        opt.max_buffer = 65536;
        auto handler = std::make_shared<HttpHandler>(
            [&locator](const http::Request& req, Connection&) { return locator.handle(req); });
        server.listen(*ListenSpec::parse(config.get("locator_listen")), opt,
                      [handler](Connection& c) { return serve_http(c, *handler); });
    } catch (const std::exception& e) {
        log::fatal(EX_UNAVAILABLE, "%s: %s", config.get("locator_listen").c_str(), e.what());
    }
    drop_privileges(config);
    locator.directories().start_watching();
    server.start();
    log::info("ready: auth_http on %s", config.get("locator_listen").c_str());
    run_until_signal(
        io,
        [&]() {
            server.stop();
            locator.directories().shutdown();
        },
        {});
    return 0;
}
