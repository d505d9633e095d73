// replica_directory - an in-memory copy of a subtree of the directory, kept
// current by the LDAP Content Synchronization operation (RFC 4533,
// refreshAndPersist: what slapd's syncrepl consumers use), so that searches
// under it need no round trip to the server.
//
// A thread of its own holds one connection with a persistent sync search:
// the refresh fills a fresh copy, which is put in service when the server
// says the refresh is done; every change the server then sends is applied
// at once (an overlay of changed entries on the last full copy, folded into
// a new copy now and then). The same connection answers a probe every
// probe_interval; when it fails, breaks or the probe goes unanswered, the
// copy is taken out of service and searches go to the LDAP pool again
// (which reports an outage as such) until a new refresh completes. Binds
// always go to the server.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/ldap_table.hpp"
#include "directory/ldap_directory.hpp"
#include "directory/ldif_directory.hpp"

namespace mailgrid {

struct ReplicaOptions {
    std::string base;                              // the subtree copied; empty = no replica
    std::chrono::milliseconds probe_interval{5'000};
    std::chrono::milliseconds probe_timeout{3'000};
    std::chrono::milliseconds retry_delay{5'000};  // after a failed or lost sync
    std::size_t fold_after = 2'000;                // changed entries before a new full copy
};

class ReplicaDirectory : public Directory {
public:
    ReplicaDirectory(asio::io_context& io, ServerSet server, std::shared_ptr<LdapDirectory> ldap, ReplicaOptions options,
                     MetricsRegistry* metrics = nullptr);
    ~ReplicaDirectory() override;

    awaitable<SearchResult> search(SearchRequest request) override;
    awaitable<BindResult> bind_check(std::string dn, std::string password, std::chrono::milliseconds timeout) override;
    std::string describe() const override;

    // A search filter template (%s, %u, ... for the key) that will be used:
    // the copy builds equality indexes for its attributes before it goes
    // into service, so that no search waits for one to be built.
    void expect_filter(std::string_view filter_template);
    void start();     // begin synchronising (daemons; one-shot tools ask the server)
    void shutdown();  // stop the sync thread (the pool is the registry's)

    // Could a search with this base and these attributes be answered from
    // a copy of `replica_base`? Operational attributes are not copied.
    static bool covers(std::string_view replica_base_norm, const SearchRequest& request);

    struct Live;  // what the event loop serves from

private:
    class Syncer;
    bool covered(const SearchRequest& request);  // covers(), remembered for the last base and attributes

    asio::io_context& io_;
    std::shared_ptr<LdapDirectory> ldap_;
    ReplicaOptions options_;
    std::string base_norm_;
    std::shared_ptr<Live> live_;
    std::unique_ptr<Syncer> syncer_;
    std::thread thread_;
    std::string covered_base_;
    std::vector<std::string> covered_attributes_;
    bool covered_known_ = false, covered_ = false;
    Counter* m_served_ = nullptr;
    Counter* m_passed_ = nullptr;
};

}  // namespace mailgrid
