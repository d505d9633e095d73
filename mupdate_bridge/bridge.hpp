// bridge - mupdate_bridge's MUPDATE master: the mailbox list in memory,
// the group commit to the store, the sessions of backends and frontends,
// and the followers' UPDATE streams.
//
// Every change is applied to the list in memory as the command arrives (so
// later commands of the same pipeline see it), written to the store in one
// transaction with whatever else is waiting (group commit), and only then
// acknowledged and sent to the followers. If the store fails, every change
// not yet written is taken back out of memory and the connections that
// sent them are closed without an answer: nothing is acknowledged that is
// not stored.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "config/suite_config.hpp"
#include "location/store.hpp"
#include "metrics/metrics.hpp"
#include "net/server.hpp"
#include "policy.hpp"
#include "proto/mupdate.hpp"
#include "sasl.hpp"
#include "transport.hpp"
#include "util/hmac.hpp"

namespace mailgrid::bridge {

const std::vector<ParamSpec>& bridge_params();

// One client following the list (UPDATE): what changed since its last
// write, and replies to send after those changes (NOOP is a barrier).
struct Follower {
    explicit Follower(asio::any_io_executor ex) : wake(ex) {}
    std::string tag;
    std::optional<std::set<std::string>> hosts;  // PARTIAL-UPDATE
    std::vector<std::string> pending;
    std::unordered_set<std::string> pending_set;
    std::vector<std::string> replies;
    std::chrono::steady_clock::time_point first_pending{};
    bool closing = false;  // LOGOUT: stop after the replies
    bool closed = false;   // the connection is gone
    bool syncing = true;   // still sending the initial list
    asio::steady_timer wake;
};

class Publisher;
class Upstream;

class Bridge {
public:
    Bridge(asio::io_context& io, const SuiteConfig& config, MetricsRegistry* metrics);
    ~Bridge();

    // Reads every parameter; throws ConfigError or std::exception with the
    // reason. Opens nothing.
    void configure(std::vector<std::string>& warnings);
    // Opens the store, loads the list, starts SASL. false (logged) if the
    // store cannot be read.
    awaitable<bool> start();
    void listen(Server& server);
    void stop();

    // The MUPDATE session of one connection.
    awaitable<void> serve(Connection& c);

    // The list as it is now; the published maps read it.
    const location::MailboxList& list() const { return list_; }
    std::size_t followers() const { return followers_.size(); }
    bool following() const { return !follow_.empty(); }
    const std::string& follow_target() const { return follow_; }

    // Applies changes that come from elsewhere (the store's other writers,
    // the followed master) to memory and the followers. With `write`, they
    // are also committed to the store first (the followed master's).
    awaitable<bool> apply_external(std::vector<location::Change> changes, bool write);
    // Replaces the list with a full copy (after a store resync or the
    // followed master's UPDATE), sending followers what differs. Refuses
    // (false, logged) to drop more than the push guard's share at once.
    awaitable<bool> replace_all(location::MailboxList fresh, const std::string& why, bool write);

    // Group commit: resolves once the changes are durable (ok) or known lost.
    awaitable<location::CommitResult> commit(std::vector<location::Change> changes);

private:
    struct Session;
    struct Waiter;
    struct Output;

    awaitable<void> commit_loop();
    void rollback(std::vector<location::Change>& changes);
    void notify(const std::vector<location::Change>& changes);
    void notify_name(const std::string& name, std::string_view old_server, std::string_view new_server);
    void update_gauges();

    awaitable<bool> flush(Session& s, Output& out);
    awaitable<bool> handle(Session& s, const mupdate::Line& line, Output& out);
    awaitable<bool> authenticate(Session& s, const mupdate::Line& line, Output& out);
    awaitable<bool> starttls(Session& s, const mupdate::Line& line, Output& out);
    awaitable<bool> list(Session& s, const mupdate::Line& line, Output& out);
    void find(Session& s, const mupdate::Line& line, Output& out);
    void write_op(Session& s, Op op, const mupdate::Line& line, Output& out);
    awaitable<void> stream(Session& s, const mupdate::Line& line);
    awaitable<void> pump(Session& s, std::shared_ptr<Follower> f, bool* pump_done, asio::steady_timer* done);
    std::string banner(bool tls) const;

    asio::io_context& io_;
    const SuiteConfig& config_;
    MetricsRegistry* metrics_;

    location::MailboxList list_;
    std::unique_ptr<location::MailboxStore> store_;
    location::StoreOptions store_options_;
    std::unique_ptr<SaslServer> sasl_;
    SaslOptions sasl_options_;
    std::unique_ptr<asio::ssl::context> tls_ctx_;
    std::map<std::string, Writer> identities_;
    std::vector<std::string> mechs_plain_, mechs_tls_;

    std::string listen_;
    std::string servername_;
    bool plaintext_auth_ = true;
    std::chrono::milliseconds idle_timeout_{};
    std::chrono::milliseconds auth_fail_delay_{};
    std::chrono::milliseconds auth_cache_ttl_{};
    std::size_t max_connections_ = 0;
    std::size_t max_batch_ = 10000;
    double push_max_share_ = 0.1;
    std::size_t push_floor_ = 10;
    std::string follow_;

    // Group commit: changes waiting for the next transaction.
    std::vector<location::Change> queue_;
    std::vector<std::shared_ptr<Waiter>> queue_waiters_;
    bool committing_ = false;
    bool resyncing_ = false;

    std::set<std::shared_ptr<Follower>> followers_;

    // Successful PLAIN exchanges, keyed by a keyed hash of the response.
    struct CachedLogin {
        std::string identity;
        std::chrono::steady_clock::time_point expires;
    };
    std::map<std::string, CachedLogin> login_cache_;
    std::optional<HmacSha256> login_cache_mac_;  // keys login_cache_ by the PLAIN credentials

    std::unique_ptr<Publisher> publisher_;
    std::unique_ptr<Upstream> upstream_;

    struct Metrics {
        Gauge *mailboxes = nullptr, *active = nullptr, *followers = nullptr, *sessions = nullptr;
        Counter *commits = nullptr, *committed_changes = nullptr, *commit_failures = nullptr;
        Histogram *commit_seconds = nullptr, *find_seconds = nullptr, *list_seconds = nullptr,
                  *write_seconds = nullptr, *stream_delay = nullptr, *sync_seconds = nullptr;
        std::map<Op, Counter*> updates;
        std::map<std::string, Counter*> refused;
        std::map<std::string, Counter*> auth;
        Counter *bad_commands = nullptr;
    } m_;
    Counter& refused(const std::string& why);
};

}  // namespace mailgrid::bridge
