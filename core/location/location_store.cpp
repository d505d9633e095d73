// location_store - user -> backend lookups in the bridge's store (see
// location_store.hpp).
#include "location/location_store.hpp"

#include <chrono>

#include "location/lmdb_env.hpp"
#include "location/store_impl.hpp"
#include "util/strings.hpp"

namespace mailgrid::location {

namespace {

bool has_upper(const std::string& s) {
    for (char c : s)
        if (c >= 'A' && c <= 'Z') return true;
    return false;
}

class FileLocations final : public LocationStore {
public:
    explicit FileLocations(std::string path) : path_(std::move(path)) {}

    std::string describe() const override { return "file:" + path_; }

    awaitable<Lookup> lookup(std::string user) override {
        if (!env_) {
            auto now = std::chrono::steady_clock::now();
            if (now < retry_at_) co_return Lookup::temp_fail(error_);
            try {
                env_ = std::make_unique<LmdbEnv>(path_, true, 0, true);
            } catch (const std::exception& e) {
                error_ = e.what();
                retry_at_ = now + std::chrono::seconds(1);
                co_return Lookup::temp_fail(error_);
            }
        }
        try {
            auto v = env_->get(env_->users(), user);
            if (!v && has_upper(user)) v = env_->get(env_->users(), to_lower(user));
            co_return v ? Lookup::found(std::move(*v)) : Lookup::not_found();
        } catch (const std::exception& e) {
            co_return Lookup::temp_fail(e.what());
        }
    }

private:
    std::string path_;
    std::unique_ptr<LmdbEnv> env_;
    std::string error_;
    std::chrono::steady_clock::time_point retry_at_{};
};

class RedisLocations final : public LocationStore {
public:
    RedisLocations(asio::io_context& io, RedisOptions o, std::string key) : client_(io, std::move(o)), key_(std::move(key)) {}

    std::string describe() const override { return "redis://" + client_.describe() + " (" + key_ + ")"; }

    awaitable<Lookup> lookup(std::string user) override {
        bool retry_lower = has_upper(user);
        std::string lower = retry_lower ? to_lower(user) : std::string();
        std::vector<std::string> cmd{std::string("HGET"), key_, std::move(user)};
        auto r = co_await client_.command(std::move(cmd));
        if (!r || r->is_error()) co_return Lookup::temp_fail(r ? r->str : "redis unavailable");
        if (r->type == RedisReply::Type::Nil && retry_lower) {
            std::vector<std::string> again{std::string("HGET"), key_, lower};
            r = co_await client_.command(std::move(again));
            if (!r || r->is_error()) co_return Lookup::temp_fail(r ? r->str : "redis unavailable");
        }
        if (r->type == RedisReply::Type::Nil) co_return Lookup::not_found();
        co_return Lookup::found(r->str);
    }

private:
    RedisClient client_;
    std::string key_;
};

}  // namespace

std::unique_ptr<LocationStore> LocationStore::open(asio::io_context& io, const std::string& spec_text,
                                                   const SuiteConfig* config) {
    auto spec = parse_store_spec(spec_text, config);
    if (spec.redis) return std::make_unique<RedisLocations>(io, spec.redis_options, spec.key_prefix + "users");
    return std::make_unique<FileLocations>(spec.path);
}

}  // namespace mailgrid::location
