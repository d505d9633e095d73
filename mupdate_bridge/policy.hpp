// policy - what mupdate_bridge does with each write to the mailbox list:
// apply it, acknowledge it without a change, or refuse it and say why.
//
// Cyrus's own master lets any authenticated admin overwrite anything. Here
// a mailbox belongs to the server in its location: another server may not
// take it over (RESERVE or ACTIVATE it elsewhere), only its holder moves it
// (XFER: the source backend ACTIVATEs the new location). Identities bound
// to servers in mupdate_writers ("mail01=mail01.example.com") may only
// write for those servers; an unbound identity (one shared "mupdate" user,
// as most murders have) is trusted for the server its locations name.
//
// The push guard stops a backend that lost its own mailbox list from
// emptying the Murder: `ctl_mboxlist -m` LISTs its server's mailboxes and
// DELETEs every one it does not have. Once a session has deleted more than
// the allowed share of what it listed, the next DELETE is refused and the
// ones already applied are put back.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "location/mailbox_list.hpp"

namespace mailgrid::bridge {

enum class Op { Activate, Reserve, Deactivate, Delete };
const char* op_name(Op op);

struct Writer {
    std::string identity;
    bool may_write = false;
    std::vector<std::string> servers;  // empty: any server
    bool bound() const { return !servers.empty(); }
    bool holds(std::string_view server) const;
};

struct Decision {
    enum class Kind {
        Apply,      // write `value` (nullopt: delete), then OK
        Unchanged,  // OK without writing (already so)
        Refuse,     // NO `reply`; `why` goes to the log
    } kind = Kind::Unchanged;
    std::optional<location::Mailbox> value;
    std::string reply;
    std::string why;
    bool conflict = false;  // refused because another server holds the mailbox
};

// location and acl as the command gave them (acl only for ACTIVATE);
// current is what the list holds now.
Decision decide(Op op, std::string_view name, std::string_view location, std::string_view acl,
                const location::Mailbox* current, const Writer& writer);

// Parses mupdate_writers / mupdate_readers items: "identity" or
// "identity=server". Returns the writers by identity; throws
// std::invalid_argument on an empty identity or server.
std::map<std::string, Writer> parse_identities(const std::vector<std::string>& writers,
                                               const std::vector<std::string>& readers);
// The entry for a SASL identity: exact, or its part before '@' when the
// configured name has no realm. nullptr: not allowed at all.
const Writer* find_identity(const std::map<std::string, Writer>& ids, const std::string& identity);

class PushGuard {
public:
    PushGuard(double max_share, std::size_t floor) : max_share_(max_share), floor_(floor) {}
    // A LIST "server!..." in this session: remember how many it returned.
    void listed(std::string_view server, std::size_t count);
    // May this session delete one more of `server`'s mailboxes? false once
    // it would pass the share (and from then on for that server).
    bool allow_delete(std::string_view server);
    // Record an applied delete (for putting it back).
    void deleted(std::string name, location::Mailbox old);
    // The deletes to undo once a push was refused; empties the record.
    std::vector<std::pair<std::string, location::Mailbox>> take_deleted(std::string_view server);
    std::size_t limit(std::string_view server) const;
    std::size_t listed_count(std::string_view server) const;

private:
    struct Server {
        std::size_t listed = 0;
        std::size_t deleted = 0;
        bool refused = false;
    };
    double max_share_;
    std::size_t floor_;
    std::map<std::string, Server, std::less<>> servers_;
    std::vector<std::pair<std::string, location::Mailbox>> applied_;
};

}  // namespace mailgrid::bridge
