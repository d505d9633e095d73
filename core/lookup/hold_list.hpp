// hold_list - the addresses whose mail the frontends hold back while
// "mailgrid user move" moves their mailbox to another backend.
//
// The list lives where every frontend can read it: a Redis set
// (<redis_prefix>hold, with a generation counter <prefix>hold:gen bumped on
// every change), or, for a single host, a file with one address per line
// (hold_file). ldap_tablemap polls it; a held address makes the tables
// named in tablemap_hold_tables answer with a deferral (transport:
// "retry:4.2.0 ...", access: "DEFER_IF_PERMIT ...", others: a temporary
// failure), so Postfix keeps the mail queued until the hold is lifted.
// Every change of generation also empties the in-process lookup caches:
// that is how "mailgrid" purges the answers the frontends cached for a
// user whose maildrop it just changed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "mail/address.hpp"
#include "util/result.hpp"

namespace mailgrid {

inline constexpr const char* kHoldReason = "4.2.0 mailbox is being moved to another server";

class HoldList {
public:
    bool empty() const { return held_.empty(); }
    std::size_t size() const { return held_.size(); }
    std::uint64_t generation() const { return generation_; }
    // Does the list hold this lookup key (as Postfix sent it), or the key
    // without its +extension?
    bool holds(std::string_view key, std::string_view delimiters) const;
    // The new state; true if the generation changed.
    bool update(std::uint64_t generation, const std::vector<std::string>& addresses);

    // What a held key is answered with in a table of this style.
    static Lookup answer(LookupStyle style);
    // Lower case, surrounding space removed: the form stored and compared.
    static std::string normalize(std::string_view address);

private:
    std::unordered_set<std::string> held_;
    std::uint64_t generation_ = 0;
};

// The hold file: "# generation N" then one address per line; blank lines
// and other comments are ignored.
struct HoldFile {
    std::uint64_t generation = 0;
    std::vector<std::string> addresses;
};
HoldFile parse_hold_file(std::string_view text);
std::string format_hold_file(const HoldFile& f);

}  // namespace mailgrid
