// fuzz_ldap_sync - what an LDAP server sends a replica: the Sync State
// control and the Sync Info message of RFC 4533
// (core/directory/sync_messages).
//
// Invariants:
//  * a state control decoded has a known state and a non-empty entryUUID
//    that occurs in the input;
//  * a sync info decoded lists only entryUUIDs that occur in the input, and
//    only for a syncIdSet;
//  * re-encoding what was decoded (minimal BER) decodes to the same value.
#include <string>

#include "directory/sync_messages.hpp"
#include "fuzz_check.hpp"

using namespace mailgrid;

namespace {

std::string tlv(unsigned char tag, std::string_view value) {
    std::string out(1, static_cast<char>(tag));
    if (value.size() < 0x80) {
        out += static_cast<char>(value.size());
    } else {
        std::string len;
        for (std::size_t n = value.size(); n; n >>= 8) len.insert(len.begin(), static_cast<char>(n & 0xff));
        out += static_cast<char>(0x80 | len.size());
        out += len;
    }
    out += value;
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);

    if (auto s = ldapsync::parse_state_control(input)) {
        FUZZ_CHECK(!s->uuid.empty() && input.find(s->uuid) != std::string_view::npos);
        auto state = static_cast<int>(s->state);
        FUZZ_CHECK(state >= 0 && state <= 3);
        std::string again = tlv(0x30, tlv(0x0a, std::string(1, static_cast<char>(state))) + tlv(0x04, s->uuid));
        auto s2 = ldapsync::parse_state_control(again);
        FUZZ_CHECK(s2 && s2->state == s->state && s2->uuid == s->uuid);
    }

    if (auto i = ldapsync::parse_sync_info(input)) {
        using Kind = ldapsync::SyncInfo::Kind;
        if (i->kind != Kind::IdSet) FUZZ_CHECK(i->uuids.empty() && !i->refresh_deletes);
        std::string uuids;
        for (const auto& u : i->uuids) {
            FUZZ_CHECK(input.find(u) != std::string_view::npos);
            uuids += tlv(0x04, u);
        }
        std::string again;
        switch (i->kind) {
            case Kind::NewCookie: again = tlv(0x80, "c"); break;
            case Kind::RefreshDelete:
            case Kind::RefreshPresent:
                again = tlv(i->kind == Kind::RefreshDelete ? 0xa1 : 0xa2,
                            tlv(0x01, std::string(1, i->refresh_done ? '\xff' : '\0')));
                break;
            case Kind::IdSet:
                again = tlv(0xa3, tlv(0x01, std::string(1, i->refresh_deletes ? '\xff' : '\0')) + tlv(0x31, uuids));
                break;
        }
        auto i2 = ldapsync::parse_sync_info(again);
        FUZZ_CHECK(i2 && i2->kind == i->kind && i2->refresh_done == i->refresh_done &&
                   i2->refresh_deletes == i->refresh_deletes && i2->uuids == i->uuids);
    }
    return 0;
}
