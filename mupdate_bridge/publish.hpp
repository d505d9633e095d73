// publish - the user -> backend map, kept current for the rest of the
// suite: an LDIF file that ldap_tablemap and webmail_locator read with an
// unchanged ldap_table(5) file (server_host = ldif:/path), and a socketmap
// listener. The store holds the same map for LocationStore readers.
//
// One entry per user with an active INBOX:
//   dn: uid=alice,ou=mailboxes,dc=mupdate
//   objectClass: account
//   objectClass: mailSuiteRecipient
//   uid: alice
//   host: mail01.example.com
//   mailacceptinggeneralid: alice
//   maildrop: alice@mail01.example.com
// socketmap: the map "mailbox" answers a user with the backend's name.
#pragma once

#include <map>
#include <string>

#include "config/suite_config.hpp"
#include "location/store.hpp"
#include "metrics/metrics.hpp"
#include "net/server.hpp"

namespace mailgrid::bridge {

class Bridge;

class Publisher {
public:
    Publisher(asio::io_context& io, const Bridge& bridge, const SuiteConfig& config, MetricsRegistry* metrics);
    void listen(Server& server);
    // Takes the users from the loaded list and writes the file once.
    void start();
    void stop();
    void changed(const location::Change& c);

    // The LDIF text of a user map (one entry per user, sorted).
    static std::string ldif(const std::map<std::string, std::string>& users, const std::string& base);

private:
    awaitable<void> writer();
    awaitable<void> serve_socketmap(Connection& c);

    asio::io_context& io_;
    const Bridge& bridge_;
    std::map<std::string, std::string> users_;
    std::string ldif_path_, base_, socketmap_;
    std::chrono::milliseconds interval_{};
    bool dirty_ = false, running_ = false, stopped_ = false;
    asio::steady_timer wake_;
    Counter *writes_ = nullptr, *lookups_ = nullptr;
    Gauge* users_gauge_ = nullptr;
};

}  // namespace mailgrid::bridge
