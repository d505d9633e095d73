// checker - "is this the password of this login?" against the directory,
// the one implementation behind sasl_ldap_auth and webmail_locator.
//
// The answer is Ok, Rejected (wrong password, unknown, ambiguous or locked
// account, not in the required group), Throttled (too many recent
// failures: the directory is not asked) or TempFail (the directory is down,
// slow or erring: never reported as a wrong password). Successful checks
// may be cached under a keyed hash of login, realm, service and password,
// so a cached entry can only ever confirm the very password that worked,
// and expires after its TTL; failures are never cached.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "auth/throttle.hpp"
#include "cache/lru_cache.hpp"
#include "cache/redis_client.hpp"
#include "config/saslauthd_conf.hpp"
#include "directory/directory.hpp"
#include "metrics/metrics.hpp"
#include "util/hmac.hpp"

namespace mailgrid {

class SuiteConfig;

enum class AuthOutcome { Ok, Rejected, Throttled, TempFail };
const char* auth_outcome_name(AuthOutcome o);

struct AuthRequest {
    std::string login, password, service, realm, client_addr;
};

struct AuthResult {
    AuthOutcome outcome = AuthOutcome::TempFail;
    std::string reason;  // for the log, never for the client
    std::string dn;      // the account's entry, when known
    bool cached = false;
};

struct CheckerOptions {
    bool join_realm = false;  // saslauthd -r: "login@realm" is the login
    bool cache = false;
    std::chrono::milliseconds cache_ttl{600'000};
    std::size_t cache_size = 100000;
    std::string cache_secret;  // HMAC key; random per process when empty
    ThrottlePolicy throttle;
    std::string redis_prefix = "mailgrid:";
    // Which entry a login maps to changes rarely; remembering it saves the
    // search before each bind. A stale DN cannot authenticate anyone: the
    // password is still checked by the bind, and a failed bind with a
    // remembered DN searches again.
    std::chrono::milliseconds dn_cache_ttl{600'000};
    static CheckerOptions from_config(const SuiteConfig& c, const std::string& prefix);
};

class PasswordChecker {
public:
    // redis (optional) shares failure counts, and, when cache_secret is
    // set, the credential cache, with every other instance.
    PasswordChecker(SaslauthdConf conf, std::shared_ptr<Directory> directory, CheckerOptions options,
                    MetricsRegistry* metrics, RedisClient* redis, const std::string& metrics_prefix);

    // Wipes request.password before returning.
    awaitable<AuthResult> check(AuthRequest request);
    // The answer of check() when the credential cache gives it without
    // asking Redis or the directory (a login cached here, not throttled);
    // nullopt otherwise, with nothing counted and the password left for
    // check(). Lets a server answer a cached login without its event loop.
    std::optional<AuthResult> answer_from_cache(AuthRequest& request);
    const SaslauthdConf& conf() const { return conf_; }

private:
    awaitable<AuthResult> verify(const std::string& user, const std::string& realm, const std::string& service,
                                 std::string& password);
    struct Found {
        AuthResult failure;  // outcome TempFail or Rejected when no entry
        Entry entry;
        bool ok = false;
    };
    awaitable<Found> find_entry(const std::string& user, const std::string& realm, const std::string& service);
    awaitable<AuthResult> group_check(const std::string& user, const std::string& realm, const std::string& service,
                                      const std::string& dn);
    struct Who {
        std::string user;     // the login, with @realm when join_realm
        std::string realm;    // the request's, or the default realm
        std::string account;  // what failures are counted against
        std::string source;   // client address without ";port"
    };
    Who who(const AuthRequest& req) const;
    std::string cache_key(const std::string& user, const std::string& realm, const std::string& service,
                          const std::string& password);
    void count(const AuthResult& r, const std::string& who, const AuthRequest& req);
    awaitable<std::string> blocked(const std::string& account, const std::string& source);
    void record_failure(const std::string& account, const std::string& source);
    void record_success(const std::string& account);
    std::string throttle_key(char kind, const std::string& who) const;

    SaslauthdConf conf_;
    std::shared_ptr<Directory> directory_;
    CheckerOptions options_;
    RedisClient* redis_;           // shared credential cache (needs cache_secret)
    RedisClient* throttle_redis_;  // shared failure counts
    Throttle throttle_;
    LruCache<bool> cache_;
    LruCache<std::string> dns_;
    std::optional<HmacSha256> cache_mac_;  // keys the cache entries by user, password and service
    std::chrono::milliseconds timeout_;

    Counter *m_ok_ = nullptr, *m_no_ = nullptr, *m_tempfail_ = nullptr, *m_throttled_ = nullptr;
    Counter *m_cache_hits_ = nullptr;
    Histogram* m_latency_ = nullptr;
};

}  // namespace mailgrid
