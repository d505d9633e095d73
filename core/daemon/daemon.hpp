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
#include "metrics/metrics.hpp"
#include "net/server.hpp"

namespace mailgrid {

inline constexpr const char* kDefaultConfig = "/etc/mailgrid/mailgrid.cf";

struct CommonOptions {
    std::string config_path = kDefaultConfig;
    std::vector<std::string> overrides;
    bool foreground = false;
    int verbose = 0;
    bool check = false;
    bool show = false;
};

void add_common_options(CLI::App& app, CommonOptions& o);

// Parameters every program reads (syslog, cache, Redis, LDAP pool, user).
const std::vector<ParamSpec>& common_params();
// Parameter name prefixes of all programs, so --check of one program does
// not call another program's parameters unknown.
const std::vector<std::string>& program_prefixes();

// Loads mailgrid.cf (required only if -c was given) with the common and the
// program's parameters declared. Exits 78 (EX_CONFIG) on errors.
SuiteConfig load_config(const CommonOptions& o, const std::vector<ParamSpec>& program_params, bool config_given);

// stderr for foreground, checks and one-shot queries; syslog otherwise.
void init_logging(const std::string& program, const SuiteConfig& c, bool to_stderr, int verbose);

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
