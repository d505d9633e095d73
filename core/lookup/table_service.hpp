// table_service - a named table as Postfix sees it through tcp: or
// socketmap:: the lookup style's partial keys tried in Postfix's order,
// answers rewritten as Postfix would rewrite them, an in-process cache (LRU,
// TTL, negative TTL) in front of an optional shared Redis cache, and metrics.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "cache/lru_cache.hpp"
#include "cache/redis_client.hpp"
#include "lookup/hold_list.hpp"
#include "lookup/ldap_table.hpp"
#include "mail/address.hpp"
#include "metrics/metrics.hpp"

namespace mailgrid {

class SuiteConfig;

struct CachePolicy {
    std::size_t size = 100000;
    std::chrono::milliseconds ttl{60'000};
    std::chrono::milliseconds negative_ttl{30'000};
    static CachePolicy from_config(const SuiteConfig& c);
};

// The cache of one table: in process, optionally backed by Redis, which
// every frontend shares.
class LookupCache {
public:
    LookupCache(std::string table, CachePolicy policy, RedisClient* redis, std::string redis_prefix)
        : table_(std::move(table)), policy_(policy), local_(policy.size), redis_(redis),
          prefix_(std::move(redis_prefix)) {}

    // In-process entry (valid until the cache next changes), or null.
    const Lookup* local(const std::string& key) { return local_.find(key); }
    // The shared cache; copies what it finds into the local one.
    awaitable<std::optional<Lookup>> shared(const std::string& key);
    void put(const std::string& key, const Lookup& value);
    awaitable<void> invalidate(const std::string& key);
    void clear_local() { local_.clear(); }
    std::string redis_key(const std::string& key) const { return prefix_ + "t:" + table_ + ":" + key; }

private:
    std::string table_;
    CachePolicy policy_;
    LruCache<Lookup> local_;
    RedisClient* redis_;
    std::string prefix_;
};

struct CacheSetup {
    bool enabled = false;
    CachePolicy policy;
    RedisClient* redis = nullptr;
    std::string redis_prefix = "mailgrid:";
};

struct TableOptions {
    LookupStyle style = LookupStyle::Exact;
    std::string recipient_delimiter = "+";
    bool propagate_extension = true;  // Postfix propagate_unmatched_extensions
};

class TableService {
public:
    TableService(std::string name, std::unique_ptr<LdapTable> table, TableOptions options, const CacheSetup& cache,
                 MetricsRegistry* metrics);

    // The answer for a key exactly as Postfix sent it.
    awaitable<Lookup> lookup(std::string key);
    // The answer if the in-process cache has it: the fast path, with no
    // coroutine and no copy. Valid until the next lookup.
    const Lookup* cached(const std::string& key);
    // Keys on this list are answered with HoldList::answer(style) before
    // any cache or the directory is asked. The list must outlive us.
    void use_hold_list(const HoldList* hold);
    // Forgets every in-process answer (the shared cache is left alone).
    void clear_local_cache() {
        if (cache_) cache_->clear_local();
    }
    const std::string& name() const { return name_; }
    LookupStyle style() const { return options_.style; }
    LdapTable& table() { return *table_; }

private:
    awaitable<Lookup> resolve(const std::string& key);
    void note_failure(const std::string& key, const std::string& why);
    void count(const Lookup& r);

    std::string name_;
    std::unique_ptr<LdapTable> table_;
    TableOptions options_;
    std::unique_ptr<LookupCache> cache_;
    bool partial_keys_;  // Postfix would try partial keys for this table
    const HoldList* hold_ = nullptr;
    Lookup held_answer_;

    Counter* m_found_ = nullptr;
    Counter* m_notfound_ = nullptr;
    Counter* m_tempfail_ = nullptr;
    Counter* m_hits_local_ = nullptr;
    Counter* m_hits_redis_ = nullptr;
    Counter* m_misses_ = nullptr;
    Counter* m_held_ = nullptr;
    Histogram* m_latency_ = nullptr;
    std::chrono::steady_clock::time_point last_warning_{};
    unsigned suppressed_ = 0;
};

}  // namespace mailgrid
