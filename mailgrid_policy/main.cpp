// mailgrid_policy - recipient, quota, sender login and sending limit checks
// for Postfix (policy delegation and milter) and Sendmail (milter).
//
//   mailgrid_policy -f [-c mailgrid.cf] [-o name=value]... [--policy-listen HOST:PORT]
//                   [--milter-listen SPEC]
//   mailgrid_policy -q < requests          answer policy requests from stdin
//   mailgrid_policy --check | --show
//
// Exit codes (sysexits): 0 ok, 64 usage, 65 malformed request (-q),
// 69 cannot listen, 78 configuration error.
#include <sysexits.h>
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <iterator>

#include "daemon/daemon.hpp"
#include "log/log.hpp"
#include "milter.hpp"
#include "policy_server.hpp"
#include "util/strings.hpp"

using namespace mailgrid;

namespace {

std::vector<ParamSpec> all_params() {
    auto specs = policy_rule_params();
    for (const auto& p : policy_program_params()) specs.push_back(p);
    return specs;
}

// Answers the policy requests on stdin as the server would, one reply per
// request on stdout.
int run_query(PolicyEngine& engine, asio::io_context& io) {
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    int status = 0;
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
            std::string_view rest = input;
            auto state = std::make_shared<MessageState>();
            std::string instance;
            while (!rest.empty()) {
                std::size_t consumed = 0;
                auto parsed = policy::parse_request(rest, consumed);
                if (!parsed) {
                    std::cerr << "mailgrid_policy: incomplete request at the end of the input (no empty line)\n";
                    status = EX_DATAERR;
                    break;
                }
                rest.remove_prefix(consumed);
                if (!parsed->ok) {
                    std::cerr << "mailgrid_policy: malformed request: " << parsed->error << "\n";
                    status = EX_DATAERR;
                    break;
                }
                if (parsed->request.instance != instance) {
                    state = std::make_shared<MessageState>();
                    instance = parsed->request.instance;
                }
                CheckRequest check = check_request_of(parsed->request);
                Verdict v = co_await engine.check(std::move(check), state);
                std::cout << policy::format_reply(v.policy_action()) << std::flush;
            }
            engine.shutdown();
        },
        asio::detached);
    io.run();
    finish_blocking_work();
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"mailgrid_policy: recipient, quota, sender login and sending limit checks "
                 "(Postfix policy delegation, milter)"};
    app.set_version_flag("--version", "mailgrid_policy " MAILGRID_VERSION);
    CommonOptions common;
    add_common_options(app, common);
    std::string policy_listen, milter_listen;
    bool query = false;
    app.add_option("--policy-listen,--listen", policy_listen, "policy delegation listener: HOST:PORT or unix:/path");
    app.add_option("--milter-listen", milter_listen, "milter listener: HOST:PORT, inet:PORT@HOST or unix:/path");
    app.add_flag("-q,--query", query, "answer policy requests read from stdin and exit");
    CLI11_PARSE(app, argc, argv);

    bool config_given = app.count("-c") > 0;
    log::init("mailgrid_policy", log::Sink::Stderr);
    auto config = load_config(common, all_params(), config_given);
    if (!policy_listen.empty()) config.set("policy_listen", policy_listen);
    if (!milter_listen.empty()) config.set("milter_listen", milter_listen);

    bool interactive = common.foreground || common.check || common.show || query || ::isatty(2);
    init_logging("mailgrid_policy", config, interactive, common.verbose);
    if (common.show) {
        std::cout << config.show(false);
        return 0;
    }

    asio::io_context io;
    MetricsRegistry metrics;
    auto engine = std::make_unique<PolicyEngine>(io, config, &metrics);
    auto settled = settle_config("mailgrid_policy", config, common.check, [&](Findings& warnings, Findings& errors) {
        engine->load(warnings);
        engine->open();
        if (!query) {
            std::string err;
            auto pl = config.get("policy_listen");
            if (!pl.empty() && !ListenSpec::parse(pl, &err)) config.fail("policy_listen", err);
            auto ml = config.get("milter_listen");
            if (!ml.empty() && !milter_socket(ml, &err)) config.fail("milter_listen", err);
            if (pl.empty() && ml.empty())
                errors.push_back("nothing to serve: policy_listen and milter_listen are both empty");
            auto pm = config.get("policy_metrics");
            if (!pm.empty() && !ListenSpec::parse(pm, &err)) config.fail("policy_metrics", err);
            (void)config.get_int("policy_max_connections", 1, 1'000'000);
            (void)config.get_duration("policy_idle_timeout");
            (void)config.get_duration("milter_timeout");
            (void)config.get_bool("milter_check_size");
        }
    });
    if (settled) return *settled;

    if (query) return run_query(*engine, io);

    Server server(io);
    PolicyServer policy(*engine, &metrics);
    std::unique_ptr<Milter> milter;
    try {
        policy.listen(server, config);
        if (!config.get("milter_listen").empty()) milter = std::make_unique<Milter>(io, *engine, config, &metrics, server);
        serve_metrics(server, config, "policy_metrics", metrics);
    } catch (const ConfigError& e) {
        log::fatal(EX_CONFIG, "%s", e.what());
    } catch (const std::exception& e) {
        log::fatal(EX_UNAVAILABLE, "%s", e.what());
    }
    drop_privileges(config);
    engine->start_watching();
    server.start();
    std::string listening;
    if (!config.get("policy_listen").empty()) listening = "policy " + config.get("policy_listen");
    if (milter) listening += (listening.empty() ? "milter " : ", milter ") + milter->socket();
    log::info("ready: %s", listening.c_str());

    auto stop_all = [&]() {
        server.stop();
        engine->shutdown();
    };
    if (!milter) {
        run_until_signal(io, stop_all, [] { log::info("LDIF files are re-read when they change; mailgrid.cf needs a restart"); });
        return 0;
    }
    // libmilter takes SIGTERM, SIGINT and SIGHUP in a thread of its own and
    // stops; the rest of the program follows it. Blocking TERM and INT
    // here, before any thread starts, leaves libmilter the only taker, so
    // a signal is never half handled. SIGHUP would stop libmilter too: it
    // is ignored instead (there is nothing to reload; LDIF files are
    // re-read when they change). An ignored signal that this thread does
    // not block is dropped when it is sent, before libmilter can wait for it.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGHUP, SIG_IGN);
    std::signal(SIGPIPE, SIG_IGN);
    auto work = asio::make_work_guard(io);
    asio::steady_timer grace(io);
    milter->start([&]() {
        log::info("terminating");
        stop_all();
        work.reset();
        // Let connections finish what they are doing, then stop the loop.
        grace.expires_after(std::chrono::seconds(1));
        grace.async_wait([&io](const asio::error_code&) { io.stop(); });
    });
    io.run();
    milter->stop();
    finish_blocking_work();
    return 0;
}
