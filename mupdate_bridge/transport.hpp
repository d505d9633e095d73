// transport - a MUPDATE connection's byte stream: the plain Connection, or
// TLS on top of it after STARTTLS. The session reads and writes through
// this, so the protocol code is the same either way.
#pragma once

#include <asio/ssl.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/receive_buffer.hpp"
#include "net/server.hpp"

namespace mailgrid::bridge {

class Transport {
public:
    explicit Transport(Connection& c, std::size_t max_buffer) : c_(c), in_(max_buffer) {}

    std::string_view buffer() const;
    void consume(std::size_t n);
    // Drops everything received and not yet consumed (input pipelined
    // after STARTTLS must not be trusted).
    void discard();
    awaitable<bool> read_more();
    awaitable<bool> write(std::string_view data);
    // Server-side TLS handshake; false (and logged) if it fails.
    awaitable<bool> start_tls(asio::ssl::context& ctx);
    bool tls() const { return ssl_ != nullptr; }
    Connection& connection() { return c_; }

private:
    Connection& c_;
    std::unique_ptr<asio::ssl::stream<Socket&>> ssl_;
    ReceiveBuffer in_;  // under TLS: the decrypted bytes
};

// The server's TLS context from a certificate chain and key (PEM). Throws
// std::runtime_error naming the file.
std::unique_ptr<asio::ssl::context> make_tls_context(const std::string& cert_file, const std::string& key_file);

}  // namespace mailgrid::bridge
