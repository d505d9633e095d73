#include "lookup/hold_list.hpp"

#include "util/strings.hpp"

namespace mailgrid {

std::string HoldList::normalize(std::string_view address) { return to_lower(trim(address)); }

bool HoldList::holds(std::string_view key, std::string_view delimiters) const {
    if (held_.empty()) return false;
    std::string k = normalize(key);
    if (held_.count(k)) return true;
    auto stripped = strip_extension(k, delimiters);
    return stripped && held_.count(stripped->address) > 0;
}

bool HoldList::update(std::uint64_t generation, const std::vector<std::string>& addresses) {
    held_.clear();
    for (const auto& a : addresses) {
        auto n = normalize(a);
        if (!n.empty()) held_.insert(std::move(n));
    }
    bool changed = generation != generation_;
    generation_ = generation;
    return changed;
}

Lookup HoldList::answer(LookupStyle style) {
    switch (style) {
        case LookupStyle::Transport: return Lookup::found(std::string("retry:") + kHoldReason);
        case LookupStyle::Access: return Lookup::found(std::string("DEFER_IF_PERMIT ") + kHoldReason);
        default: return Lookup::temp_fail("held: mailbox is being moved");
    }
}

HoldFile parse_hold_file(std::string_view text) {
    HoldFile f;
    for (auto line : split(text, '\n')) {
        line = trim(line);
        if (line.empty()) continue;
        if (line.front() == '#') {
            line = trim(line.substr(1));
            if (line.rfind("generation", 0) == 0)
                if (auto g = parse_int(trim(line.substr(10))); g && *g >= 0) f.generation = static_cast<std::uint64_t>(*g);
            continue;
        }
        f.addresses.push_back(HoldList::normalize(line));
    }
    return f;
}

std::string format_hold_file(const HoldFile& f) {
    std::string out = "# mail for these addresses is held by ldap_tablemap (written by mailgrid user move)\n";
    out += "# generation " + std::to_string(f.generation) + "\n";
    for (const auto& a : f.addresses) out += a + "\n";
    return out;
}

}  // namespace mailgrid
