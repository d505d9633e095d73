// limits - sending limits of authenticated users, pure: how they are
// written (mailgrid.cf defaults, a directory attribute per user), the
// fixed windows they are counted in, and the in-process counters used
// when no Redis is configured (or while it is down).
//
//   policy_message_limits   = 100/minute, 1000/hour, 5000/day
//   mailSendLimits: messages:500/hour, recipients:0/day      (0 = no limit)
//   mailSendLimits: unlimited
//
// A window is fixed and aligned to the epoch (minute n is [60n, 60n+60)),
// so every frontend counting in Redis agrees on which window a message
// falls in. Counting checks every window first and adds to all of them
// only when none would go over: a deferred message uses up nothing.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mailgrid::limits {

enum class Window { Minute, Hour, Day };
inline constexpr std::array<Window, 3> kWindows = {Window::Minute, Window::Hour, Window::Day};
std::int64_t window_seconds(Window w);
const char* window_name(Window w);  // "minute", "hour", "day"

enum class Kind { Messages, Recipients };
const char* kind_name(Kind k);  // "messages", "recipients"

// Limits per window; 0 = none, nullopt = not said (take the default).
using Rates = std::array<std::optional<std::uint64_t>, 3>;

// "100/minute, 1000/hour" (also "100/m", "1000/h", "5000/d"; commas or
// spaces between items). A window given twice, a count that is not a
// number or a window that is not one of the three: nullopt and *why.
std::optional<Rates> parse_rates(std::string_view text, std::string* why = nullptr);

struct Limits {
    std::array<std::uint64_t, 3> messages{};
    std::array<std::uint64_t, 3> recipients{};
    std::uint64_t of(Kind k, Window w) const {
        return (k == Kind::Messages ? messages : recipients)[static_cast<std::size_t>(w)];
    }
    bool none() const;
    bool operator==(const Limits&) const = default;
};

// A user's own limits from the directory: the values of the limit
// attribute, each "kind:count/window" items ("messages:500/hour,
// recipients:2000/day") or "unlimited". Items given override the
// defaults; others keep them.
struct Override {
    Rates messages{}, recipients{};
    bool unlimited = false;
};
std::optional<Override> parse_override(const std::vector<std::string>& values, std::string* why = nullptr);
Limits apply(const Limits& defaults, const Override& o);

// "100 messages per minute" for replies and logs.
std::string describe(Kind k, Window w, std::uint64_t limit);

// One counter to add to: which limit, its window number, and the key
// that names it (in Redis and in process).
struct Charge {
    Kind kind;
    Window window;
    std::uint64_t limit;       // > 0
    std::int64_t index;        // window number: epoch seconds / window length
    std::string key;           // <prefix>limit:<kind>:<window>:<index>:<login>
    std::int64_t expires_ms;   // milliseconds after now until the window ends, plus a second
};

// The counters one recipient adds to: every recipient limit, and the
// message limits for the first recipient of a message. now_ms: epoch ms.
std::vector<Charge> charges(const Limits& l, std::string_view login, bool first_recipient, std::int64_t now_ms,
                            std::string_view prefix);

// Counters in process, with the same check-then-add rule as the Redis
// script. Not thread-safe: the event loop owns it.
class LocalCounters {
public:
    // Index of the first charge that would go over its limit (nothing is
    // added then), or -1 after adding one to every counter.
    int check_and_add(const std::vector<Charge>& charges, std::int64_t now_ms);
    std::size_t size() const { return counters_.size(); }

private:
    struct Counter {
        std::uint64_t count = 0;
        std::int64_t expires_at_ms = 0;
    };
    void prune(std::int64_t now_ms);
    std::unordered_map<std::string, Counter> counters_;
    std::int64_t next_prune_ms_ = 0;
};

}  // namespace mailgrid::limits
