// common - what every mailgrid program shares before any daemon machinery:
// the common options, the common parameters of mailgrid.cf, and logging.
// Kept apart from daemon.hpp (asio, CLI11) so that a program started once
// per message links none of that (see maildir_deliver's front).
#pragma once

#include <string>
#include <vector>

#include "config/suite_config.hpp"

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

// Parameters every program reads (syslog, cache, Redis, LDAP pool, user).
const std::vector<ParamSpec>& common_params();
// Parameter name prefixes of all programs, so --check of one program does
// not call another program's parameters unknown.
const std::vector<std::string>& program_prefixes();

// stderr for foreground, checks and one-shot queries; syslog otherwise.
void init_logging(const std::string& program, const SuiteConfig& c, bool to_stderr, int verbose);

}  // namespace mailgrid
