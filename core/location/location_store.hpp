// location_store - which backend server holds a user's mailbox, as the
// MUPDATE master (mupdate_bridge) publishes it: the read side for other
// programs (webmail_locator, scripts).
//
//   auto where = LocationStore::open(io, "file:/var/lib/mailgrid/mupdate", &config);
//   Lookup r = co_await where->lookup("alice");        // Found: "mail01.example.com"
//
// The key is the user as Cyrus names it: "alice", or "alice@example.com"
// with virtual domains (INBOX example.com!user.alice). The answer is the
// server part of the INBOX's location, i.e. the backend's Cyrus
// servername (which may carry a ":port"). Only active INBOXes are
// published. A store that cannot be read is TempFail, never NotFound.
// Keys with capitals are also tried in lower case.
#pragma once

#include <memory>
#include <string>

#include "net/asio.hpp"
#include "util/result.hpp"

namespace mailgrid {
class SuiteConfig;
}

namespace mailgrid::location {

class LocationStore {
public:
    virtual ~LocationStore() = default;
    virtual awaitable<Lookup> lookup(std::string user) = 0;
    virtual std::string describe() const = 0;

    // spec as mupdate_store: file:/path or redis://host:port/db ("redis:" =
    // the suite's redis_server). A file store that does not exist yet is
    // opened on first use (TempFail until then). Throws std::runtime_error
    // for a spec that cannot be right.
    static std::unique_ptr<LocationStore> open(asio::io_context& io, const std::string& spec, const SuiteConfig* config);
};

}  // namespace mailgrid::location
