// redis_client - a pipelined Redis connection on the event loop.
//
// hiredis parses the replies; commands are written by us and matched to
// replies in order. Every command has a deadline. Redis being slow or down
// never blocks a caller past it: the command fails (nullopt), the
// connection is reset, and reconnects wait reconnect_delay, so a Redis
// outage costs one timeout and then fails fast until Redis is back.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/asio.hpp"

namespace mailgrid {

class SuiteConfig;

struct RedisOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 6379;
    std::string unix_path;
    int db = 0;
    std::string password;
    std::chrono::milliseconds timeout{250};
    std::chrono::milliseconds reconnect_delay{1000};

    // "redis://[:password@]host:port/db", "host:port", "unix:/path".
    static std::optional<RedisOptions> parse(std::string_view url, std::string* error = nullptr);
    // From redis_server, redis_password, redis_timeout in mailgrid.cf;
    // nullopt when redis_server is empty.
    static std::optional<RedisOptions> from_config(const SuiteConfig& c);
};

struct RedisReply {
    enum class Type { Nil, String, Status, Integer, Error, Array } type = Type::Nil;
    std::string str;
    long long integer = 0;
    std::vector<RedisReply> elements;
    bool is_error() const { return type == Type::Error; }
};

class RedisClient {
public:
    RedisClient(asio::io_context& io, RedisOptions options);
    ~RedisClient();

    // nullopt: Redis unavailable, timed out or the connection broke.
    awaitable<std::optional<RedisReply>> command(std::vector<std::string> args);
    bool available() const;
    const RedisOptions& options() const { return options_; }
    std::string describe() const;
    asio::any_io_executor executor() const;

private:
    struct State;
    std::shared_ptr<State> state_;
    RedisOptions options_;
};

std::string resp_encode(const std::vector<std::string>& args);

}  // namespace mailgrid
