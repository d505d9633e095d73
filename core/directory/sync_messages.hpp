// sync_messages - the two BER values of LDAP Content Synchronization
// (RFC 4533) that a server sends a replica: the Sync State control on each
// entry and the Sync Info intermediate message. Decoded here, not with
// liblber's ber_scanf, so that the code reading what a server sends is
// pure and fuzzed like every other parser of the suite.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailgrid::ldapsync {

// syncStateValue ::= SEQUENCE { state ENUMERATED, entryUUID OCTET STRING,
//                               cookie OCTET STRING OPTIONAL }
enum class State { Present = 0, Add = 1, Modify = 2, Delete = 3 };
struct StateControl {
    State state = State::Present;
    std::string uuid;  // never empty
};
// nullopt: malformed, an unknown state or an empty entryUUID.
std::optional<StateControl> parse_state_control(std::string_view ber);

// syncInfoValue ::= CHOICE { newcookie [0], refreshDelete [1] SEQUENCE,
//                            refreshPresent [2] SEQUENCE, syncIdSet [3] SEQUENCE }
struct SyncInfo {
    enum class Kind { NewCookie, RefreshDelete, RefreshPresent, IdSet } kind = Kind::NewCookie;
    bool refresh_done = true;        // refreshDelete, refreshPresent (DEFAULT TRUE)
    bool refresh_deletes = false;    // syncIdSet (DEFAULT FALSE)
    std::vector<std::string> uuids;  // syncIdSet
};
// nullopt: malformed.
std::optional<SyncInfo> parse_sync_info(std::string_view ber);

}  // namespace mailgrid::ldapsync
