// mupdate_bridge - a MUPDATE master for Cyrus Murder with a replicated
// location store.
//
//   mupdate_bridge -f [-c mailgrid.cf] [-o name=value]... [--listen HOST:PORT]
//                  [--store file:PATH | --store redis://HOST:PORT/N] [--follow HOST:PORT]
//   mupdate_bridge [--store ...] list [PATTERN] | find MAILBOX | user USER | stats
//   mupdate_bridge --check | --show
//
// Exit codes (sysexits): 0 ok / found, 1 not found, 64 usage, 75 the store
// is unavailable, 78 configuration error.
#include <fnmatch.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <unistd.h>

#include <iostream>

#include "bridge.hpp"
#include "daemon/daemon.hpp"
#include "location/location_store.hpp"
#include "log/log.hpp"
#include "util/strings.hpp"

using namespace mailgrid;
using namespace mailgrid::bridge;

namespace {

// 10,000 followers and backends need as many descriptors.
void raise_fd_limit(std::size_t wanted) {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t want = static_cast<rlim_t>(wanted) + 256;
    if (rl.rlim_cur >= want) return;
    rl.rlim_cur = std::min(want, rl.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < wanted)
        log::warning("open files limited to %llu: fewer than mupdate_max_connections connections can be served "
                     "(raise LimitNOFILE)",
                     static_cast<unsigned long long>(rl.rlim_cur));
}

std::string show_acl(std::string acl) {
    while (!acl.empty() && acl.back() == '\t') acl.pop_back();
    for (auto& c : acl)
        if (c == '\t') c = ' ';
    return acl;
}

void print_entry(const std::string& name, const location::Mailbox& m) {
    std::cout << name << '\t' << (m.active ? "active" : "reserved") << '\t' << m.location << '\t' << show_acl(m.acl)
              << '\n';
}

// Runs one command line coroutine; stops the loop when it is done (a Redis
// client would keep it running).
template <class F>
int run_tool(asio::io_context& io, F body) {
    int status = EX_SOFTWARE;
    asio::co_spawn(io, body(), [&](std::exception_ptr e, int r) {
        if (!e) status = r;
        io.stop();
    });
    io.run();
    finish_blocking_work();
    return status;
}

int tool(const SuiteConfig& config, const std::string& what, const std::string& arg) {
    asio::io_context io;
    location::StoreOptions opts;
    opts.spec = config.get("mupdate_store");
    opts.read_only = true;
    std::unique_ptr<location::MailboxStore> store;
    try {
        // Opened for "user" too: opening waits until the store holds every
        // change the running bridge has acknowledged.
        store = location::open_store(io, opts, &config);
    } catch (const std::exception& e) {
        std::cerr << "mupdate_bridge: " << e.what() << "\n";
        return EX_TEMPFAIL;
    }
    if (what == "find") {
        return run_tool(io, [&]() -> awaitable<int> {
            auto r = co_await store->get(arg);
            if (r.status == Status::TempFail) {
                std::cerr << "mupdate_bridge: " << store->describe() << ": " << r.value << "\n";
                co_return EX_TEMPFAIL;
            }
            if (r.status != Status::Found) {
                std::cerr << "mupdate_bridge: " << arg << ": no such mailbox\n";
                co_return 1;
            }
            auto m = location::decode(r.value);
            if (!m) co_return EX_DATAERR;
            print_entry(arg, *m);
            co_return 0;
        });
    }
    if (what == "user") {
        std::unique_ptr<location::LocationStore> where;
        try {
            where = location::LocationStore::open(io, opts.spec, &config);
        } catch (const std::exception& e) {
            std::cerr << "mupdate_bridge: " << e.what() << "\n";
            return EX_TEMPFAIL;
        }
        return run_tool(io, [&]() -> awaitable<int> {
            auto r = co_await where->lookup(arg);
            if (r.status == Status::Found) {
                std::cout << r.value << "\n";
                co_return 0;
            }
            if (r.status == Status::NotFound) {
                std::cerr << "mupdate_bridge: " << arg << ": no such user\n";
                co_return 1;
            }
            std::cerr << "mupdate_bridge: " << where->describe() << ": " << r.value << "\n";
            co_return EX_TEMPFAIL;
        });
    }
    return run_tool(io, [&]() -> awaitable<int> {
        location::MailboxList list;
        auto r = co_await store->load(list);
        if (r.status != Status::Found) {
            std::cerr << "mupdate_bridge: " << store->describe() << ": " << r.value << "\n";
            co_return EX_TEMPFAIL;
        }
        if (what == "list") {
            std::string after;
            std::size_t n = 0;
            while (list.visit(after, "", nullptr, 1u << 30, [&](const std::string& name, const location::Mailbox& m) {
                if (!arg.empty() && ::fnmatch(arg.c_str(), name.c_str(), 0) != 0) return;
                print_entry(name, m);
                ++n;
            })) {
            }
            co_return (n > 0 || arg.empty()) ? 0 : 1;
        }
        auto st = co_await store->stats();
        std::cout << "store: " << store->describe() << "\n";
        if (st && !st->detail.empty()) std::cout << "store detail: " << st->detail << "\n";
        std::cout << "mailboxes: " << list.size() << "\nactive: " << list.active()
                  << "\nreserved: " << list.size() - list.active() << "\n";
        if (st) std::cout << "users: " << st->users << "\n";
        for (const auto& [server, n] : list.servers()) std::cout << "server " << server << ": " << n << "\n";
        co_return 0;
    });
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"mupdate_bridge: a MUPDATE master for Cyrus Murder with a replicated location store"};
    app.set_version_flag("--version", "mupdate_bridge " MAILGRID_VERSION);
    CommonOptions common;
    add_common_options(app, common);
    std::string listen, store, follow;
    app.add_option("--listen", listen, "MUPDATE listener HOST:PORT (mupdate_listen)");
    app.add_option("--store", store, "file:/path or redis://host:port/db (mupdate_store)");
    app.add_option("--follow", follow, "mirror the Cyrus mupdate master at HOST:PORT, read-only (mupdate_follow)");
    std::string pattern, mailbox, user;
    auto* list_cmd = app.add_subcommand("list", "print the mailboxes (name, state, location, ACL) in Cyrus order");
    list_cmd->add_option("pattern", pattern, "shell pattern on the mailbox name, e.g. 'user.alice*'");
    auto* find_cmd = app.add_subcommand("find", "print one mailbox; exit 1 if there is none");
    find_cmd->add_option("mailbox", mailbox, "Cyrus internal name, e.g. user.alice.Sent")->required();
    auto* user_cmd = app.add_subcommand("user", "print the backend of a user as the published map has it");
    user_cmd->add_option("user", user, "alice, or alice@example.com with virtual domains")->required();
    auto* stats_cmd = app.add_subcommand("stats", "count mailboxes, users and mailboxes per server");
    app.require_subcommand(0, 1);
    CLI11_PARSE(app, argc, argv);

    bool config_given = app.count("-c") > 0;
    log::init("mupdate_bridge", log::Sink::Stderr);
    auto config = load_config(common, bridge_params(), config_given);
    if (!listen.empty()) config.set("mupdate_listen", listen);
    if (!store.empty()) config.set("mupdate_store", store);
    if (!follow.empty()) config.set("mupdate_follow", follow);

    bool tool_mode = list_cmd->parsed() || find_cmd->parsed() || user_cmd->parsed() || stats_cmd->parsed();
    bool interactive = common.foreground || common.check || common.show || tool_mode || ::isatty(2);
    init_logging("mupdate_bridge", config, interactive, common.verbose);

    if (common.show) {
        std::cout << config.show(false);
        return 0;
    }
    if (tool_mode) {
        try {
            if (list_cmd->parsed()) return tool(config, "list", pattern);
            if (find_cmd->parsed()) return tool(config, "find", mailbox);
            if (user_cmd->parsed()) return tool(config, "user", user);
            return tool(config, "stats", "");
        } catch (const ConfigError& e) {
            std::cerr << "mupdate_bridge: fatal: " << e.what() << "\n";
            return EX_CONFIG;
        }
    }

    asio::io_context io;
    MetricsRegistry metrics;
    auto bridge = std::make_unique<Bridge>(io, config, &metrics);
    auto settled = settle_config("mupdate_bridge", config, common.check, [&](Findings& warnings, Findings& /*errors*/) {
        bridge->configure(warnings);
    });
    if (settled) return *settled;
    raise_fd_limit(static_cast<std::size_t>(config.get_int("mupdate_max_connections", 1)));

    Server server(io);
    try {
        bridge->listen(server);
        serve_metrics(server, config, "mupdate_metrics", metrics);
    } catch (const ConfigError& e) {
        log::fatal(EX_CONFIG, "%s", e.what());
    } catch (const std::exception& e) {
        log::fatal(EX_UNAVAILABLE, "%s", e.what());
    }
    drop_privileges(config);
    int status = 0;
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
            if (!co_await bridge->start()) {
                status = EX_TEMPFAIL;
                io.stop();
                co_return;
            }
            server.start();
            log::info("ready: %s, %zu mailboxes%s", config.get("mupdate_listen").c_str(), bridge->list().size(),
                      bridge->following() ? (", following " + bridge->follow_target()).c_str() : "");
        },
        asio::detached);
    run_until_signal(
        io,
        [&]() {
            server.stop();
            bridge->stop();
        },
        [&]() { log::info("the configuration is read at start only; restart to change it"); });
    return status;
}
