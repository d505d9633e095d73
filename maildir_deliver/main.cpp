// maildir_deliverd - the whole of maildir_deliver: everything that needs the
// directory (a Maildir not there yet, a quota to refresh, every message
// with deliver_directory_lookup = always), the LMTP server, purge,
// reconcile and --check. The lean front binary maildir_deliver runs this
// with the same command line when it cannot finish a delivery alone; see
// front.cpp and maildir_deliver(8).
//
// A delivery prints an enhanced status code first when it fails
// ("4.2.2 <joe@example.com>: mailbox full"), which Postfix reports instead
// of the exit status, and exits with a sysexits code: 0 delivered, 67
// unknown user or bad address, 77 over quota with deliver_over_quota =
// bounce, 65 too big, 75 everything temporary (over quota by default,
// directory or disk trouble, a bad configuration or command line).
#include <sysexits.h>
#include <unistd.h>

#include <csignal>
#include <iostream>

#include "agent.hpp"
#include "cli.hpp"
#include "command_line.hpp"
#include "daemon/daemon.hpp"
#include "delivery_journal.hpp"
#include "lmtp_server.hpp"
#include "log/log.hpp"
#include "maintenance.hpp"

using namespace mailgrid;

namespace {

int serve(asio::io_context& io, const SuiteConfig& config, Agent& agent, MetricsRegistry& metrics) {
    Server server(io);
    auto where = config.get("deliver_lmtp_listen");
    try {
        ServiceOptions opt;
        opt.name = "lmtp";
        opt.max_connections = static_cast<std::size_t>(config.get_int("deliver_lmtp_max_connections", 1, 1'000'000));
        opt.idle_timeout = config.get_duration("deliver_lmtp_idle_timeout");
        // Message text is taken out of the buffer line by line.
        opt.max_buffer = 1 << 20;
        opt.unix_mode = static_cast<int>(std::strtol(config.get("deliver_lmtp_socket_mode").c_str(), nullptr, 8));
        auto options = std::make_shared<lmtp::Options>();
        options->hostname = config.get("deliver_lmtp_hostname");
        if (options->hostname.empty()) {
            char host[256] = {};
            ::gethostname(host, sizeof host - 1);
            options->hostname = host[0] ? host : "localhost";
        }
        auto limit = agent.store().message_size_limit();
        options->max_message_size = limit ? limit : SIZE_MAX / 2;
        Agent* a = &agent;
        server.listen(*ListenSpec::parse(where), opt, [a, options](Connection& c) { return serve_lmtp(c, *a, *options); });
        serve_metrics(server, config, "deliver_metrics", metrics);
    } catch (const ConfigError& e) {
        log::fatal(EX_CONFIG, "%s", e.what());
    } catch (const std::exception& e) {
        log::fatal(EX_UNAVAILABLE, "%s: %s", where.c_str(), e.what());
    }
    drop_privileges(config);
    // Opened as the user who delivers, who owns the files it makes.
    std::unique_ptr<LmdbDeliveryJournal> journal;
    if (auto window = std::chrono::duration_cast<std::chrono::seconds>(config.get_duration("deliver_lmtp_duplicate_window"));
        window.count() > 0) {
        try {
            journal = std::make_unique<LmdbDeliveryJournal>(config.get("deliver_lmtp_duplicate_db"), window);
        } catch (const std::exception& e) {
            log::fatal(EX_CANTCREAT, "deliver_lmtp_duplicate_db: %s", e.what());
        }
        journal->start_upkeep();
        agent.store().use_journal(journal.get());
    }
    if (agent.has_directory()) agent.directories().start_watching();
    server.start();
    log::info("ready: LMTP on %s, mail store %s", where.c_str(), agent.store().root().c_str());
    run_until_signal(
        io,
        [&]() {
            server.stop();
            agent.shutdown();
        },
        {});
    // Deliveries under way finish (and are remembered) before the journal goes.
    agent.wait_for_deliveries();
    agent.store().use_journal(nullptr);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"maildir_deliver: Maildir++ delivery with quotas, from .forward, pipe(8) and LMTP"};
    Invocation inv;
    try {
        read_command_line(app, inv, argc, argv);
    } catch (const CLI::Success& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // Under Postfix any status but 75 (and 71) bounces the message.
        finish(EX_TEMPFAIL, "4.3.5", std::string("maildir_deliver: bad command line: ") + e.what());
    }
    SuiteConfig config = load_deliver_config(inv);
    if (inv.common.show) {
        std::cout << config.show(false);
        return 0;
    }
    std::signal(SIGPIPE, SIG_IGN);
    // With RLIMIT_FSIZE, a write past the limit must fail (EFBIG), not kill.
    std::signal(SIGXFSZ, SIG_IGN);
    const bool serving = serving_lmtp(inv, config);

    asio::io_context io;
    MetricsRegistry metrics;
    std::unique_ptr<MailboxStore> store;
    std::unique_ptr<Agent> agent;
    std::vector<std::string> warnings, errors;
    try {
        store = std::make_unique<MailboxStore>(config);
        agent = std::make_unique<Agent>(io, config, *store, serving ? &metrics : nullptr, serving, serving);
        agent->load(warnings);
        if (!inv.quota.empty()) {
            std::string why;
            if (!maildirsize::parse_limit(inv.quota, &why)) throw ConfigError("--quota " + inv.quota + ": " + why);
        }
        if (inv.common.check || serving) {
            agent->open_directory();
            // Said at once, not first at the next delivery's deferral.
            if (inv.maildir.empty() && !config.get("deliver_root_marker").empty())
                if (auto root = store->open_store(); !root) warnings.push_back("mail store " + root.why);
            std::string why;
            auto where = config.get("deliver_lmtp_listen");
            if (!where.empty() && !ListenSpec::parse(where, &why)) config.fail("deliver_lmtp_listen", why);
            (void)config.get_int("deliver_lmtp_max_connections", 1, 1'000'000);
            (void)config.get_int("deliver_lmtp_threads", 1, 1024);
            (void)config.get_duration("deliver_lmtp_idle_timeout");
            (void)config.get_int("deliver_lmtp_socket_mode", 0, 07777);
            if (config.get_duration("deliver_lmtp_duplicate_window").count() > 0 &&
                config.get("deliver_lmtp_duplicate_db").rfind('/', 0) != 0)
                config.fail("deliver_lmtp_duplicate_db", "must be an absolute path");
        }
    } catch (const std::exception& e) {
        errors.push_back(e.what());
    }
    for (const auto& w : config.warnings()) warnings.push_back(w);
    // Typos in our own parameters are reported; other programs' are theirs.
    std::vector<std::string> foreign;
    for (const auto& p : program_prefixes())
        if (p != "deliver_") foreign.push_back(p);
    for (const auto& w : config.unknown(foreign)) warnings.push_back(w);
    if (inv.common.check) return report_check("maildir_deliver", warnings, errors);
    if (!errors.empty()) {
        if (inv.delivering() && !serving) defer_config(errors.front());
        for (const auto& e : errors) log::error("%s", e.c_str());
        return EX_CONFIG;
    }
    if (!inv.delivering() || serving)
        for (const auto& w : warnings) log::warning("%s", w.c_str());

    if (inv.maintenance()) {
        int status = EX_SOFTWARE;
        if (inv.job == Job::Purge && !inv.days_given)
            inv.purge.days = static_cast<int>(config.get_int("deliver_purge_days", 0, 100000));
        inv.reconcile.attic = config.get("deliver_attic");
        asio::co_spawn(
            io,
            [&]() -> awaitable<void> {
                if (inv.job == Job::Purge) status = co_await run_purge(*agent, inv.purge);
                else status = co_await run_reconcile(*agent, inv.reconcile);
                agent->shutdown();
            },
            asio::detached);
        io.run();
        finish_blocking_work();
        return status;
    }
    if (serving) return serve(io, config, *agent, metrics);

    // One message, with the directory.
    OneMessage m = prepare_one_message(inv, *store, config);
    if (auto refused = read_input(m, *store)) conclude(*store, m, inv, *refused);
    Outcome outcome;
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
            try {
                Target target = co_await agent->resolve(m.recipient);
                auto header = std::make_shared<const std::string>();
                auto body = std::make_shared<const std::string>(m.message());
                outcome = co_await agent->deliver(m.recipient, std::move(target), header, body);
            } catch (const std::exception& e) {
                outcome = Outcome::temporary("4.3.0", "internal error", e.what());
            }
            agent->shutdown();
        },
        asio::detached);
    io.run();
    conclude(*store, m, inv, outcome);
}
