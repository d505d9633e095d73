// ldap_directory - OpenLDAP's libldap behind the Directory interface.
//
// One pool per server set (URIs + bind identity), shared by every table
// that names the same servers. Each connection carries many searches at
// once (LDAP message ids), read by the event loop when its socket is
// readable, so one slow search never holds up another. Connections are set
// up off the loop (libldap connects and binds synchronously), probed when
// idle or when they go quiet with work outstanding, replaced when they fail
// a probe or reach their maximum lifetime, and a search that loses its
// connection is sent again on another one before its deadline. User binds
// (password checks) use connections of their own, one bind at a time each.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/ldap_table.hpp"
#include "directory/directory.hpp"
#include "metrics/metrics.hpp"

namespace mailgrid {

struct LdapPoolOptions {
    int connections = 4;                // search connections per server set
    int bind_connections = 8;           // connections for user binds
    int max_pending = 64;               // searches in flight per connection
    std::chrono::milliseconds probe_interval{30'000};  // probe a connection idle this long
    std::chrono::milliseconds probe_timeout{3'000};    // ...which must answer within this
    std::chrono::milliseconds max_lifetime{3'600'000};
    std::chrono::milliseconds reconnect_delay{1'000};  // after a failed connect
    bool tcp_keepalive = true;
    std::chrono::microseconds spin{0};  // wait this long for an answer before sleeping, when idle
};

class LdapDirectory : public Directory {
public:
    LdapDirectory(asio::io_context& io, ServerSet server, LdapPoolOptions options, MetricsRegistry* metrics = nullptr);
    ~LdapDirectory() override;

    awaitable<SearchResult> search(SearchRequest request) override;
    awaitable<BindResult> bind_check(std::string dn, std::string password, std::chrono::milliseconds timeout) override;
    std::string describe() const override { return server_.describe(); }

    // Open connections (search + bind), for tests and metrics.
    std::size_t open_connections() const;
    void shutdown();

private:
    struct Conn;
    struct Pending;
    struct Pool;

    awaitable<std::shared_ptr<Conn>> acquire(Pool& pool, std::chrono::steady_clock::time_point deadline,
                                             std::string& why);
    awaitable<void> connect(Pool& pool);
    awaitable<void> reader(std::shared_ptr<Conn> conn);
    awaitable<void> maintenance();
    void handle_message(Conn& conn, void* message);
    void drain(Conn& conn);
    void spin_for(Conn& conn, const Pending& p);
    void kill(Conn& conn, const std::string& why, bool quiet = false);
    void notify(Pool& pool);
    void send_probe(Conn& conn);
    void warn_limited(const std::string& text);

    asio::io_context& io_;
    ServerSet server_;
    LdapPoolOptions options_;
    std::unique_ptr<Pool> search_pool_, bind_pool_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    std::chrono::steady_clock::time_point last_warning_{};
    std::string last_warning_text_;
    std::uint64_t next_id_ = 1;
    int in_flight_ = 0;          // searches waiting for an answer, all connections
    double typical_us_ = 0;      // moving average of the server's answer time

    Counter* m_connects_ = nullptr;
    Counter* m_connect_failures_ = nullptr;
    Counter* m_replaced_ = nullptr;
    Counter* m_retries_ = nullptr;
    Counter* m_timeouts_ = nullptr;
    Histogram* m_latency_ = nullptr;
};

}  // namespace mailgrid
