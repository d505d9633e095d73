#include "daemon/common.hpp"

#include "log/log.hpp"

namespace mailgrid {

const std::vector<ParamSpec>& common_params() {
    static const std::vector<ParamSpec> specs = {
        {"syslog_name", "mailgrid", "syslog ident prefix: <syslog_name>/<program>"},
        {"syslog_facility", "mail", "syslog facility"},
        {"daemon_user", "", "user to run as after binding, when started as root"},
        {"cache_size", "100000", "entries in the in-process lookup cache (0 = off)"},
        {"cache_ttl", "60s", "how long a found answer is cached"},
        {"cache_negative_ttl", "30s", "how long a not-found answer is cached"},
        {"redis_server", "", "shared cache: redis://[:password@]host:port/db, or unix:/path; empty = none"},
        {"redis_password", "", "Redis AUTH password (overrides the one in redis_server)"},
        {"redis_timeout", "250ms", "deadline of each Redis command"},
        {"redis_prefix", "mailgrid:", "prefix of every Redis key"},
        {"hold_file", "",
         "list of addresses whose mail is held during a mailbox move, when Redis is not used (one host only)"},
        {"ldap_connections", "4", "search connections per LDAP server set"},
        {"ldap_bind_connections", "8", "connections for user password binds per server set"},
        {"ldap_max_pending", "64", "searches in flight per LDAP connection"},
        {"ldap_idle_probe", "30s", "probe an LDAP connection idle this long"},
        {"ldap_probe_timeout", "3s", "a probe or a quiet busy connection must answer within this"},
        {"ldap_max_lifetime", "1h", "replace LDAP connections older than this"},
        {"ldap_reconnect_delay", "1s", "wait after a failed LDAP connect before trying again"},
        {"ldap_tcp_keepalive", "yes", "TCP keepalive on LDAP connections"},
        {"ldap_idle_spin", "100us", "when only one search is waiting, poll for its answer this long before sleeping"},
        {"ldap_replica_base", "",
         "answer searches under this DN from an in-memory copy kept current by RFC 4533 sync (slapd's syncprov); "
         "empty = ask the server every time"},
        {"ldap_replica_probe", "5s", "the replica's connection must answer a probe this often, or it leaves service"},
        {"ldap_replica_retry", "5s", "wait after a failed or lost sync before a new refresh"},
        {"ldap_replica_fold", "2000", "changes kept beside the replica's copy before a new full copy is made"},
        {"ldif_reload_interval", "1s", "how often the embedded directory's file is checked for changes"},
    };
    return specs;
}

const std::vector<std::string>& program_prefixes() {
    static const std::vector<std::string> p = {"tablemap_", "saslauth_", "deliver_", "mupdate_", "locator_",
                                               "policy_", "milter_", "admin_"};
    return p;
}

void init_logging(const std::string& program, const SuiteConfig& c, bool to_stderr, int verbose) {
    log::init(program, to_stderr ? log::Sink::Stderr : log::Sink::Syslog, c.get("syslog_name"), c.get("syslog_facility"));
    log::set_verbose(verbose);
}

}  // namespace mailgrid
