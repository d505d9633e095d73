// daemon - what every mailgrid daemon does the same way: the common
// command line (-c -o -f -v --check --show), mailgrid.cf with its common
// parameters, logging, privilege drop after binding, the metrics endpoint,
// and signals (TERM/INT stop, HUP reload).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "config/suite_config.hpp"
#include "daemon/common.hpp"
#include "metrics/metrics.hpp"
#include "net/server.hpp"

namespace mailgrid {

void add_common_options(CLI::App& app, CommonOptions& o);

// Loads mailgrid.cf (required only if -c was given) with the common and the
// program's parameters declared. Exits 78 (EX_CONFIG) on errors.
SuiteConfig load_config(const CommonOptions& o, const std::vector<ParamSpec>& program_params, bool config_given);

// If root and daemon_user is set, become that user. Exits 78 if the user
// does not exist, 71 (EX_OSERR) if the change fails.
void drop_privileges(const SuiteConfig& c);

// /metrics and /healthz on the address in parameter `param` (if set).
void serve_metrics(Server& server, const SuiteConfig& c, const std::string& param, MetricsRegistry& metrics,
                   std::function<bool()> healthy = {});

// Runs the loop until SIGTERM or SIGINT; on_stop runs first, on_reload on
// SIGHUP. Returns once the blocking pool's jobs are done too
// (finish_blocking_work).
void run_until_signal(asio::io_context& io, std::function<void()> on_stop, std::function<void()> on_reload);

// Prints --check findings; returns the exit status (0 or 78).
int report_check(const std::string& program, const std::vector<std::string>& warnings,
                 const std::vector<std::string>& errors);

// The configuration step every daemon takes before it binds anything:
// load builds the program's objects from the configuration, adding what
// it finds; an exception it throws is an error. The configuration's own
// warnings and unknown parameters are added. With check, the findings
// are printed (--check); otherwise errors are logged and warnings too.
// Returns the exit status to stop with (0 or 78), or nullopt to go on.
using Findings = std::vector<std::string>;
std::optional<int> settle_config(const std::string& program, const SuiteConfig& config, bool check,
                                 const std::function<void(Findings& warnings, Findings& errors)>& load);

}  // namespace mailgrid
