#include "directory/registry.hpp"

#include "config/suite_config.hpp"
#include "directory/dn.hpp"
#include "util/strings.hpp"

namespace mailgrid {

std::shared_ptr<Directory> DirectoryRegistry::for_table(const LdapTableConfig& t) {
    return t.embedded ? ldif(t.ldif_path) : ldap(t.server, t.query_filter);
}

std::shared_ptr<Directory> DirectoryRegistry::ldif(const std::string& path) {
    auto& slot = ldif_[path];
    if (!slot) {
        slot = std::make_shared<LdifDirectory>(io_, path, ldif_reload_);
        if (watching_) slot->start_watching();
    }
    return slot;
}

std::shared_ptr<Directory> DirectoryRegistry::ldap(const ServerSet& servers, std::string_view filter_template) {
    auto& slot = ldap_[servers.key()];
    if (!slot) slot = std::make_shared<LdapDirectory>(io_, servers, pool_, metrics_);
    if (replica_.base.empty()) return slot;
    auto& replica = replicas_[servers.key()];
    if (!replica) {
        replica = std::make_shared<ReplicaDirectory>(io_, servers, slot, replica_, metrics_);
        if (watching_) replica->start();
    }
    if (!filter_template.empty()) replica->expect_filter(filter_template);
    return replica;
}

void DirectoryRegistry::start_watching() {
    if (watching_) return;
    watching_ = true;
    for (auto& [p, d] : ldif_) d->start_watching();
    for (auto& [k, r] : replicas_) r->start();
}

void DirectoryRegistry::shutdown() {
    for (auto& [k, r] : replicas_) r->shutdown();
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

ReplicaOptions DirectoryRegistry::replica_options(const SuiteConfig& c) {
    ReplicaOptions o;
    o.base = c.get("ldap_replica_base");
    if (!o.base.empty() && !normalize_dn(o.base)) c.fail("ldap_replica_base", "not a DN: " + printable(o.base, 200));
    o.probe_interval = c.get_duration("ldap_replica_probe");
    o.probe_timeout = c.get_duration("ldap_probe_timeout");
    o.retry_delay = c.get_duration("ldap_replica_retry");
    o.fold_after = static_cast<std::size_t>(c.get_int("ldap_replica_fold", 1, 10'000'000));
    return o;
}

}  // namespace mailgrid
