// entry - a directory entry as every directory backend returns it.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mailgrid {

struct Attribute {
    std::string name;                 // as written in the entry (case kept)
    std::vector<std::string> values;  // in stored order
};

struct Entry {
    std::string dn;
    std::vector<Attribute> attributes;  // in stored order

    // Attribute names are case-insensitive; options (";lang-en") are not
    // matched here.
    const Attribute* find(std::string_view name) const;
    Attribute& get_or_add(std::string_view name);
    const std::vector<std::string>* values(std::string_view name) const;
    std::string first(std::string_view name) const;  // "" if absent
};

enum class Scope { Base, One, Sub };

}  // namespace mailgrid
