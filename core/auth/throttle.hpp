// throttle - refuse logins after too many recent failures, per account and
// per client address, without asking the directory.
#pragma once

#include <chrono>
#include <deque>
#include <string>
#include <string_view>

#include "cache/lru_cache.hpp"

namespace mailgrid {

class SuiteConfig;

struct ThrottlePolicy {
    bool enabled = true;
    int max_account_failures = 10;
    int max_source_failures = 100;
    std::chrono::milliseconds window{15 * 60 * 1000};
    std::size_t max_tracked = 200000;  // accounts and addresses remembered
    static ThrottlePolicy from_config(const SuiteConfig& c, const std::string& prefix);
};

class Throttle {
public:
    explicit Throttle(ThrottlePolicy p);
    using Clock = std::chrono::steady_clock;

    // Which limit, if any, this login has reached: "" if none.
    std::string blocked(const std::string& account, const std::string& source, Clock::time_point now = Clock::now());
    void failure(const std::string& account, const std::string& source, Clock::time_point now = Clock::now());
    void success(const std::string& account);
    const ThrottlePolicy& policy() const { return policy_; }

private:
    int recent(LruCache<std::deque<Clock::time_point>>& c, const std::string& key, Clock::time_point now);
    void add(LruCache<std::deque<Clock::time_point>>& c, const std::string& key, int limit, Clock::time_point now);

    ThrottlePolicy policy_;
    LruCache<std::deque<Clock::time_point>> accounts_, sources_;
};

}  // namespace mailgrid
