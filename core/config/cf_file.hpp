// cf_file - reader for Postfix main.cf syntax ("name = value").
//
// Used for the suite's mailgrid.cf and for Postfix ldap_table(5) files, which
// share the syntax: comment lines start with '#', a line that starts with
// whitespace continues the previous logical line (joined without a
// separator, as Postfix's readllines does), '#' inside a value is text.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mailgrid {

// "file, line N: text", the form Postfix uses for configuration errors.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct CfParam {
    std::string name;
    std::string value;
    int line = 0;
};

class CfFile {
public:
    static CfFile parse(std::string_view text, std::string path);
    static CfFile load(const std::string& path);  // throws ConfigError

    const std::string& path() const { return path_; }
    // The last definition wins, as in Postfix; earlier ones are reported by
    // duplicates().
    const CfParam* find(std::string_view name) const;
    const std::vector<CfParam>& params() const { return params_; }
    std::vector<std::string> duplicates() const { return duplicates_; }
    std::vector<std::string> warnings() const { return warnings_; }

    std::string where(const CfParam& p) const;

private:
    std::string path_;
    std::vector<CfParam> params_;
    std::vector<std::string> duplicates_;
    std::vector<std::string> warnings_;
};

}  // namespace mailgrid
