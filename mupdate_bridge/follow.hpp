// follow - mupdate_bridge as a read-only mirror of an existing Cyrus
// mupdate master (--follow HOST:PORT): it logs in with PLAIN like a Cyrus
// frontend's mupdate slave, sends UPDATE, takes the whole list, then
// applies the streamed changes. The mirror is stored like any other list
// and served (and published) to the rest of the suite; writes from clients
// are refused while following. Used to migrate a Murder, or to publish one
// that keeps its own master.
#pragma once

#include <string>

#include "config/suite_config.hpp"
#include "net/asio.hpp"

namespace mailgrid::bridge {

class Bridge;

class Upstream {
public:
    Upstream(asio::io_context& io, Bridge& bridge, const SuiteConfig& config);
    void start();
    void stop();
    bool synced() const { return synced_; }

private:
    awaitable<void> run();
    // One connection; returns why it ended.
    awaitable<std::string> session();

    asio::io_context& io_;
    Bridge& bridge_;
    std::string host_, port_, user_, password_, authzid_;
    std::chrono::milliseconds noop_interval_{}, retry_{};
    bool stopped_ = false, synced_ = false;
    std::shared_ptr<asio::ip::tcp::socket> socket_;
};

}  // namespace mailgrid::bridge
