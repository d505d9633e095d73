#include "backends.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "util/strings.hpp"

namespace mailgrid {

using Clock = std::chrono::steady_clock;

int BackendPorts::for_protocol(const std::string& p) const {
    if (p == "imap") return imap;
    if (p == "pop3") return pop3;
    if (p == "smtp") return smtp;
    return 0;
}

BackendMap BackendMap::empty(BackendPorts defaults) {
    BackendMap m;
    m.defaults_ = defaults;
    return m;
}

BackendMap BackendMap::load(const std::string& path, BackendPorts defaults) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path + ": cannot open: " + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    return parse(ss.str(), path, defaults);
}

BackendMap BackendMap::parse(std::string_view text, const std::string& path, BackendPorts defaults) {
    BackendMap m;
    m.defaults_ = defaults;
    int lineno = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++lineno;
        auto hash = line.find('#');
        if (hash != std::string_view::npos) line = line.substr(0, hash);
        auto words = split_list(line);
        if (words.empty()) continue;
        auto where = path + ", line " + std::to_string(lineno) + ": ";
        if (words.size() < 2) throw ConfigError(where + "expected: name address [imap=PORT] [pop3=PORT] [smtp=PORT]");
        Backend b;
        b.name = to_lower(words[0]);
        b.address = words[1];
        asio::error_code ec;
        asio::ip::make_address(b.address, ec);
        if (ec) throw ConfigError(where + "not an IP address: " + b.address + " (nginx needs one)");
        b.ports = defaults;
        for (std::size_t i = 2; i < words.size(); ++i) {
            auto eq = words[i].find('=');
            auto port = eq == std::string::npos ? std::nullopt : parse_int(std::string_view(words[i]).substr(eq + 1));
            if (!port || *port <= 0 || *port > 65535) throw ConfigError(where + "bad port: " + words[i]);
            auto proto = words[i].substr(0, eq);
            if (proto == "imap") b.ports.imap = static_cast<int>(*port);
            else if (proto == "pop3") b.ports.pop3 = static_cast<int>(*port);
            else if (proto == "smtp") b.ports.smtp = static_cast<int>(*port);
            else throw ConfigError(where + "unknown protocol " + proto + " (imap, pop3, smtp)");
        }
        if (m.fixed_.count(b.name)) throw ConfigError(where + "duplicate backend " + b.name);
        m.fixed_[b.name] = b;
    }
    return m;
}

awaitable<std::optional<Backend>> BackendMap::find(const std::string& host) {
    auto name = to_lower(host);
    if (auto it = fixed_.find(name); it != fixed_.end()) co_return it->second;
    auto now = Clock::now();
    if (auto it = resolved_.find(name); it != resolved_.end() && it->second.expires > now) co_return it->second.backend;
    std::optional<Backend> found;
    asio::error_code ec;
    auto addr = asio::ip::make_address(name, ec);
    if (!ec) {
        found = Backend{name, addr.to_string(), defaults_};
    } else {
        asio::ip::tcp::resolver resolver(co_await asio::this_coro::executor);
        auto results = co_await resolver.async_resolve(name, "", asio::redirect_error(use_awaitable, ec));
        if (!ec && !results.empty())
            found = Backend{name, results.begin()->endpoint().address().to_string(), defaults_};
    }
    resolved_[name] = Resolved{found, now + std::chrono::seconds(found ? 300 : 30)};
    co_return found;
}

awaitable<bool> HealthProbe::up(const std::string& address, int port) {
    auto key = address + ":" + std::to_string(port);
    auto now = Clock::now();
    if (auto it = seen_.find(key); it != seen_.end() && it->second.second > now) co_return it->second.first;
    using namespace asio::experimental::awaitable_operators;
    auto ex = co_await asio::this_coro::executor;
    asio::ip::tcp::socket s(ex);
    asio::steady_timer t(ex);
    t.expires_after(timeout_);
    asio::error_code ec1, ec2, ec;
    auto addr = asio::ip::make_address(address, ec);
    bool ok = false;
    if (!ec) {
        asio::ip::tcp::endpoint ep(addr, static_cast<unsigned short>(port));
        auto r = co_await (s.async_connect(ep, asio::redirect_error(use_awaitable, ec1)) ||
                           t.async_wait(asio::redirect_error(use_awaitable, ec2)));
        ok = r.index() == 0 && !ec1;
    }
    s.close(ec);
    seen_[key] = {ok, Clock::now() + ttl_};
    co_return ok;
}

}  // namespace mailgrid
