// milter - the libmilter milter of mailgrid_policy, for Postfix
// (smtpd_milters) and Sendmail (INPUT_MAIL_FILTER), on the same rule
// engine as the policy listener.
//
// libmilter runs its own threads: one per SMTP connection, plus one that
// takes SIGHUP, SIGTERM and SIGINT. Callbacks never touch the engine
// directly; they post a check to the event loop and wait for its verdict
// on a future, up to milter_timeout.
//
// libmilter trusts its peer: a macro command whose names and values do
// not pair up crashes it. So the MTA never talks to libmilter directly: a
// guard on the event loop listens on milter_listen, checks every command
// (proto/milter.hpp) and relays it to libmilter on a unix socket in a
// private directory; a malformed one closes that connection only.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "config/suite_config.hpp"
#include "metrics/metrics.hpp"
#include "net/server.hpp"
#include "policy/rules.hpp"

namespace mailgrid {

// libmilter's socket spec for a milter_listen value: "host:port" and
// Postfix's "inet:host:port" become "inet:port@host" ("inet6:" for
// [v6]:port), "/path" becomes "unix:/path"; libmilter's own forms pass
// as they are. nullopt (and *why) otherwise.
std::optional<std::string> milter_socket(std::string_view listen, std::string* why = nullptr);

class Milter {
public:
    // Registers with libmilter, which binds its private socket, and binds
    // the guard's listener on server, now (before privileges are dropped).
    // Throws ConfigError for a bad milter_* parameter, std::runtime_error
    // or std::system_error if a socket cannot be opened. Only one Milter
    // may exist: libmilter is a process-wide library.
    Milter(asio::io_context& io, PolicyEngine& engine, const SuiteConfig& config, MetricsRegistry* metrics,
           Server& server);
    ~Milter();

    // Runs libmilter in a thread of its own. on_exit runs on the event loop
    // when it returns: libmilter took SIGTERM, SIGHUP or SIGINT, or stop()
    // was called.
    void start(std::function<void()> on_exit);
    void stop();  // smfi_stop(); returns when libmilter's thread has ended
    // milter_listen, in libmilter's notation ("inet:10041@127.0.0.1").
    const std::string& socket() const { return socket_; }
    bool checks_size() const { return check_size_; }

    struct Session;
    // The callbacks' side: a verdict from the loop, or the timeout action.
    Verdict decide(Session& s, CheckRequest request, bool final_size);

private:
    awaitable<void> relay(Connection& mta);
    static awaitable<void> relay_replies(std::shared_ptr<asio::local::stream_protocol::socket> libmilter,
                                         Connection& mta);
    void remove_private_socket();

    asio::io_context& io_;
    PolicyEngine& engine_;
    std::string socket_;
    std::string private_dir_, private_socket_;  // where libmilter listens
    std::chrono::milliseconds timeout_;
    bool timeout_accepts_ = false;
    bool check_size_ = true;
    std::thread thread_;

    Counter *m_requests_ = nullptr, *m_timeouts_ = nullptr, *m_malformed_ = nullptr;
    Histogram* m_seconds_ = nullptr;
};

}  // namespace mailgrid
