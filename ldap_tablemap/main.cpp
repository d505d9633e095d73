// ldap_tablemap - Postfix lookup tables answered from LDAP or an LDIF file.
//
//   ldap_tablemap -f [-c mailgrid.cf] [-o name=value]... [--table NAME=FILE]...
//                 [--tcp NAME=HOST:PORT]... [--socketmap HOST:PORT]
//   ldap_tablemap -q KEY [NAME] [--table NAME=FILE]...   (like postmap -q)
//   ldap_tablemap --check | --show
//
// Exit codes (sysexits): 0 found / ok, 1 not found (-q), 75 temporary
// failure (-q), 64 usage, 78 configuration error.
#include <sysexits.h>
#include <unistd.h>

#include <iostream>

#include "daemon/daemon.hpp"
#include "log/log.hpp"
#include "tablemap.hpp"
#include "util/strings.hpp"

using namespace mailgrid;

namespace {

std::string joined(const SuiteConfig& c, const std::string& param, const std::vector<std::string>& extra) {
    std::string v = c.raw(param);
    for (const auto& e : extra) v += (v.empty() ? "" : ", ") + e;
    return v;
}

int run_query(Tablemap& tm, asio::io_context& io, const std::string& key, std::string name) {
    if (name.empty()) {
        if (tm.definitions().size() != 1) {
            std::cerr << "ldap_tablemap: fatal: -q needs a table name when " << tm.definitions().size()
                      << " tables are configured\n";
            return EX_USAGE;
        }
        name = tm.definitions().front().name;
    }
    TableService* t = tm.table(name);
    if (!t) {
        std::cerr << "ldap_tablemap: fatal: no such table: " << name << "\n";
        return EX_USAGE;
    }
    int status = 1;
    bool any_found = false, any_temp = false;
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
            auto one = [&](std::string k, bool with_key) -> awaitable<void> {
                auto r = co_await t->lookup(k);
                if (r.status == Status::Found) {
                    any_found = true;
                    if (with_key) std::cout << k << "\t";
                    std::cout << r.value << "\n";
                } else if (r.status != Status::NotFound) {
                    any_temp = true;
                    std::cerr << "ldap_tablemap: " << name << ": " << printable(k) << ": " << r.value << "\n";
                }
            };
            if (key == "-") {
                std::string line;
                while (std::getline(std::cin, line)) {
                    auto k = std::string(trim(line));
                    if (!k.empty()) co_await one(k, true);
                    if (any_temp) break;
                }
            } else {
                co_await one(key, false);
            }
            tm.directories().shutdown();
        },
        asio::detached);
    io.run();
    finish_blocking_work();
    status = any_temp ? EX_TEMPFAIL : (any_found ? 0 : 1);
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ldap_tablemap: Postfix lookup tables (tcp_table, socketmap) from LDAP or an LDIF file"};
    app.set_version_flag("--version", "ldap_tablemap " MAILGRID_VERSION);
    CommonOptions common;
    add_common_options(app, common);
    std::vector<std::string> tables, tcp;
    std::string socketmap, query_key, query_table;
    app.add_option("--table", tables, "serve an ldap_table(5) file: NAME=FILE")->take_all();
    app.add_option("--tcp", tcp, "tcp_table listener for a table: NAME=HOST:PORT")->take_all();
    app.add_option("--socketmap", socketmap, "socketmap listener for all tables: HOST:PORT or unix:/path");
    auto* q = app.add_option("-q,--query", query_key, "look up one key (\"-\" reads keys from stdin) and exit");
    app.add_option("table", query_table, "table to query with -q (optional when there is only one)");
    CLI11_PARSE(app, argc, argv);

    bool config_given = app.count("-c") > 0;
    if (!config_given && (!tables.empty() || q->count())) common.config_path = kDefaultConfig;
    log::init("ldap_tablemap", log::Sink::Stderr);
    auto config = load_config(common, tablemap_params(), config_given);
    if (!tables.empty()) config.set("tablemap_tables", joined(config, "tablemap_tables", tables));
    if (!tcp.empty()) config.set("tablemap_tcp", joined(config, "tablemap_tcp", tcp));
    if (!socketmap.empty()) config.set("tablemap_socketmap", socketmap);

    bool interactive = common.foreground || common.check || common.show || q->count() > 0 || ::isatty(2);
    init_logging("ldap_tablemap", config, interactive, common.verbose);

    if (common.show) {
        std::cout << config.show(false);
        return 0;
    }

    asio::io_context io;
    MetricsRegistry metrics;
    std::unique_ptr<Tablemap> tm;
    auto settled = settle_config("ldap_tablemap", config, common.check, [&](Findings& warnings, Findings& errors) {
        tm = std::make_unique<Tablemap>(io, config, &metrics, !q->count());
        tm->load(warnings);
        if (tm->definitions().empty()) errors.push_back("no tables configured (tablemap_tables or --table)");
        // Validate listener addresses and numbers now, not at bind time.
        for (const auto& d : tm->definitions())
            if (!d.tcp_listen.empty() && !ListenSpec::parse(d.tcp_listen)) errors.push_back("bad tcp address for " + d.name);
        (void)CachePolicy::from_config(config);
        (void)RedisOptions::from_config(config);
    });
    if (settled) return *settled;

    if (q->count()) return run_query(*tm, io, query_key, query_table);

    Server server(io);
    try {
        tm->listen(server);
        serve_metrics(server, config, "tablemap_metrics", metrics);
    } catch (const ConfigError& e) {
        log::fatal(EX_CONFIG, "%s", e.what());
    } catch (const std::exception& e) {
        log::fatal(EX_UNAVAILABLE, "%s", e.what());
    }
    drop_privileges(config);
    server.start();
    tm->start_hold_polling();
    log::info("ready: %zu table(s)", tm->definitions().size());
    run_until_signal(
        io,
        [&]() {
            server.stop();
            tm->directories().shutdown();
        },
        [&]() { log::info("LDIF files are re-read when they change; table files need a restart"); });
    return 0;
}
