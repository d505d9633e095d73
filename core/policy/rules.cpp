// rules - the policy rule engine (see rules.hpp).
#include "policy/rules.hpp"

#include <cerrno>

#include "config/suite_ldap.hpp"
#include "directory/expand.hpp"
#include "log/log.hpp"
#include "mail/address.hpp"
#include "mail/maildir.hpp"
#include "util/strings.hpp"

namespace mailgrid {

const std::vector<ParamSpec>& policy_rule_params() {
    static const std::vector<ParamSpec> specs = {
        {"policy_server_host", "",
         "the directory: ldif:/path/users.ldif or LDAP servers as in ldap_table(5); empty: limits only"},
        {"policy_server_port", "389", "as server_port in ldap_table(5)"},
        {"policy_search_base", "", "as search_base in ldap_table(5)"},
        {"policy_query_filter", "(|(mailacceptinggeneralid=%s)(mail=%s))",
         "finds the entries of an address (recipients, and senders for the login check)"},
        {"policy_scope", "sub", "as scope in ldap_table(5)"},
        {"policy_bind", "yes", "as bind in ldap_table(5)"},
        {"policy_bind_dn", "", "as bind_dn in ldap_table(5)"},
        {"policy_bind_pw", "", "as bind_pw in ldap_table(5)"},
        {"policy_version", "3", "LDAP protocol version"},
        {"policy_timeout", "10", "seconds an LDAP search may take"},
        {"policy_start_tls", "no", "as start_tls in ldap_table(5)"},
        {"policy_tls_ca_cert_file", "", "as tls_ca_cert_file in ldap_table(5)"},
        {"policy_tls_ca_cert_dir", "", "as tls_ca_cert_dir in ldap_table(5)"},
        {"policy_tls_cert", "", "as tls_cert in ldap_table(5)"},
        {"policy_tls_key", "", "as tls_key in ldap_table(5)"},
        {"policy_tls_require_cert", "no", "as tls_require_cert in ldap_table(5)"},
        {"policy_tls_cipher_suite", "", "as tls_cipher_suite in ldap_table(5)"},
        {"policy_sasl_mechs", "", "as sasl_mechs in ldap_table(5)"},
        {"policy_sasl_realm", "", "as sasl_realm in ldap_table(5)"},
        {"policy_sasl_authz_id", "", "as sasl_authz_id in ldap_table(5)"},
        {"policy_sasl_minssf", "", "as sasl_minssf in ldap_table(5)"},
        {"policy_dereference", "", "as dereference in ldap_table(5)"},
        {"policy_chase_referrals", "", "as chase_referrals in ldap_table(5)"},
        {"policy_domain", "",
         "the domains whose recipients are checked (names or /file, as domain in ldap_table(5)); "
         "empty: ask policy_domain_filter"},
        {"policy_domain_filter", "(associatedDomain=%s)",
         "finds a domain's entry when policy_domain is empty; %s is the domain; empty: every domain is ours"},
        {"policy_domain_search_base", "$policy_search_base", "where policy_domain_filter searches"},
        {"policy_login_filter", "(uid=%s)", "finds a SASL login's entry (for its own sending limits); %s is the login"},
        {"policy_recipient_check", "yes", "refuse recipients the directory does not know (550 5.1.1)"},
        {"policy_catchall", "yes", "an @domain entry accepts every address of its domain"},
        {"recipient_delimiter", "+", "characters that separate a user from an address extension"},
        {"policy_recipient_failure", "defer",
         "the directory cannot say whether a recipient exists: defer (451 4.3.0) or accept"},
        {"policy_quota_check", "yes", "refuse recipients whose mailbox is full"},
        {"policy_quota_attribute", "mailQuotaBytes", "attribute with the quota: bytes, or <bytes>S,<messages>C"},
        {"policy_default_quota", "0", "quota of mailboxes without the attribute: bytes (K/M/G), <bytes>S,<messages>C, 0 = none"},
        {"policy_address_attribute", "mail", "attribute whose address names the mailbox (for its usage)"},
        {"policy_quota_usage", "redis",
         "where mailbox usage comes from: redis (<redis_prefix>usage:<address>) or maildirsize (policy_maildir_root)"},
        {"policy_maildir_root", "", "the local mail store for policy_quota_usage = maildirsize (as deliver_root)"},
        {"policy_maildir_hash", "classic", "its layout: none, classic or stable:N (as deliver_hash)"},
        {"policy_over_quota", "defer", "a full mailbox: defer (452 4.2.2) or reject (552 5.2.2)"},
        {"policy_quota_failure", "accept", "mailbox usage cannot be read: accept or defer (451 4.3.0)"},
        {"policy_sender_login_check", "reject_authenticated_sender_login_mismatch",
         "reject_authenticated_sender_login_mismatch, reject_known_sender_login_mismatch, "
         "reject_unauthenticated_sender_login_mismatch, reject_sender_login_mismatch or none"},
        {"policy_login_attribute", "uid", "attribute with the logins that own an entry's addresses"},
        {"policy_sender_failure", "defer", "the directory cannot say who owns a sender: defer (451 4.3.0) or accept"},
        {"policy_message_limits", "60/minute, 600/hour, 2000/day",
         "messages a logged-in user may send: count/minute, count/hour, count/day (0 or absent = none)"},
        {"policy_recipient_limits", "200/minute, 2000/hour, 5000/day", "recipients a logged-in user may send to"},
        {"policy_limit_attribute", "mailSendLimits",
         "attribute with a user's own limits: messages:N/window, recipients:N/window or unlimited"},
        {"policy_limit_failure", "local",
         "Redis cannot count: local (count in this process meanwhile), accept, or defer (451 4.3.0)"},
    };
    return specs;
}

namespace {

// text is the whole reply text (milter, logs); policy_text what a policy
// reply says, when Postfix puts "<address>: Recipient address rejected: "
// in front of it itself ("" = the same as text).
Verdict make(Verdict::Action action, Verdict::Rule rule, int code, std::string status, std::string text,
             std::string policy_text = {}) {
    Verdict v;
    v.action = action;
    v.rule = rule;
    v.code = code;
    v.status = std::move(status);
    v.text = std::move(text);
    v.policy_text = std::move(policy_text);
    return v;
}

std::int64_t epoch_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Counts a Redis reply as a number of bytes (maildir_deliver publishes
// an integer; a value with more after the number keeps the number).
std::optional<std::int64_t> reply_number(const RedisReply& r) {
    if (r.type == RedisReply::Type::Integer) return r.integer;
    if (r.type != RedisReply::Type::String) return std::nullopt;
    auto t = trim(r.str);
    auto end = t.find_first_not_of("-0123456789");
    return parse_int(t.substr(0, end));
}

// Check every counter, then add one to each only if none would pass its
// limit; a new counter expires when its window ends. Returns the
// (1-based) index of the counter over its limit, or 0.
constexpr const char* kChargeScript = R"lua(
local n = #KEYS
for i = 1, n do
  if tonumber(redis.call('GET', KEYS[i]) or '0') + 1 > tonumber(ARGV[i]) then return i end
end
for i = 1, n do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[n + i]) end
end
return 0
)lua";

}  // namespace

std::string Verdict::reply() const {
    if (action == Action::Dunno) return {};
    return std::to_string(code) + " " + status + " " + text;
}

std::string Verdict::policy_action() const {
    switch (action) {
        case Action::Dunno: return "DUNNO";
        case Action::DeferIfPermit: return "DEFER_IF_PERMIT " + status + " " + (policy_text.empty() ? text : policy_text);
        case Action::Reject:
        case Action::Defer: return std::to_string(code) + " " + status + " " + (policy_text.empty() ? text : policy_text);
    }
    return "DUNNO";
}

const char* rule_name(Verdict::Rule r) {
    switch (r) {
        case Verdict::Rule::None: return "none";
        case Verdict::Rule::Recipient: return "recipient";
        case Verdict::Rule::Quota: return "quota";
        case Verdict::Rule::Sender: return "sender_login";
        case Verdict::Rule::Limit: return "limit";
    }
    return "?";
}

const char* action_name(Verdict::Action a) {
    switch (a) {
        case Verdict::Action::Dunno: return "dunno";
        case Verdict::Action::Reject: return "reject";
        case Verdict::Action::Defer: return "defer";
        case Verdict::Action::DeferIfPermit: return "defer_if_permit";
    }
    return "?";
}

PolicyEngine::PolicyEngine(asio::io_context& io, const SuiteConfig& config, MetricsRegistry* metrics)
    : io_(io), config_(config), metrics_(metrics) {}

PolicyEngine::~PolicyEngine() = default;

void PolicyEngine::load(std::vector<std::string>& warnings) {
    const auto& c = config_;
    auto failure_mode = [&](const char* name, bool allow_local) {
        auto v = to_lower(c.get(name));
        if (v == "defer") return OnFailure::Defer;
        if (v == "accept") return OnFailure::Accept;
        if (allow_local && v == "local") return OnFailure::Local;
        c.fail(name, std::string("expected ") + (allow_local ? "local, accept or defer" : "defer or accept") +
                         ", got \"" + v + "\"");
    };
    recipient_failure_ = failure_mode("policy_recipient_failure", false);
    quota_failure_ = failure_mode("policy_quota_failure", false);
    sender_failure_ = failure_mode("policy_sender_failure", false);
    limit_failure_ = failure_mode("policy_limit_failure", true);

    recipient_check_ = c.get_bool("policy_recipient_check");
    catchall_ = c.get_bool("policy_catchall");
    quota_check_ = c.get_bool("policy_quota_check");
    delimiters_ = c.get("recipient_delimiter");
    quota_attribute_ = c.get("policy_quota_attribute");
    address_attribute_ = c.get("policy_address_attribute");
    login_attribute_ = c.get("policy_login_attribute");
    limit_attribute_ = c.get("policy_limit_attribute");

    std::string why;
    auto dq = maildirsize::parse_limit(c.get("policy_default_quota"), &why);
    if (!dq) {
        // Sizes with K/M/G, as deliver_default_quota takes them.
        auto bytes = parse_size(c.get("policy_default_quota"));
        if (!bytes) c.fail("policy_default_quota", why);
        dq = maildirsize::Limit{*bytes, 0};
    }
    if (!dq->unlimited()) default_quota_ = *dq;

    auto usage = to_lower(c.get("policy_quota_usage"));
    maildir_root_ = c.get("policy_maildir_root");
    if (usage == "redis") {
        usage_source_ = UsageSource::Redis;
        if (quota_check_ && c.get("redis_server").empty()) {
            warnings.push_back("policy_quota_usage = redis, but redis_server is empty: mailbox quotas are not checked");
            usage_source_ = UsageSource::None;
        }
    } else if (usage == "maildirsize") {
        usage_source_ = UsageSource::Maildirsize;
        if (maildir_root_.empty() || maildir_root_.front() != '/')
            c.fail("policy_maildir_root", "policy_quota_usage = maildirsize needs the store's absolute path");
        auto layout = maildir::Layout::parse(c.get("policy_maildir_hash"), &why);
        if (!layout) c.fail("policy_maildir_hash", why);
        layout_ = *layout;
    } else {
        c.fail("policy_quota_usage", "expected redis or maildirsize, got \"" + usage + "\"");
    }
    if (quota_check_ && address_attribute_.empty())
        c.fail("policy_address_attribute", "the quota check needs the attribute that names the mailbox");

    auto over = to_lower(c.get("policy_over_quota"));
    if (over == "defer") over_quota_reject_ = false;
    else if (over == "reject") over_quota_reject_ = true;
    else c.fail("policy_over_quota", "expected defer or reject, got \"" + over + "\"");

    auto sender = to_lower(c.get("policy_sender_login_check"));
    if (sender == "none" || sender == "no") sender_check_ = SenderCheck::None;
    else if (sender == "reject_authenticated_sender_login_mismatch") sender_check_ = SenderCheck::Authenticated;
    else if (sender == "reject_known_sender_login_mismatch") sender_check_ = SenderCheck::Known;
    else if (sender == "reject_unauthenticated_sender_login_mismatch") sender_check_ = SenderCheck::Unauthenticated;
    else if (sender == "reject_sender_login_mismatch") sender_check_ = SenderCheck::Both;
    else c.fail("policy_sender_login_check", "unknown check \"" + sender + "\"");
    if (sender_check_ != SenderCheck::None && login_attribute_.empty())
        c.fail("policy_login_attribute", "the sender login check needs the attribute with the owners' logins");

    for (auto [param, kind] : {std::pair{"policy_message_limits", limits::Kind::Messages},
                               std::pair{"policy_recipient_limits", limits::Kind::Recipients}}) {
        auto rates = limits::parse_rates(c.get(param), &why);
        if (!rates) c.fail(param, std::string(param) + ": " + why);
        auto& dest = kind == limits::Kind::Messages ? default_limits_.messages : default_limits_.recipients;
        for (std::size_t i = 0; i < dest.size(); ++i) dest[i] = (*rates)[i].value_or(0);
    }

    // The directory.
    directory_configured_ = !c.get("policy_server_host").empty();
    if (directory_configured_) {
        query_ = ldap_query_from_suite(c, "policy_");
        for (const auto& w : query_.warnings) warnings.push_back(w);
        if (query_.query_filter.find('%') == std::string::npos)
            c.fail("policy_query_filter", "the filter must contain %s (or %u, %d) for the address");
        login_filter_ = c.get("policy_login_filter");
        domain_filter_ = c.get("policy_domain_filter");
        domain_base_ = c.get("policy_domain_search_base");
        auto check_template = [&](const char* name, const std::string& filter) {
            if (filter.empty()) return;
            ExpandContext ctx;
            try {
                if (!ctx.add_template(filter, true))
                    c.fail(name, "the filter must contain %s for the key");
            } catch (const std::invalid_argument& e) {
                c.fail(name, e.what());
            }
        };
        check_template("policy_login_filter", login_filter_);
        check_template("policy_domain_filter", domain_filter_);
        for (const auto* a : {&quota_attribute_, &address_attribute_, &login_attribute_, &limit_attribute_})
            if (!a->empty()) attributes_.push_back(*a);
        if (attributes_.empty()) attributes_.push_back("1.1");
    } else {
        if (recipient_check_ || quota_check_ || sender_check_ != SenderCheck::None)
            warnings.push_back("policy_server_host is empty: no recipient, quota or sender login checks, "
                               "sending limits from policy_*_limits only");
        recipient_check_ = quota_check_ = false;
        sender_check_ = SenderCheck::None;
    }

    cache_ = LruCache<DirAnswer>(static_cast<std::size_t>(c.get_int("cache_size", 0, 100'000'000)));
    positive_ttl_ = c.get_duration("cache_ttl");
    negative_ttl_ = c.get_duration("cache_negative_ttl");
    redis_prefix_ = c.get("redis_prefix");
    (void)RedisOptions::from_config(c);  // a bad redis_server is a configuration error

    if (metrics_) {
        for (int r = 0; r < 5; ++r)
            for (int a = 0; a < 4; ++a)
                m_decisions_[r][a] = &metrics_->counter(
                    "mailgrid_policy_decisions_total", "Policy decisions by rule and result",
                    {{"rule", rule_name(static_cast<Verdict::Rule>(r))},
                     {"result", action_name(static_cast<Verdict::Action>(a))}});
        m_directory_failures_ = &metrics_->counter("mailgrid_policy_directory_failures_total",
                                                   "Directory lookups that failed temporarily");
        m_redis_failures_ = &metrics_->counter("mailgrid_policy_redis_failures_total",
                                               "Redis commands (usage, limit counters) that failed");
    }
}

void PolicyEngine::open() {
    if (directory_configured_ && !directory_) {
        directories_ = std::make_unique<DirectoryRegistry>(io_, DirectoryRegistry::pool_options(config_),
                                                           config_.get_duration("ldif_reload_interval"), metrics_,
                                                       DirectoryRegistry::replica_options(config_));
        directory_ = directories_->for_table(query_);
    }
    if (!redis_)
        if (auto ro = RedisOptions::from_config(config_)) redis_ = std::make_unique<RedisClient>(io_, *ro);
}

void PolicyEngine::start_watching() {
    if (directories_) directories_->start_watching();
}

void PolicyEngine::shutdown() {
    if (directories_) directories_->shutdown();
}

// ------------------------------------------------------------------ checks

awaitable<Verdict> PolicyEngine::check(CheckRequest r, std::shared_ptr<MessageState> state) {
    if (!state) state = std::make_shared<MessageState>();
    Verdict v;
    switch (r.stage) {
        case policy::Stage::Mail: v = co_await check_sender(r, *state); break;
        case policy::Stage::Rcpt:
            v = co_await check_sender(r, *state);
            if (v.dunno()) v = co_await check_recipient(r);
            if (v.dunno()) v = co_await check_limits(r, *state);
            break;
        case policy::Stage::EndOfMessage:
            // Postfix names the recipient only when there is exactly one.
            if (!r.recipient.empty() && r.size > 0) {
                std::vector<std::string> one{r.recipient};
                v = co_await final_size(r, std::move(one));
            }
            break;
        default: break;
    }
    co_return finish(r, std::move(v));
}

awaitable<Verdict> PolicyEngine::check_final_size(CheckRequest context, std::vector<std::string> recipients) {
    Verdict v = co_await final_size(context, recipients);
    // The log line names every recipient the message was refused for.
    if (context.recipient.empty())
        for (const auto& r : recipients) context.recipient += (context.recipient.empty() ? "" : ",") + r;
    co_return finish(context, std::move(v));
}

awaitable<Verdict> PolicyEngine::final_size(const CheckRequest& context, std::vector<std::string> recipients) {
    if (!quota_check_ || recipients.empty() || context.size == 0) co_return Verdict{};
    std::optional<Verdict> refused;
    std::size_t fits = 0;
    for (const auto& rcpt : recipients) {
        CheckRequest one = context;
        one.recipient = rcpt;
        Verdict v = co_await check_recipient(one);
        if (v.rule == Verdict::Rule::Quota && !v.dunno() && !v.unavailable) {
            if (!refused) refused = v;
        } else {
            ++fits;
        }
    }
    if (!refused) co_return Verdict{};
    if (fits > 0) {
        log::info("%s: message of %llu bytes accepted although it does not fit every recipient's mailbox "
                  "(%zu of %zu fit); the store's quota decides for the others",
                  context.queue_id.empty() ? "NOQUEUE" : context.queue_id.c_str(),
                  static_cast<unsigned long long>(context.size), fits, recipients.size());
        co_return Verdict{};
    }
    if (recipients.size() > 1) refused->text = refused->policy_text = "Message does not fit the recipients' mailboxes";
    co_return *refused;
}

awaitable<Verdict> PolicyEngine::check_sender(const CheckRequest& r, MessageState& st) {
    if (sender_check_ == SenderCheck::None || r.sender.empty() || !directory_) co_return Verdict{};
    if (st.sender) co_return *st.sender;
    bool authenticated = !r.login.empty();
    bool check_authenticated = sender_check_ == SenderCheck::Authenticated || sender_check_ == SenderCheck::Known ||
                               sender_check_ == SenderCheck::Both;
    bool check_unauthenticated =
        sender_check_ == SenderCheck::Unauthenticated || sender_check_ == SenderCheck::Both;
    if (authenticated ? !check_authenticated : !check_unauthenticated) co_return Verdict{};

    std::string address = to_lower(r.sender);
    std::string subject = "<" + r.sender + ">";
    auto sa = split_address(address);
    DirAnswer owners;
    std::string why;
    std::optional<bool> local = true;
    if (!sa.has_at || sa.domain.empty()) local = false;
    else local = co_await local_domain(std::string(sa.domain), &why);
    if (!local) {
        Verdict v = unavailable(Verdict::Rule::Sender, sender_failure_, subject + ": Temporary lookup failure",
                                "Temporary lookup failure of sender " + subject, why);
        st.sender = v;
        co_return v;
    }
    if (*local) owners = co_await find_address(address, false);
    if (owners.kind == DirAnswer::Kind::TempFail) {
        Verdict v =
            unavailable(Verdict::Rule::Sender, sender_failure_, subject + ": Temporary lookup failure",
                        "Temporary lookup failure of sender " + subject, owners.why);
        st.sender = v;
        co_return v;
    }
    bool listed = false, owned = false;
    for (const auto& e : owners.entries)
        for (const auto& login : e.logins) {
            listed = true;
            if (authenticated && iequals(login, r.login)) owned = true;
        }
    Verdict v;
    // Postfix's own texts for reject_sender_login_mismatch.
    if (authenticated && !owned && (listed || sender_check_ != SenderCheck::Known))
        v = make(Verdict::Action::Reject, Verdict::Rule::Sender, 553, "5.7.1",
                 subject + ": Sender address rejected: not owned by user " + r.login,
                 "Sender address " + subject + " is not owned by user " + r.login);
    else if (!authenticated && listed)
        v = make(Verdict::Action::Reject, Verdict::Rule::Sender, 553, "5.7.1",
                 subject + ": Sender address rejected: not logged in",
                 "Sender address " + subject + " needs a login");
    st.sender = v;
    co_return v;
}

awaitable<Verdict> PolicyEngine::check_recipient(const CheckRequest& r) {
    if ((!recipient_check_ && !quota_check_) || !directory_) co_return Verdict{};
    std::string address = to_lower(r.recipient);
    auto sa = split_address(address);
    if (!sa.has_at || sa.local.empty() || sa.domain.empty()) co_return Verdict{};
    std::string subject = "<" + r.recipient + ">";
    std::string why;
    auto local = co_await local_domain(std::string(sa.domain), &why);
    if (!local)
        co_return unavailable(Verdict::Rule::Recipient, recipient_failure_, subject + ": Temporary lookup failure",
                              "Temporary lookup failure", why);
    if (!*local) co_return Verdict{};
    DirAnswer a = co_await find_address(address, catchall_);
    if (a.kind == DirAnswer::Kind::TempFail)
        co_return unavailable(Verdict::Rule::Recipient, recipient_failure_, subject + ": Temporary lookup failure",
                              "Temporary lookup failure", a.why);
    if (a.kind == DirAnswer::Kind::NotFound) {
        if (!recipient_check_) co_return Verdict{};
        co_return make(Verdict::Action::Reject, Verdict::Rule::Recipient, 550, "5.1.1",
                       subject + ": Recipient address rejected: User unknown", "User unknown");
    }
    if (quota_check_ && a.entries.size() == 1 && !a.entries.front().mailbox.empty())
        co_return co_await check_quota(r, subject, a.entries.front());
    co_return Verdict{};
}

awaitable<Verdict> PolicyEngine::check_quota(const CheckRequest& r, const std::string& subject, const DirEntry& e) {
    if (usage_source_ == UsageSource::None) co_return Verdict{};
    std::optional<maildirsize::Limit> limit = e.quota ? e.quota : default_quota_;
    if (limit && limit->unlimited()) co_return Verdict{};
    // Without a limit only a maildirsize file can say what it is.
    if (!limit && usage_source_ != UsageSource::Maildirsize) co_return Verdict{};
    Usage u = co_await usage_of(e.mailbox, limit, r.size);
    if (u.kind == Usage::Kind::TempFail)
        co_return unavailable(Verdict::Rule::Quota, quota_failure_, subject + ": Temporary lookup failure",
                              "Temporary lookup failure", u.why);
    if (u.kind == Usage::Kind::Unknown) co_return Verdict{};
    maildirsize::Limit effective = limit ? *limit : u.file_limit.value_or(maildirsize::Limit{});
    if (effective.unlimited()) co_return Verdict{};
    auto bytes = static_cast<std::int64_t>(std::max<std::uint64_t>(r.size, 1));
    if (!maildirsize::exceeds(effective, u.usage, bytes, 1)) co_return Verdict{};
    bool full = (effective.bytes && u.usage.bytes >= static_cast<std::int64_t>(effective.bytes)) ||
                (effective.messages && u.usage.messages >= static_cast<std::int64_t>(effective.messages));
    std::string reason = full ? std::string("Mailbox full")
                              : "Mailbox has no room for a message of " + std::to_string(r.size) + " bytes";
    std::string text = subject + ": Recipient address rejected: " + reason;
    if (over_quota_reject_)
        co_return make(Verdict::Action::Reject, Verdict::Rule::Quota, 552, "5.2.2", std::move(text), std::move(reason));
    co_return make(Verdict::Action::Defer, Verdict::Rule::Quota, 452, "4.2.2", std::move(text), std::move(reason));
}

awaitable<Verdict> PolicyEngine::check_limits(const CheckRequest& r, MessageState& st) {
    if (r.login.empty()) co_return Verdict{};
    if (st.limited) {
        Verdict again = *st.limited;
        again.logged = true;  // the message's first refused recipient was logged
        co_return again;
    }
    limits::Limits l = default_limits_;
    if (directory_ && !login_filter_.empty() && !limit_attribute_.empty()) {
        DirAnswer a = co_await lookup(Query::Login, r.login);
        if (a.kind == DirAnswer::Kind::Found && a.entries.size() == 1 && !a.entries.front().limits.empty()) {
            std::string why;
            if (auto o = limits::parse_override(a.entries.front().limits, &why)) l = limits::apply(l, *o);
            else log::warning("%s: %s: %s (the default limits apply)", a.entries.front().dn.c_str(),
                              limit_attribute_.c_str(), why.c_str());
        }
        // A directory that cannot answer leaves the defaults in force.
    }
    if (l.none()) co_return Verdict{};
    auto now = epoch_ms();
    auto list = limits::charges(l, r.login, !st.counted, now, redis_prefix_);
    if (list.empty()) co_return Verdict{};
    int over = -1;
    if (redis_) {
        auto counted = co_await charge_redis(list);
        if (counted) {
            over = *counted;
        } else if (limit_failure_ == OnFailure::Local) {
            over = local_counters_.check_and_add(list, now);
        } else {
            co_return unavailable(Verdict::Rule::Limit, limit_failure_,
                                  "Sending limits cannot be checked now, try again later", "",
                                  "Redis unavailable for the limit counters of " + printable(r.login));
        }
    } else {
        over = local_counters_.check_and_add(list, now);
    }
    if (over < 0) {
        st.counted = true;
        co_return Verdict{};
    }
    const auto& c = list[static_cast<std::size_t>(over)];
    Verdict v = make(Verdict::Action::Defer, Verdict::Rule::Limit, 450, "4.7.1",
                     "Sending limit exceeded: " + limits::describe(c.kind, c.window, c.limit) + " for user " +
                         printable(r.login, 100) + "; try again later");
    if (c.kind == limits::Kind::Messages) st.limited = v;
    // One log line per user, limit and window, however often it is hit.
    v.logged = true;
    if (!logged_windows_.find(c.key)) {
        logged_windows_.put(c.key, 1, std::chrono::milliseconds(c.expires_ms));
        log::warning("sending limit: user %s reached %s (client %s, from=<%s>); more is deferred until the %s ends",
                     printable(r.login, 100).c_str(), limits::describe(c.kind, c.window, c.limit).c_str(),
                     r.client.c_str(), printable(r.sender, 200).c_str(), limits::window_name(c.window));
    }
    co_return v;
}

// --------------------------------------------------------------- directory

awaitable<PolicyEngine::DirAnswer> PolicyEngine::lookup(Query q, std::string key) {
    DirAnswer a;
    if (!directory_) co_return a;
    std::string cache_key = (q == Query::Address ? "a:" : q == Query::Login ? "l:" : "d:") + key;
    if (const DirAnswer* hit = cache_.find(cache_key)) co_return *hit;

    const std::string& filter_template =
        q == Query::Address ? query_.query_filter : q == Query::Login ? login_filter_ : domain_filter_;
    const std::string& base_template = q == Query::Domain ? domain_base_ : query_.search_base;
    ExpandContext own;
    const ExpandContext* ctx = &query_.templates;
    if (q != Query::Address) {
        own.add_template(filter_template, true);
        own.add_template(base_template, true);
        ctx = &own;
    }
    // Keys are escaped for the filter and the base by the expansion.
    auto filter = ctx->expand_query(filter_template, key, Quote::Filter);
    auto base = ctx->expand_query(base_template, key, Quote::Dn);
    if (!filter || !base) {
        cache_.put(cache_key, a, negative_ttl_);
        co_return a;
    }
    SearchRequest req;
    req.base = *base;
    req.scope = query_.scope;
    req.filter = *filter;
    if (q == Query::Domain) req.attributes.push_back("1.1");
    else req.attributes = attributes_;
    req.size_limit = 16;
    req.timeout = std::chrono::seconds(std::max(1, query_.server.timeout_seconds));
    auto result = co_await directory_->search(std::move(req));
    switch (result.code) {
        case SearchResult::Code::Ok:
        case SearchResult::Code::SizeLimit:
            a.kind = result.entries.empty() ? DirAnswer::Kind::NotFound : DirAnswer::Kind::Found;
            break;
        case SearchResult::Code::NoSuchObject: break;
        case SearchResult::Code::TempFail:
            a.kind = DirAnswer::Kind::TempFail;
            a.why = "directory lookup of " + printable(key) + " failed: " + result.error;
            if (m_directory_failures_) m_directory_failures_->inc();
            co_return a;
    }
    for (auto& e : result.entries) {
        DirEntry d;
        d.dn = e.dn;
        if (!quota_attribute_.empty()) {
            auto text = e.first(quota_attribute_);
            if (!text.empty()) {
                std::string why;
                if (auto l = maildirsize::parse_limit(text, &why)) d.quota = *l;
                else log::warning("%s: %s: %s (the default quota applies)", e.dn.c_str(), quota_attribute_.c_str(),
                                  why.c_str());
            }
        }
        if (!address_attribute_.empty()) d.mailbox = to_lower(e.first(address_attribute_));
        if (!login_attribute_.empty())
            if (const auto* v = e.values(login_attribute_)) d.logins = *v;
        if (!limit_attribute_.empty())
            if (const auto* v = e.values(limit_attribute_)) d.limits = *v;
        a.entries.push_back(std::move(d));
    }
    cache_.put(cache_key, a, a.kind == DirAnswer::Kind::Found ? positive_ttl_ : negative_ttl_);
    co_return a;
}

awaitable<std::optional<bool>> PolicyEngine::local_domain(std::string domain, std::string* why) {
    if (!query_.domains.empty()) co_return query_.domain_allows("x@" + domain);
    if (domain_filter_.empty() || !directory_) co_return true;
    DirAnswer a = co_await lookup(Query::Domain, std::move(domain));
    if (a.kind == DirAnswer::Kind::TempFail) {
        *why = a.why;
        co_return std::nullopt;
    }
    co_return a.kind == DirAnswer::Kind::Found;
}

awaitable<PolicyEngine::DirAnswer> PolicyEngine::find_address(const std::string& address, bool catchall) {
    DirAnswer a = co_await lookup(Query::Address, address);
    if (a.kind != DirAnswer::Kind::NotFound) co_return a;
    if (auto stripped = strip_extension(address, delimiters_)) {
        a = co_await lookup(Query::Address, stripped->address);
        if (a.kind != DirAnswer::Kind::NotFound) co_return a;
    }
    if (catchall) {
        auto at = address.rfind('@');
        if (at != std::string::npos && at > 0) {
            std::string domain_key = address.substr(at);
            a = co_await lookup(Query::Address, std::move(domain_key));
        }
    }
    co_return a;
}

// ------------------------------------------------------------------- usage

awaitable<PolicyEngine::Usage> PolicyEngine::usage_of(const std::string& mailbox,
                                                       const std::optional<maildirsize::Limit>& limit,
                                                       std::uint64_t size) {
    Usage u;
    if (usage_source_ == UsageSource::Maildirsize) {
        auto job = [this, mailbox, limit, size]() { return read_maildirsize(mailbox, limit, size); };
        co_return co_await run_blocking(std::move(job));
    }
    if (!redis_) co_return u;
    std::vector<std::string> args{std::string("GET"), redis_prefix_ + "usage:" + mailbox};
    auto reply = co_await redis_->command(std::move(args));
    if (!reply || reply->is_error()) {
        if (m_redis_failures_) m_redis_failures_->inc();
        u.kind = Usage::Kind::TempFail;
        u.why = "Redis: " + (reply ? reply->str : redis_->describe() + " unavailable");
        co_return u;
    }
    if (reply->type == RedisReply::Type::Nil) co_return u;
    auto bytes = reply_number(*reply);
    if (!bytes || *bytes < 0) {
        log::warning("Redis %susage:%s holds \"%s\", not a number of bytes", redis_prefix_.c_str(),
                     printable(mailbox).c_str(), printable(reply->str, 40).c_str());
        co_return u;
    }
    u.kind = Usage::Kind::Known;
    u.usage.bytes = *bytes;
    co_return u;
}

PolicyEngine::Usage PolicyEngine::read_maildirsize(const std::string& mailbox,
                                                   const std::optional<maildirsize::Limit>& limit,
                                                   std::uint64_t size) const {
    Usage u;
    auto sa = split_address(mailbox);
    // Names from the directory become path components only if they are
    // fit to be one.
    if (!sa.has_at || maildir::component_problem(sa.local, "user") || maildir::component_problem(sa.domain, "domain"))
        return u;
    auto root = maildir::open_root(maildir_root_);
    if (!root) {
        u.kind = Usage::Kind::TempFail;
        u.why = root.why;
        return u;
    }
    auto components = maildir::mailbox_components(layout_, sa.local, sa.domain);
    auto dir = maildir::open_below(root.fd.get(), components, false, 0700, mailbox);
    if (!dir) {
        if (dir.error != ENOENT) {
            u.kind = Usage::Kind::TempFail;
            u.why = dir.why;
        }
        return u;  // no Maildir yet: nothing to go by
    }
    auto file = maildir::read_quota_file(dir.fd.get());
    if (!file.exists || !file.parsed.valid || file.size >= maildirsize::kRecountSize) return u;
    const auto& usage = file.parsed.usage;
    if (usage.bytes < 0 || usage.messages < 0) return u;
    maildirsize::Limit effective = limit.value_or(file.parsed.limit);
    // The file is trusted as maildirquota(7) readers trust it, except that
    // an over-quota sum of several lines counts while the file is fresh:
    // refusing at RCPT is only a deferral, and the delivery agent counts
    // again whenever a message does get through.
    auto bytes = static_cast<std::int64_t>(std::max<std::uint64_t>(size, 1));
    if (maildirsize::exceeds(effective, usage, bytes, 1) && file.age > maildirsize::kStaleAge) return u;
    u.kind = Usage::Kind::Known;
    u.usage = usage;
    if (!file.parsed.limit.unlimited()) u.file_limit = file.parsed.limit;
    return u;
}

awaitable<std::optional<int>> PolicyEngine::charge_redis(const std::vector<limits::Charge>& charges) {
    std::vector<std::string> args;
    args.reserve(3 + 3 * charges.size());
    args.emplace_back("EVAL");
    args.emplace_back(kChargeScript);
    args.push_back(std::to_string(charges.size()));
    for (const auto& c : charges) args.push_back(c.key);
    for (const auto& c : charges) args.push_back(std::to_string(c.limit));
    for (const auto& c : charges) args.push_back(std::to_string(c.expires_ms));
    auto reply = co_await redis_->command(std::move(args));
    if (!reply || reply->type != RedisReply::Type::Integer) {
        if (m_redis_failures_) m_redis_failures_->inc();
        co_return std::nullopt;
    }
    co_return static_cast<int>(reply->integer) - 1;
}

// ----------------------------------------------------------------- results

Verdict PolicyEngine::unavailable(Verdict::Rule rule, OnFailure mode, const std::string& text,
                                  const std::string& policy_text, const std::string& why) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_failure_log_ >= std::chrono::seconds(1)) {
        log::warning("%s check: %s%s; %s", rule_name(rule), why.c_str(),
                     suppressed_failures_ ? (" (and " + std::to_string(suppressed_failures_) + " more)").c_str() : "",
                     mode == OnFailure::Defer ? "deferring" : "accepting");
        last_failure_log_ = now;
        suppressed_failures_ = 0;
    } else {
        ++suppressed_failures_;
    }
    Verdict v;
    v.rule = rule;
    v.unavailable = true;
    if (mode != OnFailure::Defer) return v;
    v.action = Verdict::Action::DeferIfPermit;
    v.code = 451;
    v.status = "4.3.0";
    v.text = text;
    v.policy_text = policy_text;
    return v;
}

Verdict PolicyEngine::finish(const CheckRequest& r, Verdict v) {
    if (m_decisions_[0][0])
        m_decisions_[static_cast<int>(v.rule)][static_cast<int>(v.action)]->inc();
    if (!v.dunno() && !v.logged) {
        // As Postfix logs its own rejects.
        log::info("%s: %s: %s from %s: %s; from=<%s> to=<%s>%s%s",
                  r.queue_id.empty() ? "NOQUEUE" : r.queue_id.c_str(), action_name(v.action),
                  policy::stage_name(r.stage), r.client.empty() ? "unknown" : r.client.c_str(), v.reply().c_str(),
                  printable(r.sender).c_str(), printable(r.recipient).c_str(), r.login.empty() ? "" : " login=",
                  printable(r.login).c_str());
    }
    return v;
}

}  // namespace mailgrid
