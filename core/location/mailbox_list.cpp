// mailbox_list - the mailbox list in memory (see mailbox_list.hpp).
#include "location/mailbox_list.hpp"

#include <algorithm>

#include "proto/mupdate.hpp"

namespace mailgrid::location {

namespace {

bool has_control(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

}  // namespace

std::string_view location_server(std::string_view location) {
    auto bang = location.find('!');
    return bang == std::string_view::npos ? location : location.substr(0, bang);
}

std::optional<std::string> inbox_user(std::string_view name) {
    std::string_view domain;
    auto bang = name.find('!');
    if (bang != std::string_view::npos) {
        domain = name.substr(0, bang);
        name.remove_prefix(bang + 1);
        if (domain.empty()) return std::nullopt;
    }
    constexpr std::string_view prefix = "user.";
    if (name.size() <= prefix.size() || name.substr(0, prefix.size()) != prefix) return std::nullopt;
    std::string_view local = name.substr(prefix.size());
    if (local.find('.') != std::string_view::npos) return std::nullopt;
    std::string user(local);
    std::replace(user.begin(), user.end(), '^', '.');
    if (!domain.empty()) {
        user += '@';
        user.append(domain);
    }
    return user;
}

std::string user_inbox(std::string_view user) {
    std::string_view local = user, domain;
    auto at = user.rfind('@');
    if (at != std::string_view::npos) {
        local = user.substr(0, at);
        domain = user.substr(at + 1);
    }
    std::string name;
    if (!domain.empty()) {
        name.append(domain);
        name += '!';
    }
    name += "user.";
    std::string l(local);
    std::replace(l.begin(), l.end(), '.', '^');
    name += l;
    return name;
}

bool valid_name(std::string_view name) {
    return !name.empty() && name.size() <= kMaxName && !has_control(name);
}

bool valid_location(std::string_view location) {
    if (location.size() > kMaxLocation || has_control(location)) return false;
    auto bang = location.find('!');
    return bang == std::string_view::npos || location.find('!', bang + 1) == std::string_view::npos;
}

bool valid_acl(std::string_view acl) {
    return acl.size() <= kMaxAcl && acl.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

std::string encode(const Mailbox& m) {
    std::string out;
    out.reserve(m.location.size() + m.acl.size() + 8);
    out += m.active ? 'A' : 'R';
    out += std::to_string(m.location.size());
    out += ':';
    out += m.location;
    out += m.acl;
    return out;
}

std::optional<Mailbox> decode(std::string_view record) {
    if (record.empty() || (record[0] != 'A' && record[0] != 'R')) return std::nullopt;
    Mailbox m;
    m.active = record[0] == 'A';
    std::size_t i = 1, len = 0, digits = 0;
    while (i < record.size() && record[i] >= '0' && record[i] <= '9' && digits < 7) {
        len = len * 10 + static_cast<std::size_t>(record[i] - '0');
        ++i;
        ++digits;
    }
    if (digits == 0 || i >= record.size() || record[i] != ':') return std::nullopt;
    ++i;
    if (record.size() - i < len) return std::nullopt;
    m.location.assign(record.substr(i, len));
    m.acl.assign(record.substr(i + len));
    return m;
}

std::string name_of_key(std::string_view key) { return mupdate::name_from_sort_key(key); }

const Mailbox* MailboxList::find(std::string_view name) const {
    auto it = by_key_.find(mupdate::sort_key(name));
    return it == by_key_.end() ? nullptr : &it->second;
}

void MailboxList::index(const std::string& key, std::string_view server) {
    by_server_[std::string(server)].insert(std::string_view(key));
}

void MailboxList::unindex(std::string_view key, std::string_view server) {
    auto it = by_server_.find(std::string(server));
    if (it == by_server_.end()) return;
    it->second.erase(key);
    if (it->second.empty()) by_server_.erase(it);
}

std::optional<Mailbox> MailboxList::set(std::string_view name, Mailbox m) {
    std::string key = mupdate::sort_key(name);
    auto it = by_key_.find(key);
    if (it == by_key_.end()) {
        if (m.active) ++active_;
        auto [pos, inserted] = by_key_.emplace(std::move(key), std::move(m));
        (void)inserted;
        index(pos->first, location_server(pos->second.location));
        return std::nullopt;
    }
    Mailbox old = std::move(it->second);
    if (old.active) --active_;
    if (m.active) ++active_;
    auto old_server = location_server(old.location);
    auto new_server = location_server(m.location);
    if (old_server != new_server) {
        unindex(it->first, old_server);
        it->second = std::move(m);
        index(it->first, location_server(it->second.location));
    } else {
        it->second = std::move(m);
    }
    return old;
}

std::optional<Mailbox> MailboxList::erase(std::string_view name) {
    auto it = by_key_.find(mupdate::sort_key(name));
    if (it == by_key_.end()) return std::nullopt;
    Mailbox old = std::move(it->second);
    if (old.active) --active_;
    unindex(it->first, location_server(old.location));
    by_key_.erase(it);
    return old;
}

void MailboxList::clear() {
    by_server_.clear();
    by_key_.clear();
    active_ = 0;
}

std::size_t MailboxList::count_on_server(std::string_view server) const {
    auto it = by_server_.find(std::string(server));
    return it == by_server_.end() ? 0 : it->second.size();
}

std::vector<std::pair<std::string, std::size_t>> MailboxList::servers() const {
    std::vector<std::pair<std::string, std::size_t>> out;
    for (const auto& [server, keys] : by_server_) out.emplace_back(server, keys.size());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace mailgrid::location
