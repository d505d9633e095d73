// store - opening a mailbox store from its spec (see store.hpp).
#include <stdexcept>

#include "config/suite_config.hpp"
#include "location/store_impl.hpp"
#include "util/strings.hpp"

namespace mailgrid::location {

StoreSpec parse_store_spec(const std::string& spec_text, const SuiteConfig* config) {
    StoreSpec spec;
    std::string_view s = trim(spec_text);
    if (s.rfind("file:", 0) == 0) {
        spec.path = std::string(s.substr(5));
        while (spec.path.size() > 1 && spec.path.back() == '/') spec.path.pop_back();
        if (spec.path.empty() || spec.path[0] != '/') throw std::runtime_error("file store needs an absolute path: " + spec_text);
        if (spec.path.find("/../") != std::string::npos || (spec.path.size() >= 3 && spec.path.substr(spec.path.size() - 3) == "/.."))
            throw std::runtime_error("file store path must not contain \"..\": " + spec_text);
        return spec;
    }
    if (s.rfind("redis:", 0) == 0 || s.rfind("unix:", 0) == 0) {
        spec.redis = true;
        std::string prefix = config ? config->get("redis_prefix") : std::string("mailgrid:");
        spec.key_prefix = prefix + "mupdate:";
        if (s == "redis:" || s == "redis://") {
            auto o = config ? RedisOptions::from_config(*config) : std::nullopt;
            if (!o) throw std::runtime_error("store \"redis:\" needs redis_server");
            spec.redis_options = *o;
            return spec;
        }
        std::string err;
        auto o = RedisOptions::parse(s, &err);
        if (!o) throw std::runtime_error(err);
        if (config && o->password.empty() && config->has("redis_password")) o->password = config->get("redis_password");
        if (config) o->timeout = config->get_duration("redis_timeout");
        spec.redis_options = *o;
        return spec;
    }
    throw std::runtime_error("unknown store \"" + spec_text + "\": expected file:/path or redis://host:port/db");
}

std::unique_ptr<MailboxStore> open_store(asio::io_context& io, const StoreOptions& options, const SuiteConfig* config) {
    auto spec = parse_store_spec(options.spec, config);
    if (spec.redis) return open_redis_store(io, options, spec.redis_options, spec.key_prefix);
    return open_file_store(options, spec.path);
}

std::optional<UserChange> user_change(const Change& c) {
    auto user = inbox_user(c.name);
    if (!user) return std::nullopt;
    UserChange u;
    u.user = std::move(*user);
    if (c.value && c.value->active) u.server = std::string(location_server(c.value->location));
    return u;
}

}  // namespace mailgrid::location
