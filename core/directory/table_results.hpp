// table_results - how Postfix's dict_ldap turns search entries into an
// answer: terminal, leaf-only and special (DN/URL) attributes, result_format
// per value, expansion and size limits, values joined with commas.
//
// Pure: the caller runs the searches (embedded or LDAP), walks the items of
// each entry in order and searches the references it meets, so the answer
// comes out in the same order as Postfix's depth-first recursion.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/ldap_table.hpp"
#include "directory/entry.hpp"

namespace mailgrid {

class TableResults {
public:
    TableResults(const LdapTableConfig& cfg, std::string_view key) : cfg_(cfg), key_(key) {}

    struct Item {
        bool reference = false;  // a DN or LDAP URL to search at depth + 1
        std::string text;        // the expanded value, or the reference
    };

    // The values and references of one entry at recursion depth `depth`
    // (0 = found by the query itself), in Postfix's order. `nth` counts the
    // entries of one search (1-based) for size_limit.
    std::vector<Item> items(const Entry& e, int depth, std::size_t nth);

    void append(std::string_view value);  // counts against expansion_limit

    // A limit was exceeded: the lookup must fail temporarily, as in Postfix.
    bool failed() const { return !error_.empty(); }
    const std::string& error() const { return error_; }
    void fail(std::string why) {
        if (error_.empty()) error_ = std::move(why);
    }
    const std::string& value() const { return result_; }
    const std::string& key() const { return key_; }

private:
    const LdapTableConfig& cfg_;
    std::string key_;
    std::string result_;
    std::string error_;
    int expansions_ = 0;
};

// Does returned attribute description `returned` ("mail;lang-en") denote
// the configured attribute `wanted` or one of its subtypes?
bool attribute_matches(std::string_view wanted, std::string_view returned);

bool is_ldap_url(std::string_view s);

}  // namespace mailgrid
