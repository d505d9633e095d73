// publish - the user -> backend map as an LDIF file and a socketmap (see
// publish.hpp).
#include "publish.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bridge.hpp"
#include "directory/escape.hpp"
#include "directory/ldif.hpp"
#include "log/log.hpp"
#include "proto/socketmap.hpp"
#include "util/fd_io.hpp"
#include "util/strings.hpp"

namespace mailgrid::bridge {

Publisher::Publisher(asio::io_context& io, const Bridge& bridge, const SuiteConfig& config, MetricsRegistry* metrics)
    : io_(io), bridge_(bridge), wake_(io) {
    ldif_path_ = config.get("mupdate_publish_ldif");
    if (!ldif_path_.empty() && ldif_path_[0] != '/') config.fail("mupdate_publish_ldif", "needs an absolute path");
    base_ = config.get("mupdate_publish_ldif_base");
    interval_ = config.get_duration("mupdate_publish_interval");
    socketmap_ = config.get("mupdate_socketmap");
    std::string err;
    if (!socketmap_.empty() && !ListenSpec::parse(socketmap_, &err)) config.fail("mupdate_socketmap", err);
    static MetricsRegistry unused;
    MetricsRegistry& r = metrics ? *metrics : unused;
    writes_ = &r.counter("mupdate_publish_writes_total", "times the LDIF file was written");
    lookups_ = &r.counter("mupdate_socketmap_lookups_total", "socketmap lookups answered");
    users_gauge_ = &r.gauge("mupdate_users", "users with an active INBOX (the published map)");
}

void Publisher::listen(Server& server) {
    if (socketmap_.empty()) return;
    ServiceOptions opt;
    opt.name = "socketmap";
    opt.max_connections = 1000;
    opt.idle_timeout = std::chrono::seconds(300);
    opt.max_buffer = socketmap::kMaxRequest + 64;
    server.listen(*ListenSpec::parse(socketmap_), opt, [this](Connection& c) { return serve_socketmap(c); });
}

void Publisher::start() {
    users_.clear();
    std::string after;
    while (bridge_.list().visit(after, "", nullptr, 1u << 30, [&](const std::string& name, const location::Mailbox& m) {
        if (!m.active) return;
        if (auto u = location::inbox_user(name)) users_[*u] = std::string(location::location_server(m.location));
    })) {
    }
    users_gauge_->set(static_cast<double>(users_.size()));
    if (!ldif_path_.empty()) {
        dirty_ = true;
        running_ = true;
        asio::co_spawn(io_, writer(), asio::detached);
    }
}

void Publisher::stop() {
    stopped_ = true;
    wake_.cancel();
}

void Publisher::changed(const location::Change& c) {
    auto u = location::user_change(c);
    if (!u) return;
    if (u->server) {
        auto& s = users_[u->user];
        if (s == *u->server) return;
        s = *u->server;
    } else if (users_.erase(u->user) == 0) {
        return;
    }
    users_gauge_->set(static_cast<double>(users_.size()));
    if (!running_) return;
    dirty_ = true;
    wake_.cancel();
}

std::string Publisher::ldif(const std::map<std::string, std::string>& users, const std::string& base) {
    std::string out = "# The user -> backend map of mupdate_bridge (Cyrus Murder), rewritten on every change.\n\n";
    for (const auto& [user, server] : users) {
        Entry e;
        e.dn = "uid=" + dn_escape(user) + "," + base;
        e.attributes = {{"objectClass", {"account", "mailSuiteRecipient"}},
                        {"uid", {user}},
                        {"host", {server}},
                        {"mailacceptinggeneralid", {user}},
                        {"maildrop", {user.substr(0, user.find('@')) + "@" + server}}};
        out += to_ldif(e);
        out += '\n';
    }
    return out;
}

awaitable<void> Publisher::writer() {
    while (!stopped_) {
        if (!dirty_) {
            wake_.expires_at(std::chrono::steady_clock::time_point::max());
            asio::error_code ec;
            co_await wake_.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        dirty_ = false;
        auto text = ldif(users_, base_);
        auto path = ldif_path_;
        auto job = [path, t = std::move(text)]() -> std::string {
            std::string tmp = path + ".tmp";
            int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0) return "open " + tmp + ": " + std::strerror(errno);
            if (int e = 0; !write_all(fd, t, &e)) {
                ::close(fd);
                return "write " + tmp + ": " + std::strerror(e);
            }
            if (::fsync(fd) != 0 || ::close(fd) != 0) return "fsync " + tmp + ": " + std::strerror(errno);
            if (::rename(tmp.c_str(), path.c_str()) != 0) return "rename " + tmp + ": " + std::strerror(errno);
            return {};
        };
        auto err = co_await run_blocking(std::move(job));
        if (!err.empty()) log::warning("mupdate_publish_ldif: %s", err.c_str());
        else writes_->inc();
        // At most one write per interval; changes meanwhile wait for it.
        co_await sleep_for(interval_);
    }
}

awaitable<void> Publisher::serve_socketmap(Connection& c) {
    for (;;) {
        std::size_t used = 0;
        auto req = socketmap::parse_request(c.buffer(), used);
        if (!req) {
            if (!co_await c.read_more()) co_return;
            continue;
        }
        c.consume(used);
        if (!req->ok) {
            if (!req->reply.empty()) co_await c.write(req->reply);
            if (req->close) co_return;
            continue;
        }
        lookups_->inc();
        Lookup r;
        if (req->name != "mailbox") {
            r = Lookup::perm_fail("no such map: use \"mailbox\"");
        } else {
            auto it = users_.find(req->key);
            if (it == users_.end()) it = users_.find(to_lower(req->key));
            r = it == users_.end() ? Lookup::not_found() : Lookup::found(it->second);
        }
        if (!co_await c.write(socketmap::format_reply(r))) co_return;
    }
}

}  // namespace mailgrid::bridge
