// registry - one Directory per LDIF file and per LDAP server set, shared by
// every table and check that names it.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "config/ldap_table.hpp"
#include "directory/ldap_directory.hpp"
#include "directory/ldif_directory.hpp"
#include "directory/replica_directory.hpp"

namespace mailgrid {

class SuiteConfig;

class DirectoryRegistry {
public:
    DirectoryRegistry(asio::io_context& io, LdapPoolOptions pool, std::chrono::milliseconds ldif_reload,
                      MetricsRegistry* metrics, ReplicaOptions replica = {})
        : io_(io), pool_(pool), ldif_reload_(ldif_reload), metrics_(metrics), replica_(std::move(replica)) {}

    // Throws std::runtime_error if an LDIF file cannot be read.
    std::shared_ptr<Directory> for_table(const LdapTableConfig& table);
    std::shared_ptr<Directory> ldif(const std::string& path);
    // filter_template: what will be searched, so that a replica indexes it.
    std::shared_ptr<Directory> ldap(const ServerSet& servers, std::string_view filter_template = {});
    void start_watching();  // LDIF hot reload, LDAP replicas (daemons only)
    void shutdown();

    // Pool options from mailgrid.cf (ldap_connections, ldap_probe_interval, ...).
    static LdapPoolOptions pool_options(const SuiteConfig& config);
    // ldap_replica_base and its timing; base empty = searches go to the server.
    static ReplicaOptions replica_options(const SuiteConfig& config);

private:
    asio::io_context& io_;
    LdapPoolOptions pool_;
    std::chrono::milliseconds ldif_reload_;
    MetricsRegistry* metrics_;
    std::map<std::string, std::shared_ptr<LdifDirectory>> ldif_;
    ReplicaOptions replica_;
    std::map<std::string, std::shared_ptr<LdapDirectory>> ldap_;
    std::map<std::string, std::shared_ptr<ReplicaDirectory>> replicas_;
    bool watching_ = false;
};

}  // namespace mailgrid
