#include "directory/table_results.hpp"

#include "util/strings.hpp"

namespace mailgrid {

bool attribute_matches(std::string_view wanted, std::string_view returned) {
    if (returned.size() < wanted.size()) return false;
    if (!iequals(returned.substr(0, wanted.size()), wanted)) return false;
    return returned.size() == wanted.size() || returned[wanted.size()] == ';';
}

bool is_ldap_url(std::string_view s) {
    auto l = to_lower(s.substr(0, 8));
    return l.rfind("ldap://", 0) == 0 || l.rfind("ldaps://", 0) == 0 || l.rfind("ldapi://", 0) == 0;
}

void TableResults::append(std::string_view value) {
    if (failed()) return;
    if (!result_.empty()) result_.push_back(',');
    result_.append(value);
    if (cfg_.expansion_limit > 0 && ++expansions_ > cfg_.expansion_limit)
        fail("expansion limit (" + std::to_string(cfg_.expansion_limit) + ") exceeded for key " + printable(key_, 100));
}

std::vector<TableResults::Item> TableResults::items(const Entry& e, int depth, std::size_t nth) {
    std::vector<Item> out;
    if (failed()) return out;
    if (cfg_.size_limit > 0 && nth > static_cast<std::size_t>(cfg_.size_limit)) {
        fail("query size limit (" + std::to_string(cfg_.size_limit) + ") exceeded");
        return out;
    }
    const auto& terminal = cfg_.terminal_attributes;
    const auto& leaf = cfg_.leaf_attributes;
    const auto& regular = cfg_.result_attributes;
    const auto& special = cfg_.special_attributes;
    const std::size_t n_terminal = terminal.size();
    const std::size_t n_leaf = leaf.size();
    const std::size_t n_ordinary = n_terminal + n_leaf + regular.size();

    auto index_of = [&](std::string_view returned) -> std::size_t {
        std::size_t i = 0;
        for (auto* list : {&terminal, &leaf, &regular, &special})
            for (const auto& a : *list) {
                if (attribute_matches(a, returned)) return i;
                ++i;
            }
        return i;
    };
    auto has_values = [&](const std::vector<std::string>& names) {
        for (const auto& n : names)
            for (const auto& a : e.attributes)
                if (attribute_matches(n, a.name) && !a.values.empty()) return true;
        return false;
    };

    bool is_terminal = n_terminal > 0 && has_values(terminal);
    bool is_leaf = true;
    if (!is_terminal && n_leaf > 0) is_leaf = !has_values(special);

    for (const auto& attr : e.attributes) {
        if (attr.values.empty()) continue;
        std::size_t i = index_of(attr.name);
        if (i >= n_ordinary + special.size()) continue;  // not one we asked for
        if (i < n_ordinary || is_terminal) {
            if ((is_terminal && i >= n_terminal) || (!is_leaf && i >= n_terminal && i < n_terminal + n_leaf)) continue;
            for (const auto& v : attr.values) {
                auto expanded = cfg_.templates.expand_result(cfg_.result_format, v, key_);
                if (expanded) out.push_back({false, std::move(*expanded)});
            }
        } else if (depth < cfg_.recursion_limit) {
            for (const auto& v : attr.values) out.push_back({true, v});
        } else {
            fail("recursion limit exceeded for special attribute " + attr.name + "=" + printable(attr.values[0], 80));
            return out;
        }
    }
    return out;
}

}  // namespace mailgrid
