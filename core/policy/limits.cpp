// limits - sending limits and their counters (see limits.hpp).
#include "policy/limits.hpp"

#include "util/strings.hpp"

namespace mailgrid::limits {

namespace {

std::optional<Window> parse_window(std::string_view s) {
    auto w = to_lower(s);
    if (w == "minute" || w == "m" || w == "min") return Window::Minute;
    if (w == "hour" || w == "h") return Window::Hour;
    if (w == "day" || w == "d") return Window::Day;
    return std::nullopt;
}

std::optional<std::uint64_t> parse_count(std::string_view s) {
    if (s.empty() || s.size() > 18) return std::nullopt;
    std::uint64_t n = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return n;
}

bool fail(std::string* why, std::string text) {
    if (why) *why = std::move(text);
    return false;
}

// One "count/window" item into rates.
bool add_rate(Rates& rates, std::string_view item, std::string* why) {
    auto slash = item.find('/');
    if (slash == std::string_view::npos)
        return fail(why, "\"" + printable(item, 60) + "\": expected count/window, e.g. 100/minute");
    auto count = parse_count(item.substr(0, slash));
    if (!count) return fail(why, "\"" + printable(item, 60) + "\": the count is not a number");
    auto window = parse_window(item.substr(slash + 1));
    if (!window) return fail(why, "\"" + printable(item, 60) + "\": the window is not minute, hour or day");
    auto& slot = rates[static_cast<std::size_t>(*window)];
    if (slot) return fail(why, "\"" + printable(item, 60) + "\": a limit per " + window_name(*window) + " is given twice");
    slot = *count;
    return true;
}

}  // namespace

std::int64_t window_seconds(Window w) {
    switch (w) {
        case Window::Minute: return 60;
        case Window::Hour: return 3600;
        case Window::Day: return 86400;
    }
    return 60;
}

const char* window_name(Window w) {
    switch (w) {
        case Window::Minute: return "minute";
        case Window::Hour: return "hour";
        case Window::Day: return "day";
    }
    return "?";
}

const char* kind_name(Kind k) { return k == Kind::Messages ? "messages" : "recipients"; }

std::optional<Rates> parse_rates(std::string_view text, std::string* why) {
    Rates rates{};
    for (const auto& item : split_list(text))
        if (!add_rate(rates, item, why)) return std::nullopt;
    return rates;
}

bool Limits::none() const {
    for (auto v : messages)
        if (v) return false;
    for (auto v : recipients)
        if (v) return false;
    return true;
}

std::optional<Override> parse_override(const std::vector<std::string>& values, std::string* why) {
    Override o;
    for (const auto& value : values) {
        for (const auto& item : split_list(value)) {
            if (iequals(item, "unlimited")) {
                o.unlimited = true;
                continue;
            }
            auto colon = item.find(':');
            if (colon == std::string::npos) {
                fail(why, "\"" + printable(item, 60) + "\": expected messages:count/window or recipients:count/window");
                return std::nullopt;
            }
            auto kind = to_lower(std::string_view(item).substr(0, colon));
            Rates* rates = kind == "messages" ? &o.messages : kind == "recipients" ? &o.recipients : nullptr;
            if (!rates) {
                fail(why, "\"" + printable(item, 60) + "\": the kind is not messages or recipients");
                return std::nullopt;
            }
            if (!add_rate(*rates, std::string_view(item).substr(colon + 1), why)) return std::nullopt;
        }
    }
    return o;
}

Limits apply(const Limits& defaults, const Override& o) {
    if (o.unlimited) return Limits{};
    Limits l = defaults;
    for (std::size_t i = 0; i < kWindows.size(); ++i) {
        if (o.messages[i]) l.messages[i] = *o.messages[i];
        if (o.recipients[i]) l.recipients[i] = *o.recipients[i];
    }
    return l;
}

std::string describe(Kind k, Window w, std::uint64_t limit) {
    return std::to_string(limit) + " " + (limit == 1 ? (k == Kind::Messages ? "message" : "recipient") : kind_name(k)) +
           " per " + window_name(w);
}

std::vector<Charge> charges(const Limits& l, std::string_view login, bool first_recipient, std::int64_t now_ms,
                            std::string_view prefix) {
    std::vector<Charge> out;
    std::int64_t now_s = now_ms / 1000;
    for (Kind kind : {Kind::Messages, Kind::Recipients}) {
        if (kind == Kind::Messages && !first_recipient) continue;
        for (Window w : kWindows) {
            std::uint64_t limit = l.of(kind, w);
            if (!limit) continue;
            Charge c{kind, w, limit, now_s / window_seconds(w), {}, 0};
            c.key.reserve(prefix.size() + login.size() + 32);
            c.key.append(prefix).append("limit:").append(kind == Kind::Messages ? "m:" : "r:");
            c.key.append(window_name(w)).append(":").append(std::to_string(c.index)).append(":").append(login);
            c.expires_ms = (c.index + 1) * window_seconds(w) * 1000 - now_ms + 1000;
            out.push_back(std::move(c));
        }
    }
    return out;
}

int LocalCounters::check_and_add(const std::vector<Charge>& list, std::int64_t now_ms) {
    prune(now_ms);
    for (std::size_t i = 0; i < list.size(); ++i) {
        auto it = counters_.find(list[i].key);
        std::uint64_t have = it == counters_.end() || it->second.expires_at_ms <= now_ms ? 0 : it->second.count;
        if (have + 1 > list[i].limit) return static_cast<int>(i);
    }
    for (const auto& c : list) {
        auto& slot = counters_[c.key];
        if (slot.expires_at_ms <= now_ms) slot = Counter{0, now_ms + c.expires_ms};
        ++slot.count;
    }
    return -1;
}

void LocalCounters::prune(std::int64_t now_ms) {
    if (now_ms < next_prune_ms_) return;
    next_prune_ms_ = now_ms + 10'000;
    for (auto it = counters_.begin(); it != counters_.end();) {
        if (it->second.expires_at_ms <= now_ms) it = counters_.erase(it);
        else ++it;
    }
}

}  // namespace mailgrid::limits
