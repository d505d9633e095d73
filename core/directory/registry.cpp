#include "directory/registry.hpp"

#include "config/suite_config.hpp"

namespace mailgrid {

std::shared_ptr<Directory> DirectoryRegistry::for_table(const LdapTableConfig& t) {
    return t.embedded ? ldif(t.ldif_path) : ldap(t.server);
}

std::shared_ptr<Directory> DirectoryRegistry::ldif(const std::string& path) {
    auto& slot = ldif_[path];
    if (!slot) {
        slot = std::make_shared<LdifDirectory>(io_, path, ldif_reload_);
        if (watching_) slot->start_watching();
    }
    return slot;
}

std::shared_ptr<Directory> DirectoryRegistry::ldap(const ServerSet& servers) {
    auto& slot = ldap_[servers.key()];
    if (!slot) slot = std::make_shared<LdapDirectory>(io_, servers, pool_, metrics_);
    return slot;
}

void DirectoryRegistry::start_watching() {
    if (watching_) return;
    watching_ = true;
    for (auto& [p, d] : ldif_) d->start_watching();
}

void DirectoryRegistry::shutdown() {
    for (auto& [k, d] : ldap_) d->shutdown();
}

LdapPoolOptions DirectoryRegistry::pool_options(const SuiteConfig& c) {
    LdapPoolOptions o;
    o.connections = static_cast<int>(c.get_int("ldap_connections", 1, 1000));
    o.bind_connections = static_cast<int>(c.get_int("ldap_bind_connections", 1, 1000));
    o.max_pending = static_cast<int>(c.get_int("ldap_max_pending", 1, 100000));
    o.probe_interval = c.get_duration("ldap_idle_probe");
    o.probe_timeout = c.get_duration("ldap_probe_timeout");
    o.max_lifetime = c.get_duration("ldap_max_lifetime");
    o.reconnect_delay = c.get_duration("ldap_reconnect_delay");
    o.tcp_keepalive = c.get_bool("ldap_tcp_keepalive");
    o.spin = c.get_duration_us("ldap_idle_spin");
    return o;
}

}  // namespace mailgrid
