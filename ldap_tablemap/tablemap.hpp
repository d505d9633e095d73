// tablemap - the tables ldap_tablemap serves and the two wire protocols it
// serves them over (tcp_table(5) per table, socketmap_table(5) for all).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cache/redis_client.hpp"
#include "config/suite_config.hpp"
#include "directory/registry.hpp"
#include "lookup/table_service.hpp"
#include "net/server.hpp"

namespace mailgrid {

const std::vector<ParamSpec>& tablemap_params();

struct TableDefinition {
    std::string name;
    std::string file;
    LookupStyle style = LookupStyle::Exact;
    bool style_explicit = false;  // from tablemap_style, not from the name
    std::string tcp_listen;  // "" = no tcp_table listener
};

// Tables from tablemap_tables / tablemap_style / tablemap_tcp.
// Throws ConfigError naming the parameter.
std::vector<TableDefinition> table_definitions(const SuiteConfig& c);

class Tablemap {
public:
    Tablemap(asio::io_context& io, const SuiteConfig& config, MetricsRegistry* metrics, bool with_cache);

    // Loads every table file (and LDIF file). Throws ConfigError.
    void load(std::vector<std::string>& warnings);
    // Binds the configured listeners on `server`.
    void listen(Server& server);

    TableService* table(const std::string& name);
    const std::vector<TableDefinition>& definitions() const { return defs_; }
    DirectoryRegistry& directories() { return *directories_; }

    awaitable<void> serve_tcp_table(Connection& c, TableService& t);
    awaitable<void> serve_socketmap(Connection& c);
    // Reads the hold list now and then every tablemap_hold_poll.
    void start_hold_polling();
    awaitable<void> refresh_hold();
    const HoldList& hold_list() const { return hold_; }

private:
    asio::io_context& io_;
    const SuiteConfig& config_;
    MetricsRegistry* metrics_;
    std::vector<TableDefinition> defs_;
    std::unique_ptr<DirectoryRegistry> directories_;
    std::unique_ptr<RedisClient> redis_;
    CacheSetup cache_;
    std::map<std::string, std::unique_ptr<TableService>> tables_;
    void apply_hold(std::uint64_t generation, const std::vector<std::string>& addresses);
    HoldList hold_;
    std::chrono::milliseconds hold_poll_{1000};
    std::string hold_seen_id_, hold_file_stamp_;
};

}  // namespace mailgrid
