// sync_messages - RFC 4533's Sync State and Sync Info values (see
// sync_messages.hpp). BER as LDAP uses it (RFC 4511 5.1): one-byte tags,
// definite lengths; anything else is refused.
#include "directory/sync_messages.hpp"

#include <cstdint>

namespace mailgrid::ldapsync {

namespace {

constexpr unsigned char kBoolean = 0x01, kOctetString = 0x04, kEnumerated = 0x0a, kSequence = 0x30, kSet = 0x31;
constexpr unsigned char kNewCookie = 0x80, kRefreshDelete = 0xa1, kRefreshPresent = 0xa2, kIdSet = 0xa3;

// Reads tag-length-value elements off the front of a buffer.
class Reader {
public:
    explicit Reader(std::string_view in) : rest_(in) {}
    bool empty() const { return rest_.empty(); }
    // The next element's tag, without taking it; 0 at the end.
    unsigned char peek() const { return rest_.empty() ? 0 : static_cast<unsigned char>(rest_[0]); }

    // Takes the next element if its tag is `tag`; its contents in *value.
    bool take(unsigned char tag, std::string_view* value) {
        if (peek() != tag || rest_.size() < 2) return false;
        std::size_t pos = 1;
        auto first = static_cast<unsigned char>(rest_[pos++]);
        std::size_t len = first;
        if (first & 0x80) {
            std::size_t octets = first & 0x7f;
            // Indefinite length (0x80) is not BER for LDAP; 4 octets is 4 GB.
            if (octets == 0 || octets > 4 || rest_.size() - pos < octets) return false;
            len = 0;
            for (std::size_t i = 0; i < octets; ++i) len = (len << 8) | static_cast<unsigned char>(rest_[pos++]);
        }
        if (rest_.size() - pos < len) return false;
        *value = rest_.substr(pos, len);
        rest_.remove_prefix(pos + len);
        return true;
    }

private:
    std::string_view rest_;
};

bool take_boolean(Reader& r, bool* out) {
    std::string_view v;
    if (!r.take(kBoolean, &v) || v.size() != 1) return false;
    *out = v[0] != 0;
    return true;
}

// The optional cookie, then a BOOLEAN with a default: refreshDelete's and
// refreshPresent's refreshDone, syncIdSet's refreshDeletes.
bool take_cookie_and_flag(Reader& r, bool* flag) {
    std::string_view cookie;
    if (r.peek() == kOctetString && !r.take(kOctetString, &cookie)) return false;
    if (r.peek() == kBoolean && !take_boolean(r, flag)) return false;
    return true;
}

}  // namespace

std::optional<StateControl> parse_state_control(std::string_view ber) {
    Reader outer(ber);
    std::string_view seq;
    if (!outer.take(kSequence, &seq)) return std::nullopt;
    Reader r(seq);
    std::string_view state, uuid;
    if (!r.take(kEnumerated, &state) || state.size() != 1 || !r.take(kOctetString, &uuid) || uuid.empty())
        return std::nullopt;
    auto s = static_cast<unsigned char>(state[0]);
    if (s > 3) return std::nullopt;
    std::string_view cookie;
    if (!r.empty() && !r.take(kOctetString, &cookie)) return std::nullopt;
    return StateControl{static_cast<State>(s), std::string(uuid)};
}

std::optional<SyncInfo> parse_sync_info(std::string_view ber) {
    Reader outer(ber);
    SyncInfo info;
    std::string_view body;
    switch (outer.peek()) {
        case kNewCookie:
            if (!outer.take(kNewCookie, &body)) return std::nullopt;
            info.kind = SyncInfo::Kind::NewCookie;
            return info;
        case kRefreshDelete:
        case kRefreshPresent: {
            info.kind = outer.peek() == kRefreshDelete ? SyncInfo::Kind::RefreshDelete : SyncInfo::Kind::RefreshPresent;
            if (!outer.take(outer.peek(), &body)) return std::nullopt;
            Reader r(body);
            if (!take_cookie_and_flag(r, &info.refresh_done) || !r.empty()) return std::nullopt;
            return info;
        }
        case kIdSet: {
            info.kind = SyncInfo::Kind::IdSet;
            if (!outer.take(kIdSet, &body)) return std::nullopt;
            Reader r(body);
            std::string_view set;
            if (!take_cookie_and_flag(r, &info.refresh_deletes) || !r.take(kSet, &set) || !r.empty())
                return std::nullopt;
            Reader uuids(set);
            while (!uuids.empty()) {
                std::string_view uuid;
                if (!uuids.take(kOctetString, &uuid)) return std::nullopt;
                info.uuids.emplace_back(uuid);
            }
            return info;
        }
        default:
            return std::nullopt;
    }
}

}  // namespace mailgrid::ldapsync
