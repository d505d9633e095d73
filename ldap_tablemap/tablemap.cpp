#include "tablemap.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "log/log.hpp"
#include "proto/socketmap.hpp"
#include "proto/tcp_table.hpp"
#include "util/strings.hpp"

namespace mailgrid {

const std::vector<ParamSpec>& tablemap_params() {
    static const std::vector<ParamSpec> specs = {
        {"tablemap_tables", "", "tables to serve: name=/path/to/ldap_table.cf, ..."},
        {"tablemap_style", "", "lookup style per table: name=virtual|canonical|transport|access|exact, ..."},
        {"tablemap_tcp", "", "tcp_table(5) listeners: name=host:port, ..."},
        {"tablemap_socketmap", "", "socketmap_table(5) listener for all tables: host:port or unix:/path"},
        {"tablemap_metrics", "", "Prometheus /metrics listener: host:port"},
        {"tablemap_max_connections", "10000", "client connections per listener"},
        {"tablemap_idle_timeout", "3600s", "close a client connection idle this long"},
        {"recipient_delimiter", "+", "characters that separate a user from an address extension"},
        {"tablemap_propagate_extension", "yes",
         "virtual/canonical answers found without the extension get it back, as Postfix does"},
        {"tablemap_hold_tables", "transport",
         "tables that defer mail for addresses on the hold list (mailgrid user move)"},
        {"tablemap_hold_poll", "1s", "how often the hold list (Redis or hold_file) is read"},
    };
    return specs;
}

namespace {
std::map<std::string, std::string> pairs(const SuiteConfig& c, const std::string& param) {
    std::map<std::string, std::string> out;
    for (auto& [name, value] : c.get_pairs(param)) out[name] = value;  // the last of a name wins
    return out;
}
}  // namespace

std::vector<TableDefinition> table_definitions(const SuiteConfig& c) {
    auto files = pairs(c, "tablemap_tables");
    auto styles = pairs(c, "tablemap_style");
    auto tcp = pairs(c, "tablemap_tcp");
    std::vector<TableDefinition> defs;
    for (const auto& [name, file] : files) {
        for (char ch : name)
            if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.'))
                c.fail("tablemap_tables", "bad table name \"" + name + "\"");
        TableDefinition d;
        d.name = name;
        d.file = file;
        // A table named after a style gets it: "virtual", "transport", ...
        if (auto s = parse_lookup_style(name)) d.style = *s;
        if (auto it = styles.find(name); it != styles.end()) {
            auto s = parse_lookup_style(it->second);
            if (!s) c.fail("tablemap_style", "unknown lookup style \"" + it->second + "\" for table " + name);
            d.style = *s;
            d.style_explicit = true;
        }
        if (auto it = tcp.find(name); it != tcp.end()) d.tcp_listen = it->second;
        defs.push_back(std::move(d));
    }
    for (const auto& [name, v] : styles)
        if (!files.count(name)) c.fail("tablemap_style", "no such table: " + name);
    for (const auto& [name, v] : tcp)
        if (!files.count(name)) c.fail("tablemap_tcp", "no such table: " + name);
    return defs;
}

Tablemap::Tablemap(asio::io_context& io, const SuiteConfig& config, MetricsRegistry* metrics, bool with_cache)
    : io_(io), config_(config), metrics_(metrics) {
    defs_ = table_definitions(config_);
    directories_ = std::make_unique<DirectoryRegistry>(io_, DirectoryRegistry::pool_options(config_),
                                                       config_.get_duration("ldif_reload_interval"), metrics_,
                                                       DirectoryRegistry::replica_options(config_));
    if (with_cache) {
        if (auto ro = RedisOptions::from_config(config_)) redis_ = std::make_unique<RedisClient>(io_, *ro);
        cache_.enabled = true;
        cache_.policy = CachePolicy::from_config(config_);
        cache_.redis = redis_.get();
        cache_.redis_prefix = config_.get("redis_prefix");
    }
}

void Tablemap::load(std::vector<std::string>& warnings) {
    TableOptions base;
    base.recipient_delimiter = config_.get("recipient_delimiter");
    base.propagate_extension = config_.get_bool("tablemap_propagate_extension");
    for (const auto& d : defs_) {
        auto cfg = LdapTableConfig::load(d.file);
        for (const auto& w : cfg.warnings) warnings.push_back(w);
        std::shared_ptr<Directory> dir;
        try {
            dir = directories_->for_table(cfg);
        } catch (const std::exception& e) {
            throw ConfigError(d.file + ": " + e.what());
        }
        auto opts = base;
        opts.style = d.style;
        auto table = std::make_unique<LdapTable>(d.name, std::move(cfg), dir);
        if (d.style_explicit && opts.style != LookupStyle::Exact && table->config().templates.uses_key_parts())
            warnings.push_back(d.file + ": table " + d.name + " uses %u/%d/%1..%9, so Postfix would query only the "
                                        "full key; style " + lookup_style_name(opts.style) + " adds no fallbacks");
        tables_[d.name] = std::make_unique<TableService>(d.name, std::move(table), opts, cache_, metrics_);
    }
    for (const auto& name : config_.get_list("tablemap_hold_tables")) {
        TableService* t = table(name);
        if (!t) {
            warnings.push_back(config_.where("tablemap_hold_tables") + ": no such table: " + name);
            continue;
        }
        t->use_hold_list(&hold_);
    }
    hold_poll_ = config_.get_duration("tablemap_hold_poll");
    if (hold_poll_ < std::chrono::milliseconds(10)) config_.fail("tablemap_hold_poll", "must be at least 10ms");
}

void Tablemap::apply_hold(std::uint64_t generation, const std::vector<std::string>& addresses) {
    std::size_t before = hold_.size();
    if (!hold_.update(generation, addresses)) return;
    // A new generation means the directory changed under a move: answers
    // cached before it may name the old backend.
    for (auto& [name, t] : tables_) t->clear_local_cache();
    if (before || hold_.size())
        log::info("hold list generation %llu: %zu address(es) held", static_cast<unsigned long long>(generation),
                  hold_.size());
}

awaitable<void> Tablemap::refresh_hold() {
    if (redis_) {
        const std::string prefix = config_.get("redis_prefix");
        std::vector<std::string> get{std::string("GET"), prefix + "hold:gen"};
        auto gen = co_await redis_->command(std::move(get));
        if (!gen || gen->is_error()) co_return;  // keep what we have: Redis will be back
        std::uint64_t g = 0;
        if (gen->type == RedisReply::Type::String)
            if (auto v = parse_int(gen->str); v && *v > 0) g = static_cast<std::uint64_t>(*v);
        if (g != hold_.generation()) {
            std::vector<std::string> members{std::string("SMEMBERS"), prefix + "hold"};
            auto set = co_await redis_->command(std::move(members));
            if (!set || set->type != RedisReply::Type::Array) co_return;
            std::vector<std::string> addresses;
            for (const auto& e : set->elements) addresses.push_back(e.str);
            apply_hold(g, addresses);
        }
        // Tell "mailgrid user move" which generation this frontend obeys.
        std::vector<std::string> seen{std::string("SET"), prefix + "hold:seen:" + hold_seen_id_,
                                      std::to_string(hold_.generation()), "PX",
                                      std::to_string(std::max<long long>(3000, 5 * hold_poll_.count()))};
        co_await redis_->command(std::move(seen));
        co_return;
    }
    const std::string path = config_.get("hold_file");
    if (path.empty()) co_return;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) apply_hold(0, {});
        co_return;
    }
    std::string stamp = std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
                        std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
    if (stamp == hold_file_stamp_) co_return;
    std::ifstream in(path);
    if (!in) co_return;
    std::stringstream text;
    text << in.rdbuf();
    hold_file_stamp_ = stamp;
    auto f = parse_hold_file(text.str());
    apply_hold(f.generation, f.addresses);
}

void Tablemap::start_hold_polling() {
    if (!redis_ && config_.get("hold_file").empty()) return;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    hold_seen_id_ = std::string(host) + ":" + std::to_string(::getpid());
    asio::co_spawn(
        io_,
        [](Tablemap* self) -> awaitable<void> {
            for (;;) {
                co_await self->refresh_hold();
                co_await sleep_for(self->hold_poll_);
            }
        }(this),
        asio::detached);
}

TableService* Tablemap::table(const std::string& name) {
    auto it = tables_.find(name);
    return it == tables_.end() ? nullptr : it->second.get();
}

void Tablemap::listen(Server& server) {
    ServiceOptions base;
    base.max_connections = static_cast<std::size_t>(config_.get_int("tablemap_max_connections", 1, 1'000'000));
    base.idle_timeout = config_.get_duration("tablemap_idle_timeout");
    base.max_buffer = 2 * tcp_table::kMaxRequestLine + socketmap::kMaxRequest;
    for (const auto& d : defs_) {
        if (d.tcp_listen.empty()) continue;
        std::string err;
        auto spec = ListenSpec::parse(d.tcp_listen, &err);
        if (!spec) config_.fail("tablemap_tcp", err);
        auto opt = base;
        opt.name = "tcp_table " + d.name;
        TableService* t = table(d.name);
        server.listen(*spec, opt, [this, t](Connection& c) { return serve_tcp_table(c, *t); });
    }
    auto sm = config_.get("tablemap_socketmap");
    if (!sm.empty()) {
        std::string err;
        auto spec = ListenSpec::parse(sm, &err);
        if (!spec) config_.fail("tablemap_socketmap", err);
        auto opt = base;
        opt.name = "socketmap";
        server.listen(*spec, opt, [this](Connection& c) { return serve_socketmap(c); });
    }
    directories_->start_watching();
}

// Requests already in the buffer are answered together in one write, so a
// client that pipelines gets one reply packet per batch. A client that does
// not read blocks only its own connection, until the idle timeout.
awaitable<void> Tablemap::serve_tcp_table(Connection& c, TableService& t) {
    std::string out;
    for (;;) {
        bool close = false;
        for (;;) {
            std::size_t consumed = 0;
            auto req = tcp_table::parse_request(c.buffer(), consumed);
            if (!req) break;
            c.consume(consumed);
            if (!req->ok) {
                out += req->reply;
                if (req->close) { close = true; break; }
                continue;
            }
            if (const Lookup* hit = t.cached(req->key)) out += tcp_table::format_reply(*hit);
            else out += tcp_table::format_reply(co_await t.lookup(std::move(req->key)));
        }
        if (!out.empty()) {
            if (!co_await c.write(out)) co_return;
            out.clear();
        }
        if (close) {
            co_await c.linger_close();
            co_return;
        }
        if (!co_await c.read_more()) co_return;
    }
}

awaitable<void> Tablemap::serve_socketmap(Connection& c) {
    std::string out;
    for (;;) {
        bool close = false;
        for (;;) {
            std::size_t consumed = 0;
            auto req = socketmap::parse_request(c.buffer(), consumed);
            if (!req) break;
            c.consume(consumed);
            if (!req->ok) {
                out += req->reply;
                if (req->close) { close = true; break; }
                continue;
            }
            TableService* t = table(req->name);
            if (!t) {
                out += socketmap::format_reply(Lookup::perm_fail("no such table: " + printable(req->name, 60)));
                continue;
            }
            if (const Lookup* hit = t->cached(req->key)) out += socketmap::format_reply(*hit);
            else out += socketmap::format_reply(co_await t->lookup(std::move(req->key)));
        }
        if (!out.empty()) {
            if (!co_await c.write(out)) co_return;
            out.clear();
        }
        if (close) {
            co_await c.linger_close();
            co_return;
        }
        if (!co_await c.read_more()) co_return;
    }
}

}  // namespace mailgrid
