// listen - where a daemon listens: "inet:host:port", "host:port",
// "[::1]:port", "unix:/path" or "/path", as Postfix writes endpoints.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mailgrid {

struct ListenSpec {
    enum class Kind { Tcp, Unix } kind = Kind::Tcp;
    std::string host;   // Tcp: address or name ("" = all)
    std::uint16_t port = 0;
    std::string path;   // Unix
    std::string text;   // as configured, for logs

    static std::optional<ListenSpec> parse(std::string_view s, std::string* error = nullptr);
};

}  // namespace mailgrid
