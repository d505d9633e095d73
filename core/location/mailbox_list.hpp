// mailbox_list - the Cyrus Murder mailbox list in memory: which server and
// partition holds every mailbox, in Cyrus's order, with an index per server.
//
// A Mailbox is what MUPDATE carries for one name: active (MAILBOX) or only
// reserved (RESERVE), its location "server!partition" and its ACL in Cyrus's
// internal form ("alice\tlrswipkxtecdan\tbob\tlrs\t"). The list iterates in
// the order Cyrus's mailboxes.db has ('.' sorting as 0x1F), which LIST and
// UPDATE must keep; a backend's own mailboxes ("LIST server!") are found
// through the per-server index without looking at anyone else's. Iteration
// is by key, so a long dump can stop, let other work run, and resume after
// the last key it sent even if the list changed meanwhile.
//
// Also here: the store record encoding, the checks applied to names and
// locations from the network, and how an INBOX name maps to its user for
// the published user -> backend map.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace mailgrid::location {

// Cyrus's MAX_MAILBOX_NAME is 490, under LMDB's key limit of 511; ACLs of a
// shared folder can be long.
inline constexpr std::size_t kMaxName = 511;  // LMDB's key limit
inline constexpr std::size_t kMaxLocation = 512;
inline constexpr std::size_t kMaxAcl = 32768;

struct Mailbox {
    bool active = true;  // MAILBOX; false: RESERVE
    std::string location;
    std::string acl;
    bool operator==(const Mailbox&) const = default;
};

// "mail1:2143" of "mail1:2143!default"; the whole location if it has no '!'
// (mupdate_config: replicated sends only the partition).
std::string_view location_server(std::string_view location);

// The user whose INBOX this mailbox is: "alice" for user.alice,
// "alice@example.com" for example.com!user.alice, "john.doe" for
// user.john^doe (Cyrus's escape of a dot in a user name). nullopt for every
// other mailbox (folders, shared mailboxes, DELETED.*).
std::optional<std::string> inbox_user(std::string_view name);
// The INBOX name of a user: the inverse of inbox_user.
std::string user_inbox(std::string_view user);

// What may come from the network: names and locations without control
// bytes (0x1F would collide with the sort key), a location with at most
// one '!', ACLs without CR, LF or NUL.
bool valid_name(std::string_view name);
bool valid_location(std::string_view location);
bool valid_acl(std::string_view acl);

// Store records: 'A' or 'R', the location length as a decimal and ':',
// the location, then the ACL.
std::string encode(const Mailbox& m);
std::optional<Mailbox> decode(std::string_view record);

class MailboxList {
public:
    MailboxList() = default;
    MailboxList(const MailboxList&) = delete;
    MailboxList& operator=(const MailboxList&) = delete;
    MailboxList(MailboxList&&) = default;
    MailboxList& operator=(MailboxList&&) = default;

    const Mailbox* find(std::string_view name) const;
    // Sets name to m; returns what was there before.
    std::optional<Mailbox> set(std::string_view name, Mailbox m);
    std::optional<Mailbox> erase(std::string_view name);
    void clear();

    std::size_t size() const { return by_key_.size(); }
    std::size_t active() const { return active_; }
    std::size_t count_on_server(std::string_view server) const;
    // Every server with its number of mailboxes, by name.
    std::vector<std::pair<std::string, std::size_t>> servers() const;

    // Visits up to `limit` mailboxes after sort key `after` ("" = from the
    // start) in Cyrus order: f(name, mailbox). With a location prefix only
    // mailboxes whose location starts with it (through the server index
    // when the prefix names a server, "server!..."); with servers, only
    // mailboxes on one of them. Leaves `after` at the last key visited;
    // returns false once the end was reached.
    template <class F>
    bool visit(std::string& after, std::string_view location_prefix, const std::set<std::string>* servers,
               std::size_t limit, F&& f) const;

private:
    using Map = std::map<std::string, Mailbox, std::less<>>;
    void index(const std::string& key, std::string_view server);
    void unindex(std::string_view key, std::string_view server);

    Map by_key_;
    // Keys of each server's mailboxes; views into by_key_'s keys, which
    // stay put while the entry exists.
    std::unordered_map<std::string, std::set<std::string_view>> by_server_;
    std::size_t active_ = 0;
};

std::string name_of_key(std::string_view key);

template <class F>
bool MailboxList::visit(std::string& after, std::string_view location_prefix, const std::set<std::string>* servers,
                        std::size_t limit, F&& f) const {
    auto wanted = [&](const Mailbox& m) {
        if (location_prefix.size() > m.location.size() ||
            std::string_view(m.location).substr(0, location_prefix.size()) != location_prefix)
            return false;
        return !servers || servers->count(std::string(location_server(m.location))) > 0;
    };
    std::size_t visited = 0;
    auto bang = location_prefix.find('!');
    if (bang != std::string_view::npos) {
        auto it = by_server_.find(std::string(location_prefix.substr(0, bang)));
        if (it == by_server_.end()) return false;
        const auto& keys = it->second;
        for (auto k = after.empty() ? keys.begin() : keys.upper_bound(std::string_view(after)); k != keys.end(); ++k) {
            if (visited == limit) return true;
            const Mailbox& m = by_key_.find(*k)->second;
            after.assign(*k);
            ++visited;
            if (wanted(m)) f(name_of_key(*k), m);
        }
        return false;
    }
    for (auto e = after.empty() ? by_key_.begin() : by_key_.upper_bound(after); e != by_key_.end(); ++e) {
        if (visited == limit) return true;
        after = e->first;
        ++visited;
        if (wanted(e->second)) f(name_of_key(e->first), e->second);
    }
    return false;
}

}  // namespace mailgrid::location
