#include "directory/entry.hpp"

#include "util/strings.hpp"

namespace mailgrid {

const Attribute* Entry::find(std::string_view name) const {
    for (const auto& a : attributes)
        if (iequals(a.name, name)) return &a;
    return nullptr;
}

Attribute& Entry::get_or_add(std::string_view name) {
    for (auto& a : attributes)
        if (iequals(a.name, name)) return a;
    attributes.push_back({std::string(name), {}});
    return attributes.back();
}

const std::vector<std::string>* Entry::values(std::string_view name) const {
    auto* a = find(name);
    return a ? &a->values : nullptr;
}

std::string Entry::first(std::string_view name) const {
    auto* v = values(name);
    return (v && !v->empty()) ? v->front() : std::string();
}

}  // namespace mailgrid
