#include "auth/checker.hpp"

#include <openssl/rand.h>

#include "auth/password.hpp"
#include "config/suite_config.hpp"
#include "directory/escape.hpp"
#include "log/log.hpp"
#include "util/strings.hpp"

namespace mailgrid {

using Clock = std::chrono::steady_clock;

const char* auth_outcome_name(AuthOutcome o) {
    switch (o) {
        case AuthOutcome::Ok: return "ok";
        case AuthOutcome::Rejected: return "no";
        case AuthOutcome::Throttled: return "throttled";
        case AuthOutcome::TempFail: return "tempfail";
    }
    return "?";
}

CheckerOptions CheckerOptions::from_config(const SuiteConfig& c, const std::string& prefix) {
    CheckerOptions o;
    o.join_realm = c.get_bool(prefix + "join_realm");
    o.cache = c.get_bool(prefix + "cache");
    o.cache_ttl = c.get_duration(prefix + "cache_ttl");
    o.cache_size = static_cast<std::size_t>(c.get_int(prefix + "cache_size", 1, 100'000'000));
    o.cache_secret = c.get(prefix + "cache_secret");
    o.throttle = ThrottlePolicy::from_config(c, prefix);
    o.redis_prefix = c.get("redis_prefix");
    o.dn_cache_ttl = c.get_duration(prefix + "dn_cache_ttl");
    return o;
}

PasswordChecker::PasswordChecker(SaslauthdConf conf, std::shared_ptr<Directory> directory, CheckerOptions options,
                                 MetricsRegistry* metrics, RedisClient* redis, const std::string& mp)
    : conf_(std::move(conf)),
      directory_(std::move(directory)),
      options_(std::move(options)),
      redis_(options_.cache_secret.empty() ? nullptr : redis),
      throttle_redis_(redis),
      throttle_(options_.throttle),
      cache_(options_.cache_size),
      dns_(options_.dn_cache_ttl.count() > 0 ? options_.cache_size : 0) {
    std::string secret = options_.cache_secret;
    if (secret.empty()) {
        secret.resize(32);
        if (RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), 32) != 1)
            throw std::runtime_error("RAND_bytes failed");
    }
    cache_mac_.emplace(secret);
    secure_wipe(secret);
    timeout_ = std::chrono::milliseconds(std::max(1, conf_.server.timeout_seconds) * 1000);
    if (metrics) {
        const char* h = "Password checks by result";
        m_ok_ = &metrics->counter(mp + "_auth_total", h, {{"result", "ok"}});
        m_no_ = &metrics->counter(mp + "_auth_total", h, {{"result", "no"}});
        m_tempfail_ = &metrics->counter(mp + "_auth_total", h, {{"result", "tempfail"}});
        m_throttled_ = &metrics->counter(mp + "_auth_total", h, {{"result", "throttled"}});
        m_cache_hits_ = &metrics->counter(mp + "_auth_cache_hits_total", "Checks answered from the credential cache");
        m_latency_ = &metrics->histogram(mp + "_auth_seconds", "Time to answer a password check");
    }
}

std::string PasswordChecker::cache_key(const std::string& user, const std::string& realm, const std::string& service,
                                       const std::string& password) {
    std::string msg;
    msg.reserve(user.size() + realm.size() + service.size() + password.size() + 3);
    msg.append(user).push_back('\0');
    msg.append(realm).push_back('\0');
    msg.append(service).push_back('\0');
    msg.append(password);
    std::string key = cache_mac_->hex_digest(msg);
    secure_wipe(msg);
    return key;
}

namespace {
// Cheap schemes are checked on the loop; key-stretching ones elsewhere.
bool slow_scheme(const std::string& s) {
    return s == "CRYPT" || s == "ARGON2" || s.rfind("PBKDF2", 0) == 0;
}

AuthResult rejected(std::string why, std::string dn = {}) {
    return AuthResult{AuthOutcome::Rejected, std::move(why), std::move(dn), false};
}
AuthResult tempfail(std::string why) { return AuthResult{AuthOutcome::TempFail, std::move(why), {}, false}; }
}  // namespace

PasswordChecker::Who PasswordChecker::who(const AuthRequest& req) const {
    Who w;
    w.realm = req.realm.empty() ? conf_.default_realm : req.realm;
    w.user = req.login;
    if (options_.join_realm && !req.realm.empty()) w.user += "@" + req.realm;
    w.account = to_lower(w.user) + (w.realm.empty() || options_.join_realm ? "" : "@" + to_lower(w.realm));
    w.source = req.client_addr;
    if (auto semi = w.source.find(';'); semi != std::string::npos) w.source.resize(semi);  // "ip;port"
    return w;
}

std::optional<AuthResult> PasswordChecker::answer_from_cache(AuthRequest& req) {
    if (!options_.cache || req.login.empty() || req.password.empty()) return std::nullopt;
    // Shared failure counts and a shared cache are asked over the network.
    if (options_.throttle.enabled && throttle_redis_ && throttle_redis_->available()) return std::nullopt;
    auto start = Clock::now();
    Who w = who(req);
    if (options_.throttle.enabled && !throttle_.blocked(w.account, w.source).empty()) return std::nullopt;
    if (!cache_.find(cache_key(w.user, w.realm, req.service, req.password))) return std::nullopt;
    secure_wipe(req.password);
    AuthResult result{AuthOutcome::Ok, "cached", {}, true};
    if (m_cache_hits_) m_cache_hits_->inc();
    if (m_latency_) m_latency_->observe(std::chrono::duration<double>(Clock::now() - start).count());
    count(result, w.account, req);
    return result;
}

awaitable<AuthResult> PasswordChecker::check(AuthRequest req) {
    auto start = Clock::now();
    Who w = who(req);
    std::string user = std::move(w.user), realm = std::move(w.realm), account = std::move(w.account),
                source = std::move(w.source);

    AuthResult result;
    if (req.login.empty() || req.password.empty()) {
        result = rejected(req.login.empty() ? "empty login" : "empty password");
    } else if (auto why = co_await blocked(account, source); !why.empty()) {
        result = AuthResult{AuthOutcome::Throttled, why, {}, false};
    } else {
        std::string key = options_.cache ? cache_key(user, realm, req.service, req.password) : std::string();
        bool hit = false;
        if (options_.cache) {
            hit = cache_.find(key) != nullptr;
            if (!hit && redis_ && redis_->available()) {
                std::vector<std::string> args{std::string("EXISTS"), options_.redis_prefix + "a:" + key};
                auto r = co_await redis_->command(std::move(args));
                if (r && r->type == RedisReply::Type::Integer && r->integer == 1) {
                    hit = true;
                    cache_.put(key, true, options_.cache_ttl);
                }
            }
        }
        if (hit) {
            secure_wipe(req.password);
            result = AuthResult{AuthOutcome::Ok, "cached", {}, true};
            if (m_cache_hits_) m_cache_hits_->inc();
        } else {
            result = co_await verify(user, realm, req.service, req.password);
            if (result.outcome == AuthOutcome::Ok && options_.cache) {
                cache_.put(key, true, options_.cache_ttl);
                if (redis_ && redis_->available()) {
                    std::vector<std::string> args{std::string("SET"), options_.redis_prefix + "a:" + key, "1", "PX",
                                                  std::to_string(options_.cache_ttl.count())};
                    asio::co_spawn(
                        redis_->executor(),
                        [](RedisClient* r, std::vector<std::string> a) -> awaitable<void> {
                            co_await r->command(std::move(a));
                        }(redis_, std::move(args)),
                        asio::detached);
                }
            }
        }
    }
    secure_wipe(req.password);
    if (result.outcome == AuthOutcome::Rejected) record_failure(account, source);
    if (result.outcome == AuthOutcome::Ok && !result.cached) record_success(account);
    if (m_latency_) m_latency_->observe(std::chrono::duration<double>(Clock::now() - start).count());
    count(result, account, req);
    co_return result;
}

// With Redis, failure counts are shared by every instance (sasl_ldap_auth
// and webmail_locator on all frontends use the same keys): a fixed window
// that starts at the first failure. Without Redis, or when it does not
// answer, the in-process sliding window counts.
std::string PasswordChecker::throttle_key(char kind, const std::string& who) const {
    return options_.redis_prefix + "fail:" + kind + ":" + who;
}

awaitable<std::string> PasswordChecker::blocked(const std::string& account, const std::string& source) {
    const auto& p = options_.throttle;
    if (!p.enabled) co_return std::string();
    if (throttle_redis_ && throttle_redis_->available()) {
        std::vector<std::string> args{std::string("MGET"), throttle_key('a', account),
                                      throttle_key('s', source.empty() ? "-" : source)};
        auto r = co_await throttle_redis_->command(std::move(args));
        if (r && r->type == RedisReply::Type::Array && r->elements.size() == 2) {
            auto n = [](const RedisReply& e) { return parse_int(e.str).value_or(0); };
            if (n(r->elements[0]) >= p.max_account_failures)
                co_return "account " + account + " has " + std::to_string(p.max_account_failures) + " failures";
            if (!source.empty() && n(r->elements[1]) >= p.max_source_failures)
                co_return "client " + source + " has " + std::to_string(p.max_source_failures) + " failures";
            co_return std::string();
        }
    }
    co_return throttle_.blocked(account, source);
}

void PasswordChecker::record_failure(const std::string& account, const std::string& source) {
    throttle_.failure(account, source);
    if (!options_.throttle.enabled || !throttle_redis_ || !throttle_redis_->available()) return;
    auto window = std::to_string(options_.throttle.window.count());
    for (const auto& key : {throttle_key('a', account), source.empty() ? std::string() : throttle_key('s', source)}) {
        if (key.empty()) continue;
        // INCR, and start the window on the first failure (NX: only if
        // the key has no expiry yet).
        asio::co_spawn(
            throttle_redis_->executor(),
            [](RedisClient* r, std::string k, std::string w) -> awaitable<void> {
                std::vector<std::string> incr{std::string("INCR"), k};
                auto n = co_await r->command(std::move(incr));
                if (n && n->type == RedisReply::Type::Integer && n->integer == 1) {
                    std::vector<std::string> expire{std::string("PEXPIRE"), k, w};
                    co_await r->command(std::move(expire));
                }
            }(throttle_redis_, key, window),
            asio::detached);
    }
}

void PasswordChecker::record_success(const std::string& account) {
    throttle_.success(account);
    if (!options_.throttle.enabled || !throttle_redis_ || !throttle_redis_->available()) return;
    std::vector<std::string> del{std::string("DEL"), throttle_key('a', account)};
    asio::co_spawn(
        throttle_redis_->executor(),
        [](RedisClient* r, std::vector<std::string> a) -> awaitable<void> { co_await r->command(std::move(a)); }(
            throttle_redis_, std::move(del)),
        asio::detached);
}

void PasswordChecker::count(const AuthResult& r, const std::string& who, const AuthRequest& req) {
    if (r.outcome == AuthOutcome::Ok && log::verbose() == 0) {
        if (m_ok_) m_ok_->inc();
        return;
    }
    std::string from = req.client_addr.empty() ? "" : " client=" + printable(req.client_addr, 60);
    switch (r.outcome) {
        case AuthOutcome::Ok:
            if (m_ok_) m_ok_->inc();
            if (log::verbose() > 0)
                log::debug("authenticated: user=%s service=%s%s%s", printable(who, 100).c_str(),
                       printable(req.service, 30).c_str(), from.c_str(), r.cached ? " (cached)" : "");
            break;
        case AuthOutcome::Rejected:
            if (m_no_) m_no_->inc();
            log::info("authentication failed: user=%s service=%s%s: %s", printable(who, 100).c_str(),
                      printable(req.service, 30).c_str(), from.c_str(), r.reason.c_str());
            break;
        case AuthOutcome::Throttled:
            if (m_throttled_) m_throttled_->inc();
            log::warning("login refused without checking: user=%s service=%s%s: %s within %lld s",
                         printable(who, 100).c_str(), printable(req.service, 30).c_str(), from.c_str(),
                         r.reason.c_str(),
                         static_cast<long long>(options_.throttle.window.count() / 1000));
            break;
        case AuthOutcome::TempFail:
            if (m_tempfail_) m_tempfail_->inc();
            log::warning("cannot check password: user=%s service=%s%s: %s", printable(who, 100).c_str(),
                         printable(req.service, 30).c_str(), from.c_str(), r.reason.c_str());
            break;
    }
}

awaitable<AuthResult> PasswordChecker::verify(const std::string& user, const std::string& realm,
                                              const std::string& service, std::string& password) {
    if (conf_.method == AuthMethod::FastBind) {
        std::string dn = expand_tokens(conf_.filter, user, service, realm, "", TokenQuote::Dn);
        auto b = co_await directory_->bind_check(dn, std::move(password), timeout_);
        if (b.outcome == BindOutcome::TempFail) co_return tempfail(b.error);
        if (b.outcome != BindOutcome::Ok) co_return rejected(b.error, dn);
        if (conf_.uses_group()) co_return co_await group_check(user, realm, service, dn);
        co_return AuthResult{AuthOutcome::Ok, {}, dn, false};
    }

    if (conf_.method == AuthMethod::Bind) {
        std::string dn_key = user + '\0' + realm + '\0' + service;
        std::string dn;
        const std::string* remembered = dns_.find(dn_key);
        if (remembered) dn = *remembered;
        else {
            auto found = co_await find_entry(user, realm, service);
            if (!found.ok) {
                secure_wipe(password);
                co_return found.failure;
            }
            dn = found.entry.dn;
            dns_.put(dn_key, dn, options_.dn_cache_ttl);
        }
        std::string pw_copy = password;
        auto b = co_await directory_->bind_check(dn, std::move(pw_copy), timeout_);
        if (b.outcome == BindOutcome::InvalidCredentials && remembered) {
            // Maybe the entry moved: look again, and bind again only if
            // the login now names another entry.
            dns_.erase(dn_key);
            auto found = co_await find_entry(user, realm, service);
            if (!found.ok) {
                secure_wipe(password);
                co_return found.failure;
            }
            if (found.entry.dn != dn) {
                dn = found.entry.dn;
                b = co_await directory_->bind_check(dn, password, timeout_);
            }
            dns_.put(dn_key, dn, options_.dn_cache_ttl);
        }
        secure_wipe(password);
        if (b.outcome == BindOutcome::TempFail) co_return tempfail(b.error);
        if (b.outcome != BindOutcome::Ok) co_return rejected("wrong password (" + b.error + ")", dn);
        if (conf_.uses_group()) co_return co_await group_check(user, realm, service, dn);
        co_return AuthResult{AuthOutcome::Ok, {}, dn, false};
    }

    // custom: read the password attribute and compare
    auto found = co_await find_entry(user, realm, service);
    if (!found.ok) {
        secure_wipe(password);
        co_return found.failure;
    }
    const Entry& e = found.entry;
    std::string dn = e.dn;
    if (e.find("pwdAccountLockedTime")) {
        secure_wipe(password);
        co_return rejected("account locked", dn);
    }
    const auto* stored = e.values(conf_.password_attr);
    if (!stored || stored->empty()) {
        secure_wipe(password);
        co_return rejected("no " + conf_.password_attr, dn);
    }
    bool slow = false;
    for (const auto& h : *stored) slow = slow || slow_scheme(password_scheme(h));
    auto hashes = *stored;
    auto job = [hashes, pw = std::move(password)]() mutable {
        bool match = false;
        for (const auto& h : hashes)
            if (verify_password(h, pw) == PasswordCheck::Match) {
                match = true;
                break;
            }
        secure_wipe(pw);
        return match;
    };
    bool ok = slow ? co_await run_blocking(std::move(job)) : job();
    if (!ok) co_return rejected("wrong password", dn);
    if (conf_.uses_group()) co_return co_await group_check(user, realm, service, dn);
    co_return AuthResult{AuthOutcome::Ok, {}, dn, false};
}

awaitable<PasswordChecker::Found> PasswordChecker::find_entry(const std::string& user, const std::string& realm,
                                                              const std::string& service) {
    SearchRequest req;
    req.base = expand_tokens(conf_.search_base, user, service, realm, "", TokenQuote::Filter);
    req.filter = expand_tokens(conf_.filter, user, service, realm, "", TokenQuote::Filter);
    req.scope = conf_.scope;
    req.size_limit = 2;  // one is the answer, two is ambiguous
    req.timeout = timeout_;
    if (conf_.method == AuthMethod::Custom) req.attributes = {conf_.password_attr, "pwdAccountLockedTime"};
    else req.attributes = {"1.1"};
    auto r = co_await directory_->search(req);
    Found f;
    switch (r.code) {
        case SearchResult::Code::TempFail: f.failure = tempfail(r.error); co_return f;
        case SearchResult::Code::SizeLimit:
            log::warning("more than one entry for login %s (%s)", printable(user, 100).c_str(), req.filter.c_str());
            f.failure = rejected("more than one entry");
            co_return f;
        case SearchResult::Code::NoSuchObject:
        case SearchResult::Code::Ok: break;
    }
    if (r.entries.empty()) {
        f.failure = rejected("no such user");
        co_return f;
    }
    if (r.entries.size() > 1) {
        log::warning("more than one entry for login %s (%s)", printable(user, 100).c_str(), req.filter.c_str());
        f.failure = rejected("more than one entry");
        co_return f;
    }
    f.entry = std::move(r.entries[0]);
    f.ok = true;
    co_return f;
}

awaitable<AuthResult> PasswordChecker::group_check(const std::string& user, const std::string& realm,
                                                   const std::string& service, const std::string& dn) {
    SearchRequest req;
    req.timeout = timeout_;
    req.attributes = {"1.1"};
    req.size_limit = 1;
    if (conf_.group_match == GroupMatch::Attr) {
        req.base = expand_tokens(conf_.group_dn, user, service, realm, dn, TokenQuote::Filter);
        req.scope = Scope::Base;
        req.filter = "(" + conf_.group_attr + "=" + filter_escape(dn) + ")";
    } else {
        req.base = expand_tokens(conf_.group_search_base, user, service, realm, dn, TokenQuote::Filter);
        req.scope = conf_.group_scope;
        req.filter = expand_tokens(conf_.group_filter, user, service, realm, dn, TokenQuote::Filter);
    }
    auto r = co_await directory_->search(req);
    if (r.code == SearchResult::Code::TempFail) co_return tempfail("group check: " + r.error);
    if (r.entries.empty() && r.code != SearchResult::Code::SizeLimit)
        co_return rejected("not a member of the required group", dn);
    co_return AuthResult{AuthOutcome::Ok, {}, dn, false};
}

}  // namespace mailgrid
