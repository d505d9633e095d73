// agent - the directory on top of mailbox.hpp: who exists, where their
// Maildir is and what quota it has, asked of LDAP or the embedded LDIF file
// through the same query parameters (deliver_server_host, deliver_search_base,
// deliver_query_filter ...), cached in LMTP mode; and the listing of every
// user for purge and reconcile.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache/lru_cache.hpp"
#include "config/ldap_table.hpp"
#include "directory/registry.hpp"
#include "mailbox.hpp"
#include "net/asio.hpp"

namespace mailgrid {

// A user as purge and reconcile see them.
struct UserEntry {
    std::string dn;
    std::string address;
    std::vector<std::string> components;  // empty: no usable mailbox path (why says)
    std::string why;
    bool purge = true;
};

class Agent {
public:
    // offload: run file work on a thread pool of its own (LMTP); otherwise
    // inline (one delivery per process). cache: remember directory answers.
    Agent(asio::io_context& io, const SuiteConfig& config, MailboxStore& store, MetricsRegistry* metrics,
          bool offload, bool cache);
    ~Agent();

    // Reads the directory query (deliver_server_host ...). Throws ConfigError.
    void load(std::vector<std::string>& warnings);
    // Opens the directory now (otherwise on first use): an LDIF file is
    // read, LDAP connects on demand. Throws if an LDIF file cannot be read.
    void open_directory();

    MailboxStore& store() { return store_; }
    awaitable<Target> resolve(const Recipient& r);
    // Delivers (header, then message) for a resolved recipient; asks the
    // directory again when a limit read from maildirsize would refuse it.
    awaitable<Outcome> deliver(const Recipient& r, Target target, std::shared_ptr<const std::string> header,
                               std::shared_ptr<const std::string> message);

    // One message for several resolved recipients (an LMTP transaction):
    // written once, linked into every Maildir (MailboxStore::deliver_all),
    // with the same quota refresh as deliver().
    awaitable<std::vector<Outcome>> deliver_all(std::vector<std::pair<Recipient, Target>> to,
                                                std::shared_ptr<const std::string> header,
                                                std::shared_ptr<const std::string> message);

    // Every user of deliver_user_filter. nullopt (and *why) when the
    // directory cannot answer in full.
    awaitable<std::optional<std::vector<UserEntry>>> list_users(std::string* why);

    bool has_directory() const { return directories_ != nullptr; }
    DirectoryRegistry& directories() { return *directories_; }
    void shutdown();
    // Waits until the file work handed to the thread pool is done.
    void wait_for_deliveries();

private:
    struct Found {
        enum class Kind { Entry, None, TempFail } kind = Kind::None;
        std::string why;
        Entry entry;
    };
    awaitable<Found> lookup(const std::string& key);
    // Over a limit read from maildirsize: asks the directory, and delivers
    // again when it gives a limit.
    awaitable<Outcome> refresh_and_retry(const Recipient& r, const Target& target, Outcome refused,
                                         std::shared_ptr<const std::string> header,
                                         std::shared_ptr<const std::string> message);
    template <typename F>
    awaitable<decltype(std::declval<F&>()())> offload(F f);

    asio::io_context& io_;
    const SuiteConfig& config_;
    MailboxStore& store_;
    MetricsRegistry* metrics_;
    bool offloading_;
    bool cache_enabled_;
    std::unique_ptr<asio::thread_pool> pool_;

    std::unique_ptr<DirectoryRegistry> directories_;
    std::shared_ptr<Directory> directory_;
    LdapTableConfig query_;
    std::chrono::milliseconds positive_ttl_{0}, negative_ttl_{0};
    LruCache<Found> cache_{0};

    Counter *m_lookups_ = nullptr, *m_lookup_failures_ = nullptr;
};

}  // namespace mailgrid
