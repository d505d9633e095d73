// rules - the rule engine behind the policy server and the milter: does
// the recipient exist, is its mailbox full, may the logged-in user send as
// this sender, and is the user over a sending limit.
//
// The directory is asked through prefixed mailgrid.cf parameters
// (policy_server_host, policy_search_base, policy_query_filter, ...: the
// ldap_table(5) parameters with "policy_" in front). Mailbox usage comes
// from Redis (<redis_prefix>usage:<address> = bytes, which maildir_deliver
// publishes) or from the Maildir++ maildirsize file where the store is
// local. Limit counters live in Redis so that every frontend shares them,
// or in process without Redis.
//
// Every check runs on the event loop; callers on other threads (the
// milter) post into it. A directory or Redis that cannot answer never
// turns into "unknown user": what happens then is configured per rule.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache/lru_cache.hpp"
#include "cache/redis_client.hpp"
#include "config/ldap_table.hpp"
#include "config/suite_config.hpp"
#include "directory/registry.hpp"
#include "mail/maildir_name.hpp"
#include "mail/maildirsize.hpp"
#include "metrics/metrics.hpp"
#include "policy/limits.hpp"
#include "proto/policy.hpp"

namespace mailgrid {

// The policy_* parameters of the rule engine.
const std::vector<ParamSpec>& policy_rule_params();

// What one decision is about: a policy delegation request, or what a
// milter has seen of the SMTP session so far.
struct CheckRequest {
    policy::Stage stage = policy::Stage::Unknown;
    std::string sender;     // MAIL FROM, without <>; "" = null sender
    std::string recipient;  // RCPT TO, without <>
    std::string login;      // SASL login; "" = not authenticated
    std::string client;     // "name[address]" for logs
    std::string queue_id;   // for logs; "" = NOQUEUE
    std::uint64_t size = 0; // SIZE= at MAIL FROM, the real size at the end of the message; 0 = unknown
};

struct Verdict {
    enum class Action { Dunno, Reject, Defer, DeferIfPermit };
    enum class Rule { None, Recipient, Quota, Sender, Limit };
    Action action = Action::Dunno;
    Rule rule = Rule::None;
    int code = 0;          // SMTP reply code; 0 with Dunno
    std::string status;    // enhanced status code, "5.1.1"
    std::string text;      // the rest of the reply
    std::string policy_text;   // the text of a policy reply, when it differs: Postfix
                               // itself writes "<address>: Recipient address rejected: "
    bool unavailable = false;  // decided because the directory or Redis could not answer
    bool logged = false;       // already in the log (a limit is logged once per window)

    // The policy delegation action: "DUNNO", "550 5.1.1 text",
    // "DEFER_IF_PERMIT 4.3.0 text".
    std::string policy_action() const;
    // "550 5.1.1 text" ("" for Dunno).
    std::string reply() const;
    bool dunno() const { return action == Action::Dunno; }
};
const char* rule_name(Verdict::Rule r);      // "none", "recipient", "quota", "sender_login", "limit"
const char* action_name(Verdict::Action a);  // "dunno", "reject", "defer", "defer_if_permit"

// What the engine remembers about one message between its recipients.
// Owned by the caller (one per Postfix policy "instance", one per milter
// message); used on the event loop only.
struct MessageState {
    bool counted = false;                 // the message counts against the sender's message limits
    std::optional<Verdict> limited;       // over a message limit: every further recipient gets this
    std::optional<Verdict> sender;        // the sender check's result
};

class PolicyEngine {
public:
    PolicyEngine(asio::io_context& io, const SuiteConfig& config, MetricsRegistry* metrics);
    ~PolicyEngine();

    // Reads and checks the policy_* parameters. Throws ConfigError.
    void load(std::vector<std::string>& warnings);
    // Opens the directory (reads an LDIF file now) and Redis. Throws if an
    // LDIF file cannot be read.
    void open();
    void start_watching();  // LDIF hot reload, for daemons
    void shutdown();

    // The decision for one protocol stage: MAIL (sender), RCPT (sender,
    // recipient, quota, limits), END-OF-MESSAGE (quota with the real size,
    // when there is one recipient). Dunno for the other stages.
    awaitable<Verdict> check(CheckRequest r, std::shared_ptr<MessageState> state);
    // End of a message with several recipients (the milter knows them
    // all): refuse it when it no longer fits any of their mailboxes; when
    // it fits some, accept it and leave the others to the store's quota.
    awaitable<Verdict> check_final_size(CheckRequest context, std::vector<std::string> recipients);

    bool has_directory() const { return directory_ != nullptr; }
    DirectoryRegistry* directories() { return directories_.get(); }

    struct DirEntry {
        std::string dn;
        std::optional<maildirsize::Limit> quota;  // from the quota attribute
        std::string mailbox;                      // address attribute, lower case
        std::vector<std::string> logins;          // login attribute
        std::vector<std::string> limits;          // limit attribute
    };
    struct DirAnswer {
        enum class Kind { Found, NotFound, TempFail } kind = Kind::NotFound;
        std::string why;
        std::vector<DirEntry> entries;
    };
    struct Usage {
        enum class Kind { Known, Unknown, TempFail } kind = Kind::Unknown;
        maildirsize::Usage usage;
        std::optional<maildirsize::Limit> file_limit;  // maildirsize's own first line
        std::string why;
    };

private:
    enum class Query { Address, Login, Domain };
    enum class OnFailure { Accept, Defer, Local };

    awaitable<Verdict> check_sender(const CheckRequest& r, MessageState& st);
    awaitable<Verdict> check_recipient(const CheckRequest& r);
    awaitable<Verdict> check_quota(const CheckRequest& r, const std::string& address, const DirEntry& e);
    awaitable<Verdict> check_limits(const CheckRequest& r, MessageState& st);
    awaitable<Verdict> final_size(const CheckRequest& context, std::vector<std::string> recipients);

    awaitable<DirAnswer> lookup(Query q, std::string key);
    // Is mail to this domain ours to check? nullopt: cannot tell now.
    awaitable<std::optional<bool>> local_domain(std::string domain, std::string* why);
    // The entries for an address, trying it without its extension and,
    // for recipients, the @domain catch-all.
    awaitable<DirAnswer> find_address(const std::string& address, bool catchall);
    awaitable<Usage> usage_of(const std::string& mailbox, const std::optional<maildirsize::Limit>& limit,
                              std::uint64_t size);
    Usage read_maildirsize(const std::string& mailbox, const std::optional<maildirsize::Limit>& limit,
                           std::uint64_t size) const;
    // Index of the charge over its limit, -1 if none, nullopt if Redis failed.
    awaitable<std::optional<int>> charge_redis(const std::vector<limits::Charge>& charges);

    Verdict unavailable(Verdict::Rule rule, OnFailure mode, const std::string& text, const std::string& policy_text,
                        const std::string& why);
    Verdict finish(const CheckRequest& r, Verdict v);  // metrics and the log line

    asio::io_context& io_;
    const SuiteConfig& config_;
    MetricsRegistry* metrics_;

    // directory
    std::unique_ptr<DirectoryRegistry> directories_;
    std::shared_ptr<Directory> directory_;
    LdapTableConfig query_;
    bool directory_configured_ = false;
    std::string login_filter_, domain_filter_, domain_base_;
    std::vector<std::string> attributes_;
    std::chrono::milliseconds positive_ttl_{0}, negative_ttl_{0};
    LruCache<DirAnswer> cache_{0};

    // rules
    bool recipient_check_ = true, catchall_ = true, quota_check_ = true;
    std::string delimiters_;
    std::string quota_attribute_, address_attribute_, login_attribute_, limit_attribute_;
    std::optional<maildirsize::Limit> default_quota_;
    enum class UsageSource { Redis, Maildirsize, None } usage_source_ = UsageSource::Redis;
    std::string maildir_root_;
    maildir::Layout layout_;
    bool over_quota_reject_ = false;
    enum class SenderCheck { None, Authenticated, Known, Unauthenticated, Both } sender_check_ = SenderCheck::Authenticated;
    OnFailure recipient_failure_ = OnFailure::Defer, quota_failure_ = OnFailure::Accept,
              sender_failure_ = OnFailure::Defer, limit_failure_ = OnFailure::Local;
    limits::Limits default_limits_;

    // counters and usage
    std::unique_ptr<RedisClient> redis_;
    std::string redis_prefix_;
    limits::LocalCounters local_counters_;
    LruCache<char> logged_windows_{100000};  // limit windows already logged

    std::chrono::steady_clock::time_point last_failure_log_{};
    unsigned suppressed_failures_ = 0;

    // metrics: decisions[rule][action]
    Counter* m_decisions_[5][4] = {};
    Counter *m_directory_failures_ = nullptr, *m_redis_failures_ = nullptr;
};

}  // namespace mailgrid
