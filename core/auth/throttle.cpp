#include "auth/throttle.hpp"

#include "config/suite_config.hpp"

namespace mailgrid {

ThrottlePolicy ThrottlePolicy::from_config(const SuiteConfig& c, const std::string& prefix) {
    ThrottlePolicy p;
    p.enabled = c.get_bool(prefix + "throttle");
    p.max_account_failures = static_cast<int>(c.get_int(prefix + "max_account_failures", 1, 1'000'000));
    p.max_source_failures = static_cast<int>(c.get_int(prefix + "max_source_failures", 1, 1'000'000));
    p.window = c.get_duration(prefix + "failure_window");
    return p;
}

Throttle::Throttle(ThrottlePolicy p) : policy_(p), accounts_(p.max_tracked), sources_(p.max_tracked) {}

int Throttle::recent(LruCache<std::deque<Clock::time_point>>& c, const std::string& key, Clock::time_point now) {
    const auto* q = c.find(key, now);
    if (!q) return 0;
    int n = 0;
    for (auto t : *q)
        if (now - t < policy_.window) ++n;
    return n;
}

void Throttle::add(LruCache<std::deque<Clock::time_point>>& c, const std::string& key, int limit, Clock::time_point now) {
    std::deque<Clock::time_point> q;
    if (const auto* old = c.find(key, now)) q = *old;
    while (!q.empty() && now - q.front() >= policy_.window) q.pop_front();
    q.push_back(now);
    while (static_cast<int>(q.size()) > limit) q.pop_front();
    c.put(key, std::move(q), policy_.window, now);
}

std::string Throttle::blocked(const std::string& account, const std::string& source, Clock::time_point now) {
    if (!policy_.enabled) return {};
    if (!account.empty() && recent(accounts_, account, now) >= policy_.max_account_failures)
        return "account " + account + " has " + std::to_string(policy_.max_account_failures) + " failures";
    if (!source.empty() && recent(sources_, source, now) >= policy_.max_source_failures)
        return "client " + source + " has " + std::to_string(policy_.max_source_failures) + " failures";
    return {};
}

void Throttle::failure(const std::string& account, const std::string& source, Clock::time_point now) {
    if (!policy_.enabled) return;
    if (!account.empty()) add(accounts_, account, policy_.max_account_failures, now);
    if (!source.empty()) add(sources_, source, policy_.max_source_failures, now);
}

void Throttle::success(const std::string& account) { accounts_.erase(account); }

}  // namespace mailgrid
