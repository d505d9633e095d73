// expand - %-templates of Postfix's ldap_table(5): search_base,
// query_filter and result_format, with the exact rules of Postfix's
// db_common_expand().
//
// One ExpandContext is built from all templates of a table, because in
// Postfix the %-codes of any template constrain which keys are searched at
// all: a %d anywhere means keys without a domain are never looked up.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mailgrid {

enum class Quote { None, Filter, Dn };

class ExpandContext {
public:
    // Registers a template's %-codes. Returns true if it depends on the key
    // (is "dynamic"). Throws std::invalid_argument naming the bad code.
    bool add_template(std::string_view format, bool is_query);

    // Expands a query template (search_base or query_filter) for a key.
    // nullopt: the key cannot fill the template (no domain for %d, empty
    // local part for %u, too few labels for %3): the lookup is skipped and
    // the answer is "not found", as in Postfix.
    std::optional<std::string> expand_query(std::string_view format, std::string_view key, Quote quote) const;

    // Expands result_format for one attribute value found for key.
    // nullopt: the value is skipped (e.g. %d and the value has no domain).
    std::optional<std::string> expand_result(std::string_view format, std::string_view value,
                                             std::string_view key) const;

    // True if the templates use parts of the key (%u %d %1...): Postfix then
    // treats the table as a "pattern" table and never queries partial keys.
    bool uses_key_parts() const { return key_partial_; }

private:
    std::optional<std::string> expand(std::string_view format, std::string_view value,
                                      const std::string_view* key, Quote quote) const;
    bool key_user_ = false, key_domain_ = false, key_partial_ = false;
    bool value_user_ = false, value_domain_ = false;
    int nparts_ = 0;
};

}  // namespace mailgrid
