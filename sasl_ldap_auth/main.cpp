// sasl_ldap_auth - a saslauthd for LDAP (or an LDIF file), started with
// saslauthd's own command line:
//
//   sasl_ldap_auth -a ldap -O /etc/saslauthd.conf -m /run/saslauthd -n 5 -c -t 3600 -d
//   sasl_ldap_auth -a ldif:/etc/mailgrid/users.ldif -m /run/mailgrid
//   sasl_ldap_auth --check [--config mailgrid.cf] [-O saslauthd.conf]
//
// -a mechanism (ldap, ldif:FILE)  -O saslauthd.conf  -m socket directory
// -n LDAP bind connections  -c cache successes  -t cache TTL (seconds)
// -d foreground, log to stderr, verbose  -r login@realm as the login
// -s, -l accepted and ignored  -v version
// --config mailgrid.cf, -o name=value, --check, --show as in every
// mailgrid program. Exit codes from sysexits.
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include <iostream>

#include "daemon/daemon.hpp"
#include "directory/registry.hpp"
#include "log/log.hpp"
#include "saslauth.hpp"
#include "util/strings.hpp"

using namespace mailgrid;

int main(int argc, char** argv) {
    CLI::App app{"sasl_ldap_auth: saslauthd-compatible password checks against LDAP or an LDIF file"};
    app.set_help_flag("-h,--help", "show this help");
    CommonOptions common;
    std::string mech, conf_file, run_dir, ttl;
    int concurrency = -1;
    bool cache = false, debug = false, join_realm = false, version = false;
    int ignored_size = 0;
    bool ignored_lock = false;
    app.add_option("-a", mech, "authentication mechanism: ldap, or ldif:FILE");
    app.add_option("-O", conf_file, "saslauthd.conf to read");
    app.add_option("-m", run_dir, "directory of the mux socket");
    app.add_option("-n", concurrency, "LDAP connections for password binds");
    app.add_flag("-c", cache, "cache successful checks");
    app.add_option("-t", ttl, "cache TTL in seconds");
    app.add_option("-s", ignored_size, "cache size in KB (ignored: saslauth_cache_size counts entries)");
    app.add_flag("-d", debug, "foreground, log to stderr, verbose");
    app.add_flag("-l", ignored_lock, "no accept lock (ignored: there is one process)");
    app.add_flag("-r", join_realm, "check login@realm as the login");
    app.add_flag("-v,--version", version, "print the version");
    app.add_option("--config", common.config_path, "mailgrid.cf to read")->capture_default_str();
    app.add_option("-o", common.overrides, "override a parameter: -o name=value")->take_all();
    app.add_flag("-f,--foreground", common.foreground, "stay in the foreground and log to stderr");
    app.add_flag("--check", common.check, "validate the configuration and exit");
    app.add_flag("--show", common.show, "print the effective parameters and exit");
    CLI11_PARSE(app, argc, argv);
    if (version) {
        std::cout << "sasl_ldap_auth " MAILGRID_VERSION " (saslauthd-compatible; mechanisms: ldap ldif)\n";
        return 0;
    }

    log::init("sasl_ldap_auth", log::Sink::Stderr);
    auto config = load_config(common, saslauth_params(), app.count("--config") > 0);
    if (!mech.empty()) config.set("saslauth_mech", mech);
    if (!conf_file.empty()) config.set("saslauth_conf", conf_file);
    if (!run_dir.empty()) config.set("saslauth_socket", run_dir + "/mux");
    if (concurrency >= 0) config.set("saslauth_concurrency", std::to_string(std::max(1, concurrency)));
    if (cache) config.set("saslauth_cache", "yes");
    if (!ttl.empty()) config.set("saslauth_cache_ttl", ttl);
    if (join_realm) config.set("saslauth_join_realm", "yes");
    if (debug) common.foreground = true;

    bool interactive = common.foreground || common.check || common.show || ::isatty(2);
    init_logging("sasl_ldap_auth", config, interactive, debug ? 1 : common.verbose);
    if (common.show) {
        std::cout << config.show(false);
        return 0;
    }
    if (app.count("-s")) log::info("-s ignored: the cache holds saslauth_cache_size entries");

    asio::io_context io;
    MetricsRegistry metrics;
    std::unique_ptr<DirectoryRegistry> directories;
    std::unique_ptr<RedisClient> redis;
    std::unique_ptr<PasswordChecker> checker;
    std::string socket_path;
    auto settled = settle_config("sasl_ldap_auth", config, common.check, [&](Findings& warnings, Findings& /*errors*/) {
        auto m = config.get("saslauth_mech");
        SaslauthdConf sconf;
        std::shared_ptr<Directory> dir;
        auto pool = DirectoryRegistry::pool_options(config);
        pool.bind_connections = static_cast<int>(config.get_int("saslauth_concurrency", 1, 10000));
        directories = std::make_unique<DirectoryRegistry>(io, pool, config.get_duration("ldif_reload_interval"), &metrics,
                                                       DirectoryRegistry::replica_options(config));
        if (to_lower(m).rfind("ldif:", 0) == 0) {
            // The embedded directory: saslauthd.conf is optional (filter,
            // search base, method); the servers in it are not used.
            struct stat st {};
            if (::stat(config.get("saslauth_conf").c_str(), &st) == 0 && config.has("saslauth_conf"))
                sconf = SaslauthdConf::load(config.get("saslauth_conf"));
            dir = directories->ldif(m.substr(5));
        } else if (to_lower(m) == "ldap") {
            sconf = SaslauthdConf::load(config.get("saslauth_conf"));
            dir = directories->ldap(sconf.server, sconf.filter);
        } else {
            config.fail("saslauth_mech", "unsupported mechanism \"" + m + "\" (ldap or ldif:FILE)");
        }
        if (auto ro = RedisOptions::from_config(config)) redis = std::make_unique<RedisClient>(io, *ro);
        auto options = CheckerOptions::from_config(config, "saslauth_");
        if (redis && options.cache && options.cache_secret.empty())
            warnings.push_back("redis_server is set but saslauth_cache_secret is not: cache entries are not shared");
        checker = std::make_unique<PasswordChecker>(sconf, dir, options, &metrics, redis.get(), "mailgrid_sasl");
        socket_path = config.get("saslauth_socket");
        if (socket_path.empty() || socket_path.front() != '/') config.fail("saslauth_socket", "must be an absolute path");
        (void)config.get_int("saslauth_socket_mode", 0, 07777);
    });
    if (settled) return *settled;

    Server server(io);
    try {
        auto dir = socket_path.substr(0, socket_path.rfind('/'));
        if (!dir.empty()) ::mkdir(dir.c_str(), 0755);
        ServiceOptions opt;
        opt.name = "mux";
        opt.max_connections = static_cast<std::size_t>(config.get_int("saslauth_max_connections", 1, 1'000'000));
        opt.idle_timeout = std::chrono::seconds(30);
        opt.max_buffer = 8192;
        auto mode_text = config.get("saslauth_socket_mode");
        opt.unix_mode = static_cast<int>(std::strtol(mode_text.c_str(), nullptr, 8));
        auto fifth = config.get_duration("saslauth_fifth_field_wait");
        PasswordChecker* ck = checker.get();
        opt.answer_at_once = [ck, fifth](std::string_view first) { return answer_mux_at_once(first, *ck, fifth); };
        server.listen(*ListenSpec::parse("unix:" + socket_path), opt,
                      [ck, fifth](Connection& c) { return serve_mux(c, *ck, fifth); });
        serve_metrics(server, config, "saslauth_metrics", metrics);
    } catch (const ConfigError& e) {
        log::fatal(EX_CONFIG, "%s", e.what());
    } catch (const std::exception& e) {
        log::fatal(EX_UNAVAILABLE, "%s: %s", socket_path.c_str(), e.what());
    }
    drop_privileges(config);
    directories->start_watching();
    server.start();
    log::info("ready: %s, socket %s", config.get("saslauth_mech").c_str(), socket_path.c_str());
    run_until_signal(
        io,
        [&]() {
            server.stop();
            directories->shutdown();
        },
        {});
    return 0;
}
