#include "lookup/table_service.hpp"

#include <sys/time.h>

#include "config/suite_config.hpp"
#include "log/log.hpp"
#include "util/strings.hpp"

namespace mailgrid {

using Clock = std::chrono::steady_clock;

CachePolicy CachePolicy::from_config(const SuiteConfig& c) {
    CachePolicy p;
    p.size = static_cast<std::size_t>(c.get_int("cache_size", 0, 100'000'000));
    p.ttl = c.get_duration("cache_ttl");
    p.negative_ttl = c.get_duration("cache_negative_ttl");
    return p;
}

namespace {
std::int64_t wall_ms() {
    timeval tv{};
    ::gettimeofday(&tv, nullptr);
    return static_cast<std::int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}
}  // namespace

// Redis values carry their own expiry ("<unix ms> F<value>" or "<unix ms>
// N") so a copy taken into a local cache never outlives the original.
awaitable<std::optional<Lookup>> LookupCache::shared(const std::string& key) {
    if (!redis_ || !redis_->available()) co_return std::nullopt;
    std::vector<std::string> args{std::string("GET"), redis_key(key)};
    auto reply = co_await redis_->command(std::move(args));
    if (!reply || reply->type != RedisReply::Type::String) co_return std::nullopt;
    const auto& s = reply->str;
    auto sp = s.find(' ');
    if (sp == std::string::npos || sp + 1 >= s.size()) co_return std::nullopt;
    auto expires = parse_int(std::string_view(s).substr(0, sp));
    if (!expires) co_return std::nullopt;
    auto remaining = *expires - wall_ms();
    if (remaining <= 0) co_return std::nullopt;
    Lookup l = s[sp + 1] == 'F' ? Lookup::found(s.substr(sp + 2)) : Lookup::not_found();
    auto ttl = l.ok() ? policy_.ttl : policy_.negative_ttl;
    local_.put(key, l, std::min(ttl, std::chrono::milliseconds(remaining)));
    co_return l;
}

void LookupCache::put(const std::string& key, const Lookup& value) {
    if (value.status != Status::Found && value.status != Status::NotFound) return;  // never cache failures
    auto ttl = value.ok() ? policy_.ttl : policy_.negative_ttl;
    if (ttl.count() <= 0) return;
    local_.put(key, value, ttl);
    if (!redis_ || !redis_->available()) return;
    std::string v = std::to_string(wall_ms() + ttl.count()) + (value.ok() ? " F" + value.value : std::string(" N"));
    std::vector<std::string> args{std::string("SET"), redis_key(key), std::move(v), "PX", std::to_string(ttl.count())};
    asio::co_spawn(
        redis_->executor(),
        [](RedisClient* r, std::vector<std::string> a) -> awaitable<void> { co_await r->command(std::move(a)); }(
            redis_, std::move(args)),
        asio::detached);
}

awaitable<void> LookupCache::invalidate(const std::string& key) {
    local_.erase(key);
    if (redis_) {
        std::vector<std::string> args{std::string("DEL"), redis_key(key)};
        co_await redis_->command(std::move(args));
    }
}

TableService::TableService(std::string name, std::unique_ptr<LdapTable> table, TableOptions options,
                           const CacheSetup& cache, MetricsRegistry* metrics)
    : name_(std::move(name)), table_(std::move(table)), options_(std::move(options)) {
    if (cache.enabled && cache.policy.size > 0)
        cache_ = std::make_unique<LookupCache>(name_, cache.policy, cache.redis, cache.redis_prefix);
    // Postfix queries a table whose templates use %u, %d, %1... with the
    // full key only ("pattern" table); only "fixed" tables get partial keys.
    partial_keys_ = !table_->config().templates.uses_key_parts();
    if (metrics) {
        const char* h = "Lookups answered, by table and result";
        m_found_ = &metrics->counter("mailgrid_lookups_total", h, {{"table", name_}, {"result", "found"}});
        m_notfound_ = &metrics->counter("mailgrid_lookups_total", h, {{"table", name_}, {"result", "notfound"}});
        m_tempfail_ = &metrics->counter("mailgrid_lookups_total", h, {{"table", name_}, {"result", "tempfail"}});
        const char* c = "Cache hits by layer";
        m_hits_local_ = &metrics->counter("mailgrid_cache_hits_total", c, {{"table", name_}, {"layer", "local"}});
        m_hits_redis_ = &metrics->counter("mailgrid_cache_hits_total", c, {{"table", name_}, {"layer", "redis"}});
        m_misses_ = &metrics->counter("mailgrid_cache_misses_total", "Lookups that went to the directory", {{"table", name_}});
        m_held_ = &metrics->counter("mailgrid_held_lookups_total", "Lookups answered with a hold (mailbox moving)",
                                    {{"table", name_}});
        m_latency_ = &metrics->histogram("mailgrid_lookup_seconds", "Time to answer a lookup", {{"table", name_}});
    }
}

void TableService::note_failure(const std::string& key, const std::string& why) {
    auto now = Clock::now();
    if (now - last_warning_ < std::chrono::seconds(1)) {
        ++suppressed_;
        return;
    }
    if (suppressed_)
        log::warning("table %s: lookup of %s: %s (%u more failures not logged)", name_.c_str(),
                     printable(key, 100).c_str(), why.c_str(), suppressed_);
    else
        log::warning("table %s: lookup of %s: %s", name_.c_str(), printable(key, 100).c_str(), why.c_str());
    suppressed_ = 0;
    last_warning_ = now;
}

awaitable<Lookup> TableService::resolve(const std::string& key) {
    auto style = partial_keys_ ? options_.style : LookupStyle::Exact;
    auto probes = probe_keys(key, style, options_.recipient_delimiter);
    for (const auto& probe : probes) {
        auto r = co_await table_->query(probe.key);
        if (r.status == Status::NotFound) continue;
        if (r.status != Status::Found) co_return r;
        if (style == LookupStyle::Virtual)
            r.value = rewrite_virtual_result(r.value, key, probe, options_.propagate_extension);
        co_return r;
    }
    co_return Lookup::not_found();
}

void TableService::count(const Lookup& r) {
    switch (r.status) {
        case Status::Found: if (m_found_) m_found_->inc(); break;
        case Status::NotFound: if (m_notfound_) m_notfound_->inc(); break;
        default: if (m_tempfail_) m_tempfail_->inc();
    }
}

void TableService::use_hold_list(const HoldList* hold) {
    hold_ = hold;
    held_answer_ = HoldList::answer(options_.style);
}

const Lookup* TableService::cached(const std::string& key) {
    if (hold_ && !hold_->empty() && hold_->holds(key, options_.recipient_delimiter)) {
        if (m_held_) m_held_->inc();
        count(held_answer_);
        return &held_answer_;
    }
    if (!cache_) return nullptr;
    const Lookup* r = cache_->local(key);
    if (!r) return nullptr;
    if (m_hits_local_) m_hits_local_->inc();
    count(*r);
    if (m_latency_) m_latency_->observe(0);  // answered without waiting: the first bucket
    return r;
}

awaitable<Lookup> TableService::lookup(std::string key) {
    if (const Lookup* hit = cached(key)) co_return *hit;  // held keys too
    auto start = Clock::now();
    std::optional<Lookup> shared;
    if (cache_) shared = co_await cache_->shared(key);
    Lookup r;
    if (shared) {
        r = std::move(*shared);
        if (m_hits_redis_) m_hits_redis_->inc();
    } else {
        if (m_misses_) m_misses_->inc();
        r = co_await resolve(key);
        if (r.status == Status::Found && r.value.empty()) r = Lookup::not_found();
        if (cache_) cache_->put(key, r);
    }
    count(r);
    if (r.status == Status::TempFail || r.status == Status::PermFail) note_failure(key, r.value);
    if (m_latency_) m_latency_->observe(std::chrono::duration<double>(Clock::now() - start).count());
    if (log::verbose() > 0)
        log::debug("table %s: %s -> %s%s%s", name_.c_str(), printable(key, 200).c_str(), status_name(r.status),
                   r.value.empty() ? "" : ": ", printable(r.value, 200).c_str());
    co_return r;
}

}  // namespace mailgrid
