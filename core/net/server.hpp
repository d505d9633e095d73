// server - listeners and connections for every daemon.
//
// A Server binds its listeners at once (before privileges are dropped),
// accepts on each with a connection limit, and runs one coroutine per
// connection. A Connection buffers input for the pure codecs and closes
// itself when idle longer than its service allows, whether the peer is
// silent or not reading what we write.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "net/asio.hpp"
#include "net/listen.hpp"
#include "net/receive_buffer.hpp"

namespace mailgrid {

using Socket = asio::generic::stream_protocol::socket;

class IdleReaper;

class Connection {
public:
    Connection(Socket socket, std::chrono::milliseconds idle_timeout, std::size_t max_buffer, IdleReaper* reaper);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Appends what the peer sent to buffer(). false on EOF, error, idle
    // timeout, or a buffer already at its limit.
    awaitable<bool> read_more();
    // Input received and not yet consumed.
    std::string_view buffer() const { return in_.data(); }
    // Overwrites everything received so far (it held a password).
    void wipe_input();
    // Puts bytes read before the connection was made into the buffer.
    void take_input(std::string_view bytes);
    void consume(std::size_t n) { in_.consume(n); }
    awaitable<bool> write(std::string_view data);
    // Wait until the peer sends something (or hangs up); used to answer a
    // protocol that allows an optional trailing field.
    awaitable<bool> wait_readable(std::chrono::milliseconds within);
    // Bytes the peer has sent that are not read yet (FIONREAD).
    std::size_t pending_bytes();
    void close();
    // Half-close after a final error reply, and read and drop what the
    // peer is still sending (up to a second), so the reply is not lost to
    // a reset.
    awaitable<void> linger_close();
    bool is_open() const { return !io_->closed && io_->socket.is_open(); }
    // "a.b.c.d:port", "[v6]:port" or "local"; looked up on first use.
    const std::string& peer();
    Socket& socket() { return io_->socket; }
    // Peer credentials on a unix socket (uid, or -1).
    int peer_uid() const;
    // Pushes the idle deadline forward: for I/O done on socket() directly
    // (a TLS layer on top), which read_more() and write() do not see.
    void keep_alive() { touch(); }

    struct Io {
        explicit Io(Socket s) : socket(std::move(s)) {}
        Socket socket;
        std::chrono::steady_clock::time_point deadline;
        bool closed = false;
    };

private:
    void touch();

    std::shared_ptr<Io> io_;
    IdleReaper* reaper_;
    std::chrono::milliseconds idle_;
    ReceiveBuffer in_;
    std::string peer_;
};

// Closes connections past their idle deadline. One timer sweeps them all,
// instead of a timer per connection: cheaper for protocols (saslauthd,
// auth_http) that open a connection per request.
class IdleReaper {
public:
    explicit IdleReaper(asio::io_context& io) : timer_(io) {}
    void add(Connection::Io* c);
    void remove(Connection::Io* c) { live_.erase(c); }
    void stop();

private:
    awaitable<void> sweep();
    asio::steady_timer timer_;
    std::unordered_set<Connection::Io*> live_;
    bool running_ = false;
    bool stopped_ = false;
};

using ConnectionHandler = std::function<awaitable<void>(Connection&)>;

struct ServiceOptions {
    std::string name;                         // for logs and metrics
    std::size_t max_connections = 10000;
    std::chrono::milliseconds idle_timeout = std::chrono::seconds(3600);
    std::size_t max_buffer = 1 << 20;
    int unix_mode = 0666;
    // For one-request protocols: given what a new connection's first read
    // brought, the whole reply if the service can give it at once (a
    // cached login), sent before closing without the event loop (4 system
    // calls instead of 8); nullopt to serve the connection through the
    // handler, with those bytes already in its buffer. They are wiped after.
    std::function<std::optional<std::string>(std::string_view first_read)> answer_at_once;
};

class Server {
public:
    explicit Server(asio::io_context& io) : io_(io) {}
    // Binds now; throws std::system_error with the address in the message.
    void listen(const ListenSpec& spec, ServiceOptions options, ConnectionHandler handler);
    void start();
    void stop();  // stop accepting; open connections finish their request
    std::size_t connections() const { return *active_; }
    // Local port of the n-th listener (useful when configured with port 0).
    std::uint16_t local_port(std::size_t n) const;

private:
    struct Listener {
        ListenSpec spec;
        ServiceOptions options;
        ConnectionHandler handler;
        std::unique_ptr<asio::basic_socket_acceptor<asio::generic::stream_protocol>> acceptor;
    };
    awaitable<void> accept_loop(Listener& l);
    awaitable<void> accept_answering_loop(Listener& l);
    bool refuse_over_limit(Listener& l, std::chrono::steady_clock::time_point& last_warning);
    static awaitable<void> serve_connection(Listener& l, std::shared_ptr<std::size_t> active, Socket s,
                                            IdleReaper* reaper, std::string first_read);

    asio::io_context& io_;
    IdleReaper reaper_{io_};
    std::vector<std::unique_ptr<Listener>> listeners_;
    std::shared_ptr<std::size_t> active_ = std::make_shared<std::size_t>(0);
};

}  // namespace mailgrid
