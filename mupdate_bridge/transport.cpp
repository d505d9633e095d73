// transport - plain or TLS byte stream of a MUPDATE session (see transport.hpp).
#include "transport.hpp"

#include <cstring>
#include <stdexcept>

#include "log/log.hpp"

namespace mailgrid::bridge {

std::string_view Transport::buffer() const {
    if (!ssl_) return c_.buffer();
    return std::string_view(in_.data() + begin_, end_ - begin_);
}

void Transport::consume(std::size_t n) {
    if (!ssl_) {
        c_.consume(n);
        return;
    }
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
}

void Transport::discard() {
    if (!ssl_) c_.consume(c_.buffer().size());
    begin_ = end_ = 0;
}

awaitable<bool> Transport::read_more() {
    if (!ssl_) co_return co_await c_.read_more();
    if (end_ - begin_ >= max_buffer_ || !c_.is_open()) co_return false;
    if (in_.size() - end_ < 4096) {
        if (begin_ > 0) {
            std::memmove(in_.data(), in_.data() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        if (in_.size() - end_ < 4096) in_.resize(std::min(max_buffer_, std::max<std::size_t>(in_.size() * 2, 16384)));
    }
    std::size_t want = std::min(in_.size() - end_, max_buffer_ - (end_ - begin_));
    if (want == 0) co_return false;
    asio::error_code ec;
    std::size_t n = co_await ssl_->async_read_some(asio::buffer(in_.data() + end_, want),
                                                   asio::redirect_error(use_awaitable, ec));
    if (ec || n == 0) co_return false;
    end_ += n;
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
