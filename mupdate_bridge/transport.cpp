// transport - plain or TLS byte stream of a MUPDATE session (see transport.hpp).
#include "transport.hpp"

#include <stdexcept>

#include "log/log.hpp"

namespace mailgrid::bridge {

std::string_view Transport::buffer() const {
    if (!ssl_) return c_.buffer();
    return in_.data();
}

void Transport::consume(std::size_t n) {
    if (!ssl_) {
        c_.consume(n);
        return;
    }
    in_.consume(n);
}

void Transport::discard() {
    if (!ssl_) c_.consume(c_.buffer().size());
    in_.clear();
}

awaitable<bool> Transport::read_more() {
    if (!ssl_) co_return co_await c_.read_more();
    if (!c_.is_open()) co_return false;
    auto room = in_.room();
    if (room.empty()) co_return false;
    asio::error_code ec;
    std::size_t n = co_await ssl_->async_read_some(asio::buffer(room.data(), room.size()),
                                                   asio::redirect_error(use_awaitable, ec));
    if (ec || n == 0) co_return false;
    in_.commit(n);
    c_.keep_alive();
    co_return true;
}

awaitable<bool> Transport::write(std::string_view data) {
    if (!ssl_) co_return co_await c_.write(data);
    if (!c_.is_open()) co_return false;
    asio::error_code ec;
    co_await asio::async_write(*ssl_, asio::buffer(data.data(), data.size()), asio::redirect_error(use_awaitable, ec));
    if (ec) co_return false;
    c_.keep_alive();
    co_return true;
}

awaitable<bool> Transport::start_tls(asio::ssl::context& ctx) {
    c_.consume(c_.buffer().size());
    ssl_ = std::make_unique<asio::ssl::stream<Socket&>>(c_.socket(), ctx);
    asio::error_code ec;
    co_await ssl_->async_handshake(asio::ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
    if (ec) {
        log::warning("%s: TLS handshake: %s", c_.peer().c_str(), ec.message().c_str());
        co_return false;
    }
    c_.keep_alive();
    co_return true;
}

std::unique_ptr<asio::ssl::context> make_tls_context(const std::string& cert_file, const std::string& key_file) {
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    asio::error_code ec;
    ctx->use_certificate_chain_file(cert_file, ec);
    if (ec) throw std::runtime_error(cert_file + ": " + ec.message());
    ctx->use_private_key_file(key_file, asio::ssl::context::pem, ec);
    if (ec) throw std::runtime_error(key_file + ": " + ec.message());
    return ctx;
}

}  // namespace mailgrid::bridge
