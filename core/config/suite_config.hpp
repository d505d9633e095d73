// suite_config - mailgrid.cf, the suite's own main.cf-style configuration.
//
// Parameters are "name = value" with $name expansion as in Postfix's
// main.cf; "-o name=value" on the command line overrides the file. Every
// program declares the parameters it reads (name, default, help), which
// gives "--check" its unknown-parameter warnings and "--show" its
// postconf-like listing.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/cf_file.hpp"

namespace mailgrid {

struct ParamSpec {
    const char* name;
    const char* default_value;
    const char* help;
};

class SuiteConfig {
public:
    SuiteConfig() = default;
    // Loads path ("" = none: defaults only) and applies "name=value"
    // overrides. A missing file is an error only if `required`.
    static SuiteConfig load(const std::string& path, const std::vector<std::string>& overrides, bool required);

    void declare(const std::vector<ParamSpec>& specs);
    void set(std::string name, std::string value);  // an override

    bool has(std::string_view name) const;  // set in the file or by -o
    std::string get(std::string_view name) const;  // expanded; default if unset
    std::string raw(std::string_view name) const;

    bool get_bool(std::string_view name) const;
    std::int64_t get_int(std::string_view name, std::int64_t min = 0, std::int64_t max = INT64_MAX) const;
    std::chrono::milliseconds get_duration(std::string_view name, char default_unit = 's') const;
    std::chrono::microseconds get_duration_us(std::string_view name, char default_unit = 's') const;
    std::uint64_t get_size(std::string_view name) const;
    std::vector<std::string> get_list(std::string_view name) const;
    // "name=value, ..." as pairs in the order written; a malformed item
    // fails (ConfigError naming the parameter).
    std::vector<std::pair<std::string, std::string>> get_pairs(std::string_view name) const;

    // "mailgrid.cf, line 12" or "-o cache_ttl" for messages.
    std::string where(std::string_view name) const;
    [[noreturn]] void fail(std::string_view name, const std::string& why) const;

    // Parameters in the file that no declared spec names, except those with
    // a prefix in `foreign_prefixes` (parameters of other programs).
    std::vector<std::string> unknown(const std::vector<std::string>& foreign_prefixes) const;
    std::vector<std::string> warnings() const { return warnings_; }
    // "name = value" for every declared parameter, like postconf.
    std::string show(bool only_set) const;
    const std::string& path() const { return path_; }

private:
    std::optional<std::string> lookup(std::string_view name) const;
    std::string expand(std::string_view value, int depth) const;

    std::string path_;
    std::vector<CfParam> file_params_;
    std::map<std::string, std::string, std::less<>> overrides_;
    const ParamSpec* spec(std::string_view name) const;
    // Flat and sorted by name, not a map: a program started once per
    // message (maildir_deliver) declares some ninety parameters and asks
    // for a few dozen.
    std::vector<ParamSpec> specs_;
    std::vector<std::string> warnings_;
};

}  // namespace mailgrid
