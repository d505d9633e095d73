// policy - the write rules of mupdate_bridge (see policy.hpp).
#include "policy.hpp"

#include <cmath>
#include <stdexcept>

namespace mailgrid::bridge {

using location::location_server;
using location::Mailbox;

const char* op_name(Op op) {
    switch (op) {
        case Op::Activate: return "ACTIVATE";
        case Op::Reserve: return "RESERVE";
        case Op::Deactivate: return "DEACTIVATE";
        case Op::Delete: return "DELETE";
    }
    return "?";
}

bool Writer::holds(std::string_view server) const {
    if (servers.empty()) return true;
    for (const auto& s : servers)
        if (s == server) return true;
    return false;
}

namespace {

Decision refuse(std::string reply, std::string why, bool conflict = false) {
    Decision d;
    d.kind = Decision::Kind::Refuse;
    d.reply = std::move(reply);
    d.why = std::move(why);
    d.conflict = conflict;
    return d;
}

Decision apply(std::optional<Mailbox> value) {
    Decision d;
    d.kind = Decision::Kind::Apply;
    d.value = std::move(value);
    return d;
}

// May `writer` put a mailbox held by `current` on `server`? Its own
// server, or the holder moving it away.
bool may_place(const Writer& w, std::string_view server, const Mailbox* current) {
    if (current && location_server(current->location) != server) return w.bound() && w.holds(location_server(current->location));
    return w.holds(server);
}

std::string held_by(const Mailbox& m) { return "mailbox is held by " + std::string(location_server(m.location)); }

}  // namespace

Decision decide(Op op, std::string_view name, std::string_view location, std::string_view acl, const Mailbox* current,
                const Writer& writer) {
    std::string who = writer.identity;
    std::string_view server = location_server(location);
    switch (op) {
        case Op::Activate: {
            if (!may_place(writer, server, current)) {
                if (current && location_server(current->location) != server)
                    return refuse(held_by(*current),
                                  who + " tried to ACTIVATE " + std::string(name) + " on " + std::string(server) +
                                      ", held by " + std::string(location_server(current->location)),
                                  true);
                return refuse("not allowed to write for " + std::string(server),
                              who + " may not write for server " + std::string(server));
            }
            Mailbox m{true, std::string(location), std::string(acl)};
            if (current && *current == m) return Decision{};
            return apply(std::move(m));
        }
        case Op::Reserve: {
            if (current) {
                // Cyrus's "standard" murder: a name taken elsewhere is
                // refused, the same reservation again is fine.
                if (current->location == location) return Decision{};
                if (location_server(current->location) != server)
                    return refuse("mailbox already exists",
                                  who + " tried to RESERVE " + std::string(name) + " on " + std::string(server) +
                                      ", held by " + std::string(location_server(current->location)),
                                  true);
                return refuse("mailbox already exists", {});
            }
            if (!writer.holds(server))
                return refuse("not allowed to write for " + std::string(server),
                              who + " may not write for server " + std::string(server));
            return apply(Mailbox{false, std::string(location), {}});
        }
        case Op::Deactivate: {
            if (!current || !current->active) return refuse("mailbox not currently active", {});
            if (!may_place(writer, server, current))
                return refuse(held_by(*current),
                              who + " tried to DEACTIVATE " + std::string(name) + " for " + std::string(server) +
                                  ", held by " + std::string(location_server(current->location)),
                              true);
            return apply(Mailbox{false, std::string(location), {}});
        }
        case Op::Delete: {
            // Deleting what is not there is done already: Cyrus aborts a
            // local delete when this fails.
            if (!current) return Decision{};
            if (writer.bound() && !writer.holds(location_server(current->location)))
                return refuse(held_by(*current), who + " tried to DELETE " + std::string(name) + ", held by " +
                                                     std::string(location_server(current->location)),
                              true);
            return apply(std::nullopt);
        }
    }
    return Decision{};
}

std::map<std::string, Writer> parse_identities(const std::vector<std::string>& writers,
                                               const std::vector<std::string>& readers) {
    std::map<std::string, Writer> out;
    auto add = [&](const std::string& item, bool write) {
        auto eq = item.find('=');
        std::string id = item.substr(0, eq);
        if (id.empty()) throw std::invalid_argument("empty identity in \"" + item + "\"");
        Writer& w = out[id];
        w.identity = id;
        if (write) w.may_write = true;
        if (eq != std::string::npos) {
            std::string server = item.substr(eq + 1);
            if (server.empty()) throw std::invalid_argument("empty server in \"" + item + "\"");
            if (!write) throw std::invalid_argument("readers are not bound to servers: \"" + item + "\"");
            w.servers.push_back(server);
        }
    };
    for (const auto& w : writers) add(w, true);
    for (const auto& r : readers) add(r, false);
    return out;
}

const Writer* find_identity(const std::map<std::string, Writer>& ids, const std::string& identity) {
    auto it = ids.find(identity);
    if (it != ids.end()) return &it->second;
    auto at = identity.find('@');
    if (at == std::string::npos) return nullptr;
    it = ids.find(identity.substr(0, at));
    return it == ids.end() ? nullptr : &it->second;
}

void PushGuard::listed(std::string_view server, std::size_t count) {
    auto& s = servers_[std::string(server)];
    s.listed = std::max(s.listed, count);
}

std::size_t PushGuard::listed_count(std::string_view server) const {
    auto it = servers_.find(server);
    return it == servers_.end() ? 0 : it->second.listed;
}

std::size_t PushGuard::limit(std::string_view server) const {
    auto share = static_cast<std::size_t>(std::floor(max_share_ * static_cast<double>(listed_count(server))));
    return std::max(share, floor_);
}

bool PushGuard::allow_delete(std::string_view server) {
    auto it = servers_.find(server);
    // Deletes outside a push (a live IMAP DELETE) are one at a time.
    if (it == servers_.end()) return true;
    auto& s = it->second;
    if (s.refused) return false;
    if (s.deleted + 1 > limit(server)) {
        s.refused = true;
        return false;
    }
    ++s.deleted;
    return true;
}

void PushGuard::deleted(std::string name, location::Mailbox old) { applied_.emplace_back(std::move(name), std::move(old)); }

std::vector<std::pair<std::string, location::Mailbox>> PushGuard::take_deleted(std::string_view server) {
    std::vector<std::pair<std::string, location::Mailbox>> out, keep;
    for (auto& d : applied_) {
        if (location_server(d.second.location) == server) out.push_back(std::move(d));
        else keep.push_back(std::move(d));
    }
    applied_ = std::move(keep);
    return out;
}

}  // namespace mailgrid::bridge
