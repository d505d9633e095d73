#include "net/server.hpp"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "log/log.hpp"
#include "util/secure.hpp"

namespace mailgrid {

namespace {
std::string describe_peer(Socket& s) {
    asio::error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec) return "unknown";
    if (ep.protocol().family() == AF_UNIX) return "local";
    if (ep.protocol().family() == AF_INET) {
        asio::ip::tcp::endpoint t;
        std::memcpy(t.data(), ep.data(), ep.size());
        return t.address().to_string() + ":" + std::to_string(t.port());
    }
    if (ep.protocol().family() == AF_INET6) {
        asio::ip::tcp::endpoint t(asio::ip::tcp::v6(), 0);
        std::memcpy(t.data(), ep.data(), ep.size());
        return "[" + t.address().to_string() + "]:" + std::to_string(t.port());
    }
    return "unknown";
}
}  // namespace

Connection::Connection(Socket socket, std::chrono::milliseconds idle, std::size_t max_buffer, IdleReaper* reaper)
    : io_(std::make_shared<Io>(std::move(socket))), reaper_(reaper), idle_(idle), in_(max_buffer) {
    touch();
    if (reaper_) reaper_->add(io_.get());
}

Connection::~Connection() { close(); }

const std::string& Connection::peer() {
    if (peer_.empty()) peer_ = describe_peer(io_->socket);
    return peer_;
}

void Connection::touch() { io_->deadline = std::chrono::steady_clock::now() + idle_; }

void IdleReaper::add(Connection::Io* c) {
    live_.insert(c);
    if (!running_ && !stopped_) {
        running_ = true;
        asio::co_spawn(timer_.get_executor(), sweep(), asio::detached);
    }
}

void IdleReaper::stop() {
    stopped_ = true;
    timer_.cancel();
}

awaitable<void> IdleReaper::sweep() {
    while (!stopped_ && !live_.empty()) {
        timer_.expires_after(std::chrono::milliseconds(250));
        asio::error_code ec;
        co_await timer_.async_wait(asio::redirect_error(use_awaitable, ec));
        if (stopped_) break;
        auto now = std::chrono::steady_clock::now();
        std::vector<Connection::Io*> expired;
        for (auto* c : live_)
            if (!c->closed && now >= c->deadline) expired.push_back(c);
        for (auto* c : expired) {
            // Closing wakes the connection's pending read or write, whose
            // coroutine then ends and unregisters it.
            asio::error_code ignore;
            c->socket.shutdown(asio::socket_base::shutdown_both, ignore);
            c->socket.close(ignore);
        }
    }
    running_ = false;
}

awaitable<bool> Connection::read_more() {
    if (io_->closed) co_return false;
    auto room = in_.room();
    if (room.empty()) co_return false;
    asio::error_code ec;
    std::size_t n = co_await io_->socket.async_read_some(asio::buffer(room.data(), room.size()),
                                                         asio::redirect_error(use_awaitable, ec));
    if (ec || n == 0) co_return false;
    in_.commit(n);
    touch();
    co_return true;
}

std::size_t Connection::pending_bytes() {
    int n = 0;
    if (::ioctl(io_->socket.native_handle(), FIONREAD, &n) != 0 || n < 0) return 0;
    return static_cast<std::size_t>(n);
}

void Connection::take_input(std::string_view bytes) { in_.append(bytes); }

void Connection::wipe_input() { in_.wipe(); }

awaitable<bool> Connection::write(std::string_view data) {
    if (io_->closed) co_return false;
    touch();
    asio::error_code ec;
    // Most replies fit in the socket buffer: send them now rather than
    // through the event loop, which would cost an extra epoll round.
    ssize_t sent = ::send(io_->socket.native_handle(), data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) co_return false;
        sent = 0;
    }
    data.remove_prefix(static_cast<std::size_t>(sent));
    if (data.empty()) co_return true;
    co_await asio::async_write(io_->socket, asio::buffer(data.data(), data.size()),
                               asio::redirect_error(use_awaitable, ec));
    if (ec) co_return false;
    touch();
    co_return true;
}

awaitable<bool> Connection::wait_readable(std::chrono::milliseconds within) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer t(io_->socket.get_executor());
    t.expires_after(within);
    asio::error_code ec1, ec2;
    auto r = co_await (io_->socket.async_wait(Socket::wait_read, asio::redirect_error(use_awaitable, ec1)) ||
                       t.async_wait(asio::redirect_error(use_awaitable, ec2)));
    co_return r.index() == 0 && !ec1;
}

awaitable<void> Connection::linger_close() {
    if (io_->closed) co_return;
    asio::error_code ec;
    io_->socket.shutdown(asio::socket_base::shutdown_send, ec);
    idle_ = std::chrono::milliseconds(1000);
    touch();
    std::array<char, 16384> sink;
    std::size_t total = 0;
    while (!io_->closed && total < (4u << 20)) {
        std::size_t n = co_await io_->socket.async_read_some(asio::buffer(sink), asio::redirect_error(use_awaitable, ec));
        if (ec || n == 0) break;
        total += n;
    }
    close();
}

void Connection::close() {
    if (io_->closed) return;
    io_->closed = true;
    if (reaper_) reaper_->remove(io_.get());
    asio::error_code ec;
    io_->socket.close(ec);
}

int Connection::peer_uid() const {
    struct ucred cred {};
    socklen_t len = sizeof cred;
    if (::getsockopt(io_->socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return -1;
    return static_cast<int>(cred.uid);
}

void Server::listen(const ListenSpec& spec, ServiceOptions options, ConnectionHandler handler) {
    auto l = std::make_unique<Listener>();
    l->spec = spec;
    l->options = std::move(options);
    l->handler = std::move(handler);
    using gp = asio::generic::stream_protocol;
    if (spec.kind == ListenSpec::Kind::Unix) {
        struct stat st {};
        if (::lstat(spec.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(spec.path.c_str());
        asio::local::stream_protocol::endpoint ep(spec.path);
        l->acceptor = std::make_unique<asio::basic_socket_acceptor<gp>>(io_);
        gp::endpoint gep(ep);
        l->acceptor->open(gep.protocol());
        l->acceptor->bind(gep);
        l->acceptor->listen(asio::socket_base::max_listen_connections);
        ::chmod(spec.path.c_str(), static_cast<mode_t>(l->options.unix_mode));
    } else {
        asio::ip::tcp::resolver resolver(io_);
        auto host = spec.host.empty() ? std::string("0.0.0.0") : spec.host;
        auto results = resolver.resolve(host, std::to_string(spec.port), asio::ip::tcp::resolver::passive);
        if (results.empty()) throw std::runtime_error("cannot resolve " + spec.text);
        asio::ip::tcp::endpoint ep = *results.begin();
        gp::endpoint gep(ep);
        l->acceptor = std::make_unique<asio::basic_socket_acceptor<gp>>(io_);
        l->acceptor->open(gep.protocol());
        l->acceptor->set_option(asio::socket_base::reuse_address(true));
        try {
            l->acceptor->bind(gep);
        } catch (const std::system_error& e) {
            throw std::system_error(e.code(), "bind " + spec.text);
        }
        l->acceptor->listen(asio::socket_base::max_listen_connections);
    }
    listeners_.push_back(std::move(l));
}

std::uint16_t Server::local_port(std::size_t n) const {
    if (n >= listeners_.size() || listeners_[n]->spec.kind != ListenSpec::Kind::Tcp) return 0;
    auto ep = listeners_[n]->acceptor->local_endpoint();
    asio::ip::tcp::endpoint t;
    std::memcpy(t.data(), ep.data(), std::min<std::size_t>(ep.size(), sizeof(sockaddr_in6)));
    return t.port();
}

void Server::start() {
    for (auto& l : listeners_) asio::co_spawn(io_, accept_loop(*l), asio::detached);
}

void Server::stop() {
    for (auto& l : listeners_) {
        asio::error_code ec;
        if (l->acceptor) l->acceptor->close(ec);
        if (l->spec.kind == ListenSpec::Kind::Unix) ::unlink(l->spec.path.c_str());
    }
}

awaitable<void> Server::serve_connection(Listener& l, std::shared_ptr<std::size_t> active, Socket s,
                                         IdleReaper* reaper, std::string first_read) {
    Connection c(std::move(s), l.options.idle_timeout, l.options.max_buffer, reaper);
    c.take_input(first_read);
    secure_wipe(first_read);
    try {
        co_await l.handler(c);
    } catch (const std::exception& e) {
        log::warning("%s: %s: %s", l.options.name.c_str(), c.peer().c_str(), e.what());
    }
    c.close();
    --*active;
}

bool Server::refuse_over_limit(Listener& l, std::chrono::steady_clock::time_point& last_warning) {
    if (*active_ < l.options.max_connections) return false;
    auto now = std::chrono::steady_clock::now();
    if (now - last_warning > std::chrono::seconds(10)) {
        log::warning("%s: connection limit %zu reached; refusing connections", l.options.name.c_str(),
                     l.options.max_connections);
        last_warning = now;
    }
    return true;
}

awaitable<void> Server::accept_loop(Listener& l) {
    if (l.options.answer_at_once) {
        co_await accept_answering_loop(l);
        co_return;
    }
    auto active = active_;
    std::chrono::steady_clock::time_point last_warning{};
    for (;;) {
        asio::error_code ec;
        Socket s = co_await l.acceptor->async_accept(asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || !l.acceptor->is_open()) co_return;
            log::warning("%s: accept: %s", l.spec.text.c_str(), ec.message().c_str());
            co_await sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        if (refuse_over_limit(l, last_warning)) {
            s.close(ec);
            continue;
        }
        if (l.spec.kind == ListenSpec::Kind::Tcp) {
            s.set_option(asio::ip::tcp::no_delay(true), ec);
        }
        ++*active;
        asio::co_spawn(io_, serve_connection(l, active, std::move(s), &reaper_, {}), asio::detached);
    }
}

// Accepts and reads with system calls of its own, so that a connection
// answered at once never joins the event loop: accept4, recv, send, close,
// where asio would add an epoll registration, its removal and an ioctl.
awaitable<void> Server::accept_answering_loop(Listener& l) {
    auto active = active_;
    std::chrono::steady_clock::time_point last_warning{};
    asio::error_code ec;
    l.acceptor->native_non_blocking(true, ec);
    const auto protocol = l.acceptor->local_endpoint(ec).protocol();
    char first[8192];
    for (;;) {
        co_await l.acceptor->async_wait(asio::socket_base::wait_read, asio::redirect_error(use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || !l.acceptor->is_open()) co_return;
            log::warning("%s: accept: %s", l.spec.text.c_str(), ec.message().c_str());
            co_await sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        // A bounded batch per wakeup, so that open connections are served too.
        for (int batch = 0; batch < 64 && l.acceptor->is_open(); ++batch) {
            int fd = ::accept4(l.acceptor->native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) {
                    log::warning("%s: accept: %s", l.spec.text.c_str(), std::strerror(errno));
                    co_await sleep_for(std::chrono::milliseconds(100));
                }
                break;
            }
            if (refuse_over_limit(l, last_warning)) {
                ::close(fd);
                continue;
            }
            ssize_t n = ::recv(fd, first, sizeof first, MSG_DONTWAIT);
            std::size_t got = n > 0 ? static_cast<std::size_t>(n) : 0;
            if (got > 0) {
                if (auto reply = l.options.answer_at_once(std::string_view(first, got))) {
                    secure_wipe(first, got);
                    (void)::send(fd, reply->data(), reply->size(), MSG_DONTWAIT | MSG_NOSIGNAL);
                    ::close(fd);
                    continue;
                }
            }
            std::string read_already(first, got);
            secure_wipe(first, got);
            Socket s(io_);
            s.assign(protocol, fd, ec);
            if (ec) {
                ::close(fd);
                secure_wipe(read_already);
                log::warning("%s: %s", l.spec.text.c_str(), ec.message().c_str());
                continue;
            }
            if (l.spec.kind == ListenSpec::Kind::Tcp) s.set_option(asio::ip::tcp::no_delay(true), ec);
            ++*active;
            asio::co_spawn(io_, serve_connection(l, active, std::move(s), &reaper_, std::move(read_already)),
                           asio::detached);
        }
    }
}

}  // namespace mailgrid
