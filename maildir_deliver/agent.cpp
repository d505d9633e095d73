// agent - the directory on top of the mailbox store (see agent.hpp).
#include "agent.hpp"

#include "config/suite_ldap.hpp"
#include "log/log.hpp"
#include "util/strings.hpp"

namespace mailgrid {

namespace {
bool says_no(std::string_view v) {
    auto b = parse_bool(trim(v));
    return b && !*b;
}
}  // namespace

Agent::Agent(asio::io_context& io, const SuiteConfig& config, MailboxStore& store, MetricsRegistry* metrics,
             bool offload, bool cache)
    : io_(io), config_(config), store_(store), metrics_(metrics), offloading_(offload), cache_enabled_(cache) {}

Agent::~Agent() {
    if (pool_) pool_->join();
}

void Agent::load(std::vector<std::string>& warnings) {
    if (store_.directory_configured()) {
        query_ = ldap_query_from_suite(config_, "deliver_");
        for (const auto& w : query_.warnings) warnings.push_back(w);
        if (query_.query_filter.find('%') == std::string::npos)
            config_.fail("deliver_query_filter", "the filter must contain %s (or %u, %d) for the recipient");
    } else if (store_.lookup_always()) {
        warnings.push_back("deliver_directory_lookup = always, but deliver_server_host is empty: "
                           "only existing Maildirs receive mail");
    }
    if (cache_enabled_) {
        cache_ = LruCache<Found>(static_cast<std::size_t>(config_.get_int("cache_size", 0, 100'000'000)));
        positive_ttl_ = config_.get_duration("cache_ttl");
        negative_ttl_ = config_.get_duration("cache_negative_ttl");
    }
    if (offloading_) {
        auto threads = config_.get_int("deliver_lmtp_threads", 1, 1024);
        pool_ = std::make_unique<asio::thread_pool>(static_cast<std::size_t>(threads));
    }
    if (metrics_) {
        store_.use_metrics(*metrics_);
        m_lookups_ = &metrics_->counter("mailgrid_deliver_lookups_total", "Directory lookups");
        m_lookup_failures_ =
            &metrics_->counter("mailgrid_deliver_lookup_failures_total", "Directory lookups that failed temporarily");
    }
}

void Agent::open_directory() {
    if (directory_ || !store_.directory_configured()) return;
    auto pool = DirectoryRegistry::pool_options(config_);
    if (!offloading_) {
        // One message per process: one connection is all it can use.
        pool.connections = 1;
        pool.bind_connections = 1;
        pool.spin = std::chrono::microseconds(0);
    }
    directories_ = std::make_unique<DirectoryRegistry>(io_, pool, config_.get_duration("ldif_reload_interval"), metrics_,
                                                       DirectoryRegistry::replica_options(config_));
    directory_ = directories_->for_table(query_);
}

void Agent::shutdown() {
    if (directories_) directories_->shutdown();
}

void Agent::wait_for_deliveries() {
    if (pool_) pool_->join();
}

template <typename F>
awaitable<decltype(std::declval<F&>()())> Agent::offload(F f) {
    if (!pool_) co_return f();
    co_return co_await asio::co_spawn(*pool_, run_blocking_body(std::move(f)), use_awaitable);
}

awaitable<Agent::Found> Agent::lookup(const std::string& key) {
    Found f;
    try {
        open_directory();
    } catch (const std::exception& e) {
        f.kind = Found::Kind::TempFail;
        f.why = std::string("cannot open the directory: ") + e.what();
        co_return f;
    }
    if (cache_enabled_)
        if (const Found* hit = cache_.find(key)) co_return *hit;
    if (!query_.domain_allows(key)) co_return f;
    // Keys are escaped for the filter (and the base) by the expansion.
    auto filter = query_.templates.expand_query(query_.query_filter, key, Quote::Filter);
    auto base = query_.templates.expand_query(query_.search_base, key, Quote::Dn);
    if (!filter || !base) co_return f;
    SearchRequest req;
    req.base = *base;
    req.scope = query_.scope;
    req.filter = *filter;
    for (const auto* a : {&store_.quota_attribute(), &store_.path_attribute(), &store_.address_attribute()})
        if (!a->empty()) req.attributes.push_back(*a);
    if (req.attributes.empty()) req.attributes.push_back("1.1");
    req.size_limit = 2;
    req.timeout = std::chrono::seconds(std::max(1, query_.server.timeout_seconds));
    if (m_lookups_) m_lookups_->inc();
    auto result = co_await directory_->search(std::move(req));
    switch (result.code) {
        case SearchResult::Code::Ok:
            if (result.entries.size() == 1) {
                f.kind = Found::Kind::Entry;
                f.entry = std::move(result.entries.front());
            } else if (result.entries.size() > 1) {
                f.kind = Found::Kind::TempFail;
                f.why = "several directory entries match " + printable(key);
            }
            break;
        case SearchResult::Code::NoSuchObject: break;
        case SearchResult::Code::SizeLimit:
            f.kind = Found::Kind::TempFail;
            f.why = "several directory entries match " + printable(key);
            break;
        case SearchResult::Code::TempFail:
            f.kind = Found::Kind::TempFail;
            f.why = result.error;
            break;
    }
    if (f.kind == Found::Kind::TempFail) {
        if (m_lookup_failures_) m_lookup_failures_->inc();
    } else if (cache_enabled_) {
        cache_.put(key, f, f.kind == Found::Kind::Entry ? positive_ttl_ : negative_ttl_);
    }
    co_return f;
}

awaitable<Target> Agent::resolve(const Recipient& r) {
    auto job = [this, r]() { return store_.on_disk(r); };
    Target t = co_await offload(std::move(job));
    if (t.kind != Target::Kind::Mailbox || !t.need_lookup) co_return t;
    Found f = co_await lookup(r.key());
    t.need_lookup = false;
    // An existing Maildir is trusted unless every message must be checked:
    // it keeps receiving mail, with the limit in its maildirsize, while the
    // directory is down or no longer lists the address it was made for.
    bool trust_disk = t.exists && !store_.lookup_always() && store_.trusts_layout();
    switch (f.kind) {
        case Found::Kind::Entry: co_return store_.from_entry(r, f.entry, std::move(t));
        case Found::Kind::None:
            if (trust_disk) co_return t;
            t.kind = Target::Kind::Unknown;
            t.why = "no directory entry for " + printable(r.key());
            co_return t;
        case Found::Kind::TempFail:
            if (trust_disk) {
                log::warning("%s; delivering to the existing Maildir %s with the limit in its maildirsize",
                             f.why.c_str(), t.mailbox.c_str());
                co_return t;
            }
            t.kind = Target::Kind::TempFail;
            t.why = f.why;
            t.directory_failure = true;
            co_return t;
    }
    co_return t;
}

awaitable<Outcome> Agent::deliver(const Recipient& r, Target target, std::shared_ptr<const std::string> header,
                                  std::shared_ptr<const std::string> message) {
    if (target.kind != Target::Kind::Mailbox) co_return store_.refused(target);
    auto job = [this, r, target, header, message]() { return store_.deliver(r, target, *header, *message); };
    Outcome o = co_await offload(std::move(job));
    if (o.refresh_quota) o = co_await refresh_and_retry(r, target, std::move(o), header, message);
    co_return o;
}

awaitable<std::vector<Outcome>> Agent::deliver_all(std::vector<std::pair<Recipient, Target>> to,
                                                   std::shared_ptr<const std::string> header,
                                                   std::shared_ptr<const std::string> message) {
    auto shared = std::make_shared<const std::vector<std::pair<Recipient, Target>>>(std::move(to));
    auto job = [this, shared, header, message]() { return store_.deliver_all(*shared, *header, *message); };
    std::vector<Outcome> outcomes = co_await offload(std::move(job));
    for (std::size_t i = 0; i < outcomes.size(); ++i)
        if (outcomes[i].refresh_quota)
            outcomes[i] = co_await refresh_and_retry((*shared)[i].first, (*shared)[i].second, std::move(outcomes[i]),
                                                     header, message);
    co_return outcomes;
}

awaitable<Outcome> Agent::refresh_and_retry(const Recipient& r, const Target& target, Outcome refused,
                                            std::shared_ptr<const std::string> header,
                                            std::shared_ptr<const std::string> message) {
    // The limit came from maildirsize; the directory may have raised it.
    if (cache_enabled_) cache_.erase(r.key());
    Found f = co_await lookup(r.key());
    refused.refresh_quota = false;
    if (f.kind != Found::Kind::Entry) co_return refused;
    Target fresh = store_.from_entry(r, f.entry, target);
    if (fresh.kind != Target::Kind::Mailbox || fresh.components != target.components || !fresh.limit)
        co_return refused;
    auto again = [this, r, fresh, header, message]() { return store_.deliver(r, fresh, *header, *message); };
    Outcome o = co_await offload(std::move(again));
    o.refresh_quota = false;
    co_return o;
}

awaitable<std::optional<std::vector<UserEntry>>> Agent::list_users(std::string* why) {
    if (!store_.directory_configured()) {
        if (why) *why = "deliver_server_host is empty: there is no directory to list users from";
        co_return std::nullopt;
    }
    if (query_.dynamic_base) {
        if (why) *why = "deliver_search_base depends on the recipient (%-codes): cannot list all users";
        co_return std::nullopt;
    }
    try {
        open_directory();
    } catch (const std::exception& e) {
        if (why) *why = std::string("cannot open the directory: ") + e.what();
        co_return std::nullopt;
    }
    SearchRequest req;
    req.base = query_.search_base;
    req.scope = query_.scope;
    req.filter = store_.user_filter();
    for (const auto* a : {&store_.path_attribute(), &store_.address_attribute(), &store_.purge_attribute()})
        if (!a->empty()) req.attributes.push_back(*a);
    if (req.attributes.empty()) req.attributes.push_back("1.1");
    req.timeout = std::chrono::seconds(std::max(300, query_.server.timeout_seconds));
    auto result = co_await directory_->search(std::move(req));
    if (result.code == SearchResult::Code::TempFail || result.code == SearchResult::Code::SizeLimit) {
        if (why)
            *why = "directory search " + store_.user_filter() + " failed: " +
                   (result.code == SearchResult::Code::SizeLimit ? std::string("size limit exceeded") : result.error);
        co_return std::nullopt;
    }
    std::vector<UserEntry> users;
    for (const auto& e : result.entries) {
        UserEntry u;
        u.dn = e.dn;
        if (!store_.purge_attribute().empty()) u.purge = !says_no(e.first(store_.purge_attribute()));
        if (!store_.address_attribute().empty()) u.address = e.first(store_.address_attribute());
        std::string w;
        std::optional<std::vector<std::string>> components;
        auto path = store_.path_attribute().empty() ? std::string() : e.first(store_.path_attribute());
        if (!path.empty()) components = maildir::components_below(path, store_.root(), &w);
        else if (!u.address.empty()) components = store_.components_for_address(u.address, &w);
        else if (!store_.address_attribute().empty()) w = "no " + store_.address_attribute() + " attribute";
        else w = "neither deliver_path_attribute nor deliver_address_attribute names a mailbox";
        if (components) u.components = std::move(*components);
        else u.why = w;
        users.push_back(std::move(u));
    }
    co_return users;
}

}  // namespace mailgrid
