// policy_server - the Postfix policy delegation listener of mailgrid_policy
// (check_policy_service inet:127.0.0.1:10040): one coroutine per Postfix
// connection, requests answered in order by the rule engine.
#pragma once

#include <vector>

#include "config/suite_config.hpp"
#include "metrics/metrics.hpp"
#include "net/server.hpp"
#include "policy/rules.hpp"

namespace mailgrid {

// The listener parameters of the program (policy_listen, milter_listen,
// ...); the rule engine's are policy_rule_params().
const std::vector<ParamSpec>& policy_program_params();

// What the engine is asked for one policy request.
CheckRequest check_request_of(const policy::Request& r);

class PolicyServer {
public:
    PolicyServer(PolicyEngine& engine, MetricsRegistry* metrics);

    // Binds policy_listen on server. Throws ConfigError.
    void listen(Server& server, const SuiteConfig& config);
    awaitable<void> serve(Connection& c);

private:
    PolicyEngine& engine_;
    Counter *m_requests_ = nullptr, *m_malformed_ = nullptr;
    Histogram* m_seconds_ = nullptr;
};

}  // namespace mailgrid
