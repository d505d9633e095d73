// policy_server - the policy delegation listener (see policy_server.hpp).
#include "policy_server.hpp"

#include "log/log.hpp"
#include "proto/policy.hpp"
#include "util/strings.hpp"

namespace mailgrid {

const std::vector<ParamSpec>& policy_program_params() {
    static const std::vector<ParamSpec> specs = {
        {"policy_listen", "127.0.0.1:10040", "policy delegation listener: host:port or unix:/path; empty: none"},
        {"policy_metrics", "", "Prometheus /metrics listener: host:port"},
        {"policy_max_connections", "1000", "policy client connections (Postfix opens one per smtpd process)"},
        {"policy_idle_timeout", "600s",
         "close a policy connection idle this long (above Postfix's smtpd_policy_service_max_idle, 300s)"},
        {"milter_listen", "",
         "milter listener: host:port, inet:port@host, inet6:port@host or unix:/path; empty: none"},
        {"milter_timeout", "20s",
         "a milter callback waits this long for a decision (below Postfix's milter_command_timeout, 30s)"},
        {"milter_timeout_action", "tempfail", "no decision in time: tempfail (451 4.3.0) or accept"},
        {"milter_check_size", "yes", "at the end of a message, check its real size against the recipients' quota"},
    };
    return specs;
}

CheckRequest check_request_of(const policy::Request& r) {
    CheckRequest c;
    c.stage = r.stage;
    c.sender = r.sender;
    c.recipient = r.recipient;
    c.login = r.sasl_username;
    c.queue_id = r.queue_id;
    c.size = r.size;
    c.client = (r.client_name.empty() ? std::string("unknown") : printable(r.client_name, 100)) + "[" +
               printable(r.client_address, 60) + "]";
    return c;
}

PolicyServer::PolicyServer(PolicyEngine& engine, MetricsRegistry* metrics) : engine_(engine) {
    if (metrics) {
        m_requests_ = &metrics->counter("mailgrid_policy_requests_total", "Requests answered",
                                        {{"listener", "policy"}});
        m_malformed_ = &metrics->counter("mailgrid_policy_malformed_total",
                                         "Malformed requests (the connection is closed without an answer)",
                                         {{"listener", "policy"}});
        m_seconds_ = &metrics->histogram("mailgrid_policy_request_seconds", "Time to a decision",
                                         {{"listener", "policy"}});
    }
}

void PolicyServer::listen(Server& server, const SuiteConfig& config) {
    auto where = config.get("policy_listen");
    if (where.empty()) return;
    std::string err;
    auto spec = ListenSpec::parse(where, &err);
    if (!spec) config.fail("policy_listen", err);
    ServiceOptions opt;
    opt.name = "policy";
    opt.max_connections = static_cast<std::size_t>(config.get_int("policy_max_connections", 1, 1'000'000));
    opt.idle_timeout = config.get_duration("policy_idle_timeout");
    // Room for one request at its limit and the start of the next, so the
    // codec, not the buffer, says what is wrong with an oversized request.
    opt.max_buffer = 2 * policy::kMaxRequest;
    server.listen(*spec, opt, [this](Connection& c) { return serve(c); });
}

// Postfix sends one request at a time on a connection and keeps it for
// many SMTP sessions; "instance" tells the messages apart, so the state of
// a message (counted against the limits? sender checked?) follows it.
awaitable<void> PolicyServer::serve(Connection& c) {
    std::shared_ptr<MessageState> state;
    std::string message_key;
    std::string out;
    for (;;) {
        for (;;) {
            std::size_t consumed = 0;
            auto parsed = policy::parse_request(c.buffer(), consumed);
            if (!parsed) break;
            c.consume(consumed);
            if (!parsed->ok) {
                if (m_malformed_) m_malformed_->inc();
                log::warning("policy client %s: malformed request: %s; closing the connection without an answer",
                             c.peer().c_str(), parsed->error.c_str());
                if (!out.empty()) co_await c.write(out);
                c.close();
                co_return;
            }
            const policy::Request& req = parsed->request;
            std::string key = !req.instance.empty()
                                  ? req.instance
                                  : req.client_address + "|" + req.sasl_username + "|" + req.sender + "|" + req.queue_id;
            if (!state || key != message_key) {
                state = std::make_shared<MessageState>();
                message_key = std::move(key);
            }
            auto started = std::chrono::steady_clock::now();
            CheckRequest check = check_request_of(req);
            Verdict v = co_await engine_.check(std::move(check), state);
            if (m_requests_) m_requests_->inc();
            if (m_seconds_)
                m_seconds_->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
            out += policy::format_reply(v.policy_action());
        }
        if (!out.empty()) {
            if (!co_await c.write(out)) co_return;
            out.clear();
        }
        if (!co_await c.read_more()) {
            if (!c.buffer().empty())
                log::warning("policy client %s: connection closed in the middle of a request (%zu bytes)",
                             c.peer().c_str(), c.buffer().size());
            co_return;
        }
    }
}

}  // namespace mailgrid
