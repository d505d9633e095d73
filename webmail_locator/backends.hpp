// backends - where each mail backend listens, per protocol.
//
// The directory names a backend by host name (the host part of maildrop,
// a mailHost attribute, a Cyrus server name); nginx needs an IP address and
// a port. A backend map file says both:
//
//   # name                address      ports (default: locator_*_port)
//   mail01.example.com    192.0.2.11
//   mail02.example.com    192.0.2.12   imap=1143 pop3=1110
//
// Names not in the file are resolved through the system resolver, with the
// default ports.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/cf_file.hpp"
#include "net/asio.hpp"

namespace mailgrid {

struct BackendPorts {
    int imap = 143, pop3 = 110, smtp = 25;
    int for_protocol(const std::string& protocol) const;  // 0 if unknown
};

struct Backend {
    std::string name;
    std::string address;  // IP literal
    BackendPorts ports;
};

class BackendMap {
public:
    // Throws ConfigError with file and line.
    static BackendMap load(const std::string& path, BackendPorts defaults);
    static BackendMap parse(std::string_view text, const std::string& path, BackendPorts defaults);
    static BackendMap empty(BackendPorts defaults);

    // The backend for a host name: from the file, or resolved (cached for
    // ttl). nullopt if it cannot be resolved.
    awaitable<std::optional<Backend>> find(const std::string& host);
    std::size_t size() const { return static_cast<std::size_t>(fixed_.size()); }

private:
    BackendPorts defaults_;
    std::map<std::string, Backend> fixed_;  // lower-case names
    struct Resolved {
        std::optional<Backend> backend;
        std::chrono::steady_clock::time_point expires;
    };
    std::map<std::string, Resolved> resolved_;
};

// Is addr:port accepting connections? Answers are remembered for ttl, so a
// burst of logins costs one probe.
class HealthProbe {
public:
    explicit HealthProbe(std::chrono::milliseconds ttl, std::chrono::milliseconds timeout)
        : ttl_(ttl), timeout_(timeout) {}
    awaitable<bool> up(const std::string& address, int port);

private:
    std::chrono::milliseconds ttl_, timeout_;
    std::map<std::string, std::pair<bool, std::chrono::steady_clock::time_point>> seen_;
};

}  // namespace mailgrid
