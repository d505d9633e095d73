// store - where the mailbox list lives durably: an embedded LMDB file (one
// machine) or Redis (several bridges serving one list).
//
// The MUPDATE master (mupdate_bridge) keeps the whole list in memory and
// writes every change here before it acknowledges it; on start it loads
// the list back. Besides the mailboxes, a store keeps the published map
// user -> backend server (from each user's INBOX), updated in the same
// write, which LocationStore (location_store.hpp) reads for other programs.
//
//   file:/var/lib/mailgrid/mupdate     LMDB environment in that directory
//   redis://host:port/db               Redis; keys under <redis_prefix>mupdate:
//
// A commit is one durable write of many changes (group commit). With Redis
// every change carries what the writer believed was there before, and is
// refused when another bridge changed that name first; changes other
// bridges commit arrive through watch().
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache/redis_client.hpp"
#include "location/mailbox_list.hpp"
#include "net/asio.hpp"
#include "util/result.hpp"

namespace mailgrid {
class SuiteConfig;
}

namespace mailgrid::location {

struct Change {
    std::string name;
    std::optional<Mailbox> value;     // nullopt: deleted
    std::optional<Mailbox> expected;  // what the writer saw before (nullopt: absent)
};

struct CommitResult {
    bool ok = false;      // false: nothing was written (the store is unavailable)
    std::string error;    // why, when !ok
    // Changes refused because the name had changed meanwhile (Redis, with
    // another bridge writing): index into the batch and the current value.
    std::vector<std::pair<std::size_t, std::optional<Mailbox>>> conflicts;
};

struct StoreStats {
    std::string kind;        // "file" or "redis"
    std::string where;       // path or host:port
    std::size_t mailboxes = 0;
    std::size_t users = 0;
    std::string detail;      // e.g. LMDB map size and use
};

class MailboxStore {
public:
    virtual ~MailboxStore() = default;
    virtual std::string describe() const = 0;

    // Replaces `list` with the store's content. TempFail when the store
    // cannot be read.
    virtual awaitable<Lookup> load(MailboxList& list) = 0;
    // One mailbox (Found with the encoded record as value), NotFound or
    // TempFail.
    virtual awaitable<Lookup> get(std::string name) = 0;
    virtual awaitable<CommitResult> commit(std::vector<Change> batch) = 0;
    virtual awaitable<std::optional<StoreStats>> stats() = 0;

    // Changes other writers commit, as they happen (Redis only). `resync`
    // is called instead when changes may have been missed (the change log
    // was trimmed past us, or the store was unreachable for a while): the
    // caller then loads everything again.
    virtual void watch(std::function<void(std::vector<Change>)> on_changes, std::function<void()> resync) {
        (void)on_changes;
        (void)resync;
    }
    virtual void stop() {}
};

struct StoreOptions {
    std::string spec;              // file:PATH or redis://...
    bool read_only = false;        // the command line tools and other programs
    bool sync = true;              // file: fsync each commit
    std::uint64_t map_size = 8ull << 30;  // file: LMDB map size (sparse)
    std::size_t log_length = 1000000;     // redis: change log entries kept
    int wait_replicas = 0;                // redis: WAIT for this many replicas after a commit
};

// Where a store spec points: a file path, or Redis options and the key
// prefix ("<redis_prefix>mupdate:"). Throws std::runtime_error.
struct StoreSpec {
    bool redis = false;
    std::string path;
    RedisOptions redis_options;
    std::string key_prefix;
};
StoreSpec parse_store_spec(const std::string& spec, const SuiteConfig* config);

// Opens the store a spec names. "redis:" alone means the suite's
// redis_server. Throws std::runtime_error with a one-line reason.
std::unique_ptr<MailboxStore> open_store(asio::io_context& io, const StoreOptions& options, const SuiteConfig* config);

// For the user map kept beside the mailboxes: the user changes a batch
// implies (INBOX activated: user -> server; INBOX deleted or only
// reserved: user removed).
struct UserChange {
    std::string user;
    std::optional<std::string> server;
};
std::optional<UserChange> user_change(const Change& c);

}  // namespace mailgrid::location
