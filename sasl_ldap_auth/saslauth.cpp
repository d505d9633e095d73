#include "saslauth.hpp"

#include "proto/saslauthd.hpp"
#include "util/secure.hpp"

namespace mailgrid {

const std::vector<ParamSpec>& saslauth_params() {
    static const std::vector<ParamSpec> specs = {
        {"saslauth_socket", "/run/mailgrid/mux", "the saslauthd socket (saslauthd -m DIR means DIR/mux)"},
        {"saslauth_socket_mode", "0777", "permissions of the socket (guard it with its directory, as saslauthd does)"},
        {"saslauth_mech", "ldap", "ldap (saslauthd.conf) or ldif:/path/users.ldif (the embedded directory)"},
        {"saslauth_conf", "/etc/saslauthd.conf", "the saslauthd.conf to read (saslauthd -O)"},
        {"saslauth_concurrency", "5", "LDAP connections for password binds (saslauthd -n)"},
        {"saslauth_cache", "no", "cache successful checks (saslauthd -c)"},
        {"saslauth_cache_ttl", "600s", "how long a successful check is trusted (saslauthd -t)"},
        {"saslauth_cache_size", "100000", "entries in the credential cache"},
        {"saslauth_cache_secret", "", "HMAC key of cache entries; needed to share them through Redis"},
        {"saslauth_join_realm", "no", "check login@realm as the login (saslauthd -r)"},
        {"saslauth_dn_cache_ttl", "10m", "remember which entry a login maps to (bind mode; 0 = search every time)"},
        {"saslauth_throttle", "yes", "refuse logins after repeated failures without asking the directory"},
        {"saslauth_max_account_failures", "10", "failures per account within saslauth_failure_window"},
        {"saslauth_max_source_failures", "100", "failures per client address within saslauth_failure_window"},
        {"saslauth_failure_window", "15m", "how long failures count"},
        {"saslauth_fifth_field_wait", "0", "how long to wait for the optional client-address field"},
        {"saslauth_metrics", "", "Prometheus /metrics listener: host:port"},
        {"saslauth_max_connections", "10000", "concurrent client connections"},
    };
    return specs;
}

namespace {
AuthRequest take_request(saslauthd::Parsed& p) {
    AuthRequest req;
    req.login = std::move(p.request.login);
    req.password = std::move(p.request.password);
    req.service = std::move(p.request.service);
    req.realm = std::move(p.request.realm);
    req.client_addr = std::move(p.request.client_addr);
    return req;
}
}  // namespace

std::optional<std::string> answer_mux_at_once(std::string_view first_read, PasswordChecker& checker,
                                              std::chrono::milliseconds fifth_wait) {
    auto p = saslauthd::parse(first_read);
    // Only a request that is all there is: a fifth field still on its way
    // or more bytes behind it go through serve_mux.
    bool whole = p.state == saslauthd::Parsed::State::Five ||
                 (p.state == saslauthd::Parsed::State::Four && fifth_wait.count() == 0);
    std::optional<std::string> reply;
    if (whole && p.consumed == first_read.size()) {
        AuthRequest req = take_request(p);
        if (checker.answer_from_cache(req)) reply = saslauthd::reply("OK");
        secure_wipe(req.password);
    }
    secure_wipe(p.request.password);
    return reply;
}

awaitable<void> serve_mux(Connection& c, PasswordChecker& checker, std::chrono::milliseconds fifth_wait) {
    for (;;) {
        auto p = saslauthd::parse(c.buffer());
        if (p.state == saslauthd::Parsed::State::Incomplete) {
            if (!co_await c.read_more()) {
                c.wipe_input();
                co_return;
            }
            continue;
        }
        if (p.state == saslauthd::Parsed::State::TooLong) {
            c.wipe_input();
            co_await c.write(saslauthd::reply("NO request too long"));
            co_return;
        }
        if (p.state == saslauthd::Parsed::State::Four) {
            // Clients send the whole request in one write; a fifth field
            // would already be here, or at most a moment away.
            // With no wait configured, what arrived is the request.
            bool more = fifth_wait.count() > 0 && (c.pending_bytes() > 0 || co_await c.wait_readable(fifth_wait));
            if (more) {
                secure_wipe(p.request.password);
                if (!co_await c.read_more()) {
                    c.wipe_input();
                    co_return;
                }
                continue;
            }
        }
        c.wipe_input();
        auto r = co_await checker.check(take_request(p));
        switch (r.outcome) {
            case AuthOutcome::Ok: co_await c.write(saslauthd::reply("OK")); break;
            case AuthOutcome::Rejected:
            case AuthOutcome::Throttled: co_await c.write(saslauthd::reply("NO authentication failed")); break;
            case AuthOutcome::TempFail: break;  // hang up: the client reports a temporary failure
        }
        co_return;
    }
}

}  // namespace mailgrid
