// locator - which backend holds a user's mail, and the auth_http and JSON
// answers built on it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "auth/checker.hpp"
#include "backends.hpp"
#include "config/suite_config.hpp"
#include "directory/registry.hpp"
#include "location/location_store.hpp"
#include "lookup/table_service.hpp"
#include "net/http.hpp"

namespace mailgrid {

const std::vector<ParamSpec>& locator_params();

struct Location {
    Status status = Status::NotFound;  // Found, NotFound, TempFail
    std::string reason;                // for TempFail
    std::string host;                  // as the directory names it
    std::string source;                // which source answered
    std::optional<Backend> backend;
};

class Locator {
public:
    Locator(asio::io_context& io, const SuiteConfig& config, MetricsRegistry* metrics);
    // Loads sources, the backend map and the password check. Throws
    // ConfigError.
    void load(std::vector<std::string>& warnings);

    awaitable<Location> locate(const std::string& user);
    // nginx auth_http: the whole response.
    awaitable<http::Response> auth_http(const http::Request& req);
    // GET /v1/locate/<user>
    awaitable<http::Response> locate_json(const std::string& user);
    awaitable<http::Response> handle(const http::Request& req);

    DirectoryRegistry& directories() { return *directories_; }

private:
    http::Response auth_reply(const std::string& status, bool wait, const std::string& error_code = {});

    asio::io_context& io_;
    const SuiteConfig& config_;
    MetricsRegistry* metrics_;
    std::unique_ptr<DirectoryRegistry> directories_;
    std::unique_ptr<RedisClient> redis_;
    struct Source {
        std::string name;
        std::unique_ptr<TableService> table;           // an ldap_table(5) file, or
        std::unique_ptr<location::LocationStore> store;  // mupdate_bridge's store
    };
    std::vector<Source> sources_;
    std::optional<BackendMap> backends_;
    std::unique_ptr<HealthProbe> probe_;
    std::unique_ptr<PasswordChecker> checker_;
    std::string auth_path_, secret_header_, secret_;
    int auth_wait_seconds_ = 3;
    int max_attempts_ = 10;
    std::string smtp_relay_;

    Counter *m_ok_ = nullptr, *m_invalid_ = nullptr, *m_tempfail_ = nullptr, *m_down_ = nullptr;
};

}  // namespace mailgrid
