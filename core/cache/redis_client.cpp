#include "cache/redis_client.hpp"

#include <hiredis/hiredis.h>

#include "config/suite_config.hpp"
#include "log/log.hpp"
#include "util/strings.hpp"

namespace mailgrid {

using Clock = std::chrono::steady_clock;

std::optional<RedisOptions> RedisOptions::parse(std::string_view url, std::string* error) {
    RedisOptions o;
    std::string_view v = trim(url);
    auto fail = [&](const char* why) -> std::optional<RedisOptions> {
        if (error) *error = std::string(why) + ": " + std::string(url);
        return std::nullopt;
    };
    if (v.rfind("unix:", 0) == 0) {
        o.unix_path = std::string(v.substr(5));
        if (o.unix_path.empty()) return fail("empty unix socket path");
        return o;
    }
    if (v.rfind("redis://", 0) == 0) v.remove_prefix(8);
    auto at = v.rfind('@');
    if (at != std::string_view::npos) {
        auto cred = v.substr(0, at);
        auto colon = cred.find(':');
        o.password = std::string(colon == std::string_view::npos ? cred : cred.substr(colon + 1));
        v.remove_prefix(at + 1);
    }
    auto slash = v.find('/');
    if (slash != std::string_view::npos) {
        auto db = parse_int(v.substr(slash + 1));
        if (!db || *db < 0 || *db > 1000) return fail("bad database number");
        o.db = static_cast<int>(*db);
        v = v.substr(0, slash);
    }
    auto colon = v.rfind(':');
    if (colon != std::string_view::npos) {
        auto port = parse_int(v.substr(colon + 1));
        if (!port || *port <= 0 || *port > 65535) return fail("bad port");
        o.port = static_cast<std::uint16_t>(*port);
        v = v.substr(0, colon);
    }
    if (!v.empty()) o.host = std::string(v);
    return o;
}

std::optional<RedisOptions> RedisOptions::from_config(const SuiteConfig& c) {
    auto url = c.get("redis_server");
    if (trim(url).empty()) return std::nullopt;
    std::string err;
    auto o = parse(url, &err);
    if (!o) c.fail("redis_server", err);
    if (c.has("redis_password")) o->password = c.get("redis_password");
    o->timeout = c.get_duration("redis_timeout");
    return o;
}

std::string resp_encode(const std::vector<std::string>& args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& a : args) {
        out += "$" + std::to_string(a.size()) + "\r\n";
        out += a;
        out += "\r\n";
    }
    return out;
}

namespace {
RedisReply convert(const redisReply* r) {
    RedisReply out;
    switch (r->type) {
        case REDIS_REPLY_STRING: out.type = RedisReply::Type::String; out.str.assign(r->str, r->len); break;
        case REDIS_REPLY_STATUS: out.type = RedisReply::Type::Status; out.str.assign(r->str, r->len); break;
        case REDIS_REPLY_ERROR: out.type = RedisReply::Type::Error; out.str.assign(r->str, r->len); break;
        case REDIS_REPLY_INTEGER: out.type = RedisReply::Type::Integer; out.integer = r->integer; break;
        case REDIS_REPLY_ARRAY:
            out.type = RedisReply::Type::Array;
            for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
            break;
        default: out.type = RedisReply::Type::Nil;
    }
    return out;
}
}  // namespace

struct RedisClient::State {
    struct Waiter {
        explicit Waiter(asio::any_io_executor ex) : timer(ex) {}
        asio::steady_timer timer;
        std::optional<RedisReply> reply;
        bool done = false;
        bool internal = false;  // AUTH/SELECT sent on connect
    };

    State(asio::io_context& io_, RedisOptions o) : io(io_), options(std::move(o)) {}

    asio::io_context& io;
    RedisOptions options;
    std::shared_ptr<asio::generic::stream_protocol::socket> socket;
    enum class Phase { Down, Connecting, Up } phase = Phase::Down;
    Clock::time_point down_until{};
    std::deque<std::shared_ptr<Waiter>> inflight;
    std::string outbuf;
    bool writing = false;
    redisReader* reader = nullptr;
    std::uint64_t generation = 0;
    std::deque<asio::steady_timer*> connect_waiters;
    bool closed = false;
    std::string last_error;
    Clock::time_point last_warning{};

    ~State() {
        if (reader) redisReaderFree(reader);
    }

    void warn(const std::string& what) {
        auto now = Clock::now();
        if (what == last_error && now - last_warning < std::chrono::seconds(10)) return;
        last_error = what;
        last_warning = now;
        log::warning("redis %s: %s", describe().c_str(), what.c_str());
    }

    std::string describe() const {
        return options.unix_path.empty() ? options.host + ":" + std::to_string(options.port) : "unix:" + options.unix_path;
    }

    void reset(const std::string& why) {
        if (phase == Phase::Up || phase == Phase::Connecting) warn(why);
        phase = Phase::Down;
        down_until = Clock::now() + options.reconnect_delay;
        ++generation;
        if (socket) {
            asio::error_code ec;
            socket->close(ec);
            socket.reset();
        }
        if (reader) {
            redisReaderFree(reader);
            reader = nullptr;
        }
        outbuf.clear();
        writing = false;
        auto waiters = std::move(inflight);
        inflight.clear();
        for (auto& w : waiters) {
            w->done = true;
            w->timer.cancel();
        }
        wake_connect_waiters();
    }

    void wake_connect_waiters() {
        auto ws = std::move(connect_waiters);
        connect_waiters.clear();
        for (auto* t : ws) t->cancel();
    }

    void queue(std::shared_ptr<Waiter> w, const std::string& wire) {
        inflight.push_back(std::move(w));
        outbuf += wire;
        if (!writing) asio::co_spawn(io, writer(generation), asio::detached);
    }

    awaitable<void> writer(std::uint64_t gen) {
        writing = true;
        while (!outbuf.empty() && gen == generation && socket) {
            std::string chunk = std::move(outbuf);
            outbuf.clear();
            asio::error_code ec;
            co_await asio::async_write(*socket, asio::buffer(chunk), asio::redirect_error(use_awaitable, ec));
            if (gen != generation) co_return;
            if (ec) {
                reset("write: " + ec.message());
                co_return;
            }
        }
        if (gen == generation) writing = false;
    }

    awaitable<void> read_loop(std::uint64_t gen) {
        std::vector<char> buf(65536);
        while (gen == generation && socket) {
            asio::error_code ec;
            std::size_t n = co_await socket->async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
            if (gen != generation) co_return;
            if (ec || n == 0) {
                reset(ec ? "read: " + ec.message() : std::string("connection closed by server"));
                co_return;
            }
            redisReaderFeed(reader, buf.data(), n);
            for (;;) {
                void* raw = nullptr;
                if (redisReaderGetReply(reader, &raw) != REDIS_OK) {
                    reset("protocol error");
                    co_return;
                }
                if (!raw) break;
                auto* r = static_cast<redisReply*>(raw);
                if (inflight.empty()) {
                    freeReplyObject(r);
                    reset("unexpected reply");
                    co_return;
                }
                auto w = inflight.front();
                inflight.pop_front();
                w->reply = convert(r);
                freeReplyObject(r);
                if (w->internal && w->reply->is_error()) {
                    std::string why = "connect: " + w->reply->str;
                    reset(why);
                    co_return;
                }
                w->done = true;
                w->timer.cancel();
            }
        }
    }

    awaitable<void> connect() {
        phase = Phase::Connecting;
        auto gen = ++generation;
        using gp = asio::generic::stream_protocol;
        auto sock = std::make_shared<gp::socket>(io);
        asio::error_code ec;
        asio::steady_timer guard(io);
        guard.expires_after(options.timeout * 4);
        auto timed_out = std::make_shared<bool>(false);
        guard.async_wait([sock, timed_out](const asio::error_code& e) {
            if (!e) {
                *timed_out = true;
                asio::error_code ignore;
                sock->close(ignore);
            }
        });
        if (!options.unix_path.empty()) {
            gp::endpoint ep{asio::local::stream_protocol::endpoint(options.unix_path)};
            sock->open(ep.protocol(), ec);
            if (!ec) co_await sock->async_connect(ep, asio::redirect_error(use_awaitable, ec));
        } else {
            asio::ip::tcp::resolver resolver(io);
            auto results = co_await resolver.async_resolve(options.host, std::to_string(options.port),
                                                           asio::redirect_error(use_awaitable, ec));
            if (!ec && !results.empty()) {
                gp::endpoint ep{asio::ip::tcp::endpoint(*results.begin())};
                sock->open(ep.protocol(), ec);
                if (!ec) co_await sock->async_connect(ep, asio::redirect_error(use_awaitable, ec));
                if (!ec) sock->set_option(asio::ip::tcp::no_delay(true), ec);
            } else if (!ec) {
                ec = asio::error::host_not_found;
            }
        }
        guard.cancel();
        if (gen != generation || closed) co_return;
        if (ec || *timed_out) {
            phase = Phase::Up;  // so reset() logs
            reset("connect: " + (*timed_out ? std::string("timed out") : ec.message()));
            co_return;
        }
        socket = std::move(sock);
        reader = redisReaderCreate();
        phase = Phase::Up;
        if (!options.password.empty()) {
            auto w = std::make_shared<Waiter>(io.get_executor());
            w->internal = true;
            queue(w, resp_encode({std::string("AUTH"), options.password}));
        }
        if (options.db != 0) {
            auto w = std::make_shared<Waiter>(io.get_executor());
            w->internal = true;
            queue(w, resp_encode({std::string("SELECT"), std::to_string(options.db)}));
        }
        asio::co_spawn(io, read_loop(gen), asio::detached);
        wake_connect_waiters();
    }
};

RedisClient::RedisClient(asio::io_context& io, RedisOptions options)
    : state_(std::make_shared<State>(io, options)), options_(std::move(options)) {}

RedisClient::~RedisClient() {
    state_->closed = true;
    state_->reset("shutdown");
}

bool RedisClient::available() const {
    return state_->phase == State::Phase::Up || Clock::now() >= state_->down_until;
}

std::string RedisClient::describe() const { return state_->describe(); }

asio::any_io_executor RedisClient::executor() const { return state_->io.get_executor(); }

awaitable<std::optional<RedisReply>> RedisClient::command(std::vector<std::string> args) {
    auto st = state_;
    auto deadline = Clock::now() + st->options.timeout;
    while (st->phase != State::Phase::Up) {
        if (st->closed) co_return std::nullopt;
        if (st->phase == State::Phase::Down) {
            if (Clock::now() < st->down_until) co_return std::nullopt;
            asio::co_spawn(st->io, st->connect(), asio::detached);
        }
        if (Clock::now() >= deadline) co_return std::nullopt;
        asio::steady_timer t(st->io);
        t.expires_at(deadline);
        st->connect_waiters.push_back(&t);
        asio::error_code ec;
        co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
        auto it = std::find(st->connect_waiters.begin(), st->connect_waiters.end(), &t);
        if (it != st->connect_waiters.end()) st->connect_waiters.erase(it);
        if (st->phase == State::Phase::Down && Clock::now() < st->down_until) co_return std::nullopt;
    }
    auto w = std::make_shared<State::Waiter>(st->io.get_executor());
    w->timer.expires_at(deadline);
    st->queue(w, resp_encode(args));
    asio::error_code ec;
    co_await w->timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (w->done) co_return std::move(w->reply);
    st->reset("timed out after " + std::to_string(st->options.timeout.count()) + " ms");
    co_return std::nullopt;
}

}  // namespace mailgrid
