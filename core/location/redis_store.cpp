// redis_store - the shared store: the mailbox list in Redis, so that
// several bridges serve one list and any of them can die.
//
// Keys (prefix "<redis_prefix>mupdate:"):
//   mbox    hash  mailbox name -> record (location::encode)
//   users   hash  user -> backend server (the published map)
//   log     stream of committed batches: b=<bridge id> s=<sequence> then
//           name/record pairs (an empty record: deleted)
//   seq     the last sequence number
// A commit is one Lua script: each change is applied only if the name still
// holds what the writing bridge believed (compare and set), so two bridges
// never silently overwrite each other; the applied changes go to the log in
// the same script. Every bridge follows the log (XREAD) and applies what
// the others wrote; a gap in the sequence numbers (log trimmed, Redis
// restarted empty) makes it load everything again.
#include <unistd.h>

#include <random>

#include "location/store_impl.hpp"
#include "log/log.hpp"
#include "util/strings.hpp"

namespace mailgrid::location {

namespace {

// ARGV: bridge id, log length, then per change: name, expected record,
// new record, user, server ("" = none / delete).
constexpr const char* kCommitScript = R"lua(
local mbox, users, logkey, seqkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local bridge, maxlen = ARGV[1], ARGV[2]
local conflicts, entry = {}, {}
local idx = 0
for i = 3, #ARGV, 5 do
  local name, expected, value, user, server = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  local cur = redis.call('HGET', mbox, name)
  if not cur then cur = '' end
  if cur ~= expected then
    conflicts[#conflicts+1] = idx
    conflicts[#conflicts+1] = cur
  else
    if value == '' then redis.call('HDEL', mbox, name) else redis.call('HSET', mbox, name, value) end
    if user ~= '' then
      if server == '' then redis.call('HDEL', users, user) else redis.call('HSET', users, user, server) end
    end
    entry[#entry+1] = name
    entry[#entry+1] = value
  end
  idx = idx + 1
end
local id = ''
local chunk = 1000
for first = 1, #entry, chunk * 2 do
  local seq = redis.call('INCR', seqkey)
  local args = {logkey, 'MAXLEN', '~', maxlen, '*', 'b', bridge, 's', tostring(seq)}
  for j = first, math.min(first + chunk * 2 - 1, #entry) do args[#args+1] = entry[j] end
  id = redis.call('XADD', unpack(args))
end
return {id, conflicts}
)lua";

// Where the log ends now, and its sequence number, in one step.
constexpr const char* kPositionScript = R"lua(
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
return {last, redis.call('GET', KEYS[2]) or '0'}
)lua";

std::string bridge_id() {
    char host[256] = {0};
    ::gethostname(host, sizeof host - 1);
    std::random_device rd;
    char rnd[17];
    std::snprintf(rnd, sizeof rnd, "%08x%08x", rd(), rd());
    return std::string(host) + ":" + std::to_string(::getpid()) + ":" + rnd;
}

bool is_string(const RedisReply& r) { return r.type == RedisReply::Type::String || r.type == RedisReply::Type::Status; }

class RedisStore final : public MailboxStore {
public:
    RedisStore(asio::io_context& io, const StoreOptions& o, RedisOptions redis, std::string prefix)
        : io_(io),
          options_(o),
          client_(io, with_timeout(redis, std::chrono::milliseconds(2000))),
          bulk_(io, with_timeout(redis, std::chrono::milliseconds(10000))),
          mbox_(prefix + "mbox"),
          users_(prefix + "users"),
          log_(prefix + "log"),
          seq_(prefix + "seq"),
          id_(bridge_id()) {}

    std::string describe() const override { return "redis://" + client_.describe() + " (" + mbox_ + ")"; }

    awaitable<Lookup> load(MailboxList& list) override {
        std::vector<std::string> pos{std::string("EVAL"), kPositionScript, "2", log_, seq_};
        auto p = co_await client_.command(std::move(pos));
        if (!p || p->is_error() || p->elements.size() != 2)
            co_return Lookup::temp_fail(p && p->is_error() ? p->str : "redis unavailable");
        std::string last_id = "0-0";
        std::uint64_t last_seq = 0;
        const auto& last = p->elements[0];
        if (!last.elements.empty() && last.elements[0].elements.size() == 2) {
            last_id = last.elements[0].elements[0].str;
            last_seq = entry_seq(last.elements[0].elements[1]);
        } else if (auto s = parse_int(p->elements[1].str)) {
            last_seq = static_cast<std::uint64_t>(*s);
        }
        MailboxList fresh;
        std::string cursor = "0";
        std::size_t bad = 0;
        do {
            std::vector<std::string> scan{std::string("HSCAN"), mbox_, cursor, "COUNT", "5000"};
            auto r = co_await bulk_.command(std::move(scan));
            if (!r || r->is_error() || r->elements.size() != 2)
                co_return Lookup::temp_fail(r && r->is_error() ? r->str : "redis unavailable during HSCAN");
            cursor = r->elements[0].str;
            const auto& kv = r->elements[1].elements;
            for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
                auto m = decode(kv[i + 1].str);
                if (!m) {
                    ++bad;
                    continue;
                }
                fresh.set(kv[i].str, std::move(*m));
            }
        } while (cursor != "0");
        list = std::move(fresh);
        last_id_ = last_id;
        last_seq_ = last_seq;
        paused_ = false;
        co_return Lookup::found(bad ? std::to_string(bad) + " unreadable record(s) skipped" : "");
    }

    awaitable<Lookup> get(std::string name) override {
        std::vector<std::string> cmd{std::string("HGET"), mbox_, std::move(name)};
        auto r = co_await client_.command(std::move(cmd));
        if (!r || r->is_error()) co_return Lookup::temp_fail(r ? r->str : "redis unavailable");
        if (r->type == RedisReply::Type::Nil) co_return Lookup::not_found();
        co_return Lookup::found(r->str);
    }

    awaitable<CommitResult> commit(std::vector<Change> batch) override {
        CommitResult result;
        if (options_.read_only) {
            result.error = "store opened read-only";
            co_return result;
        }
        std::vector<std::string> args{std::string("EVALSHA"), sha_, "4", mbox_, users_, log_, seq_, id_,
                                      std::to_string(options_.log_length)};
        args.reserve(args.size() + batch.size() * 5);
        for (const auto& c : batch) {
            args.push_back(c.name);
            args.push_back(c.expected ? encode(*c.expected) : std::string());
            args.push_back(c.value ? encode(*c.value) : std::string());
            auto u = user_change(c);
            args.push_back(u ? u->user : std::string());
            args.push_back(u && u->server ? *u->server : std::string());
        }
        auto r = co_await eval(std::move(args));
        if (!r || r->is_error() || r->elements.size() != 2) {
            result.error = r && r->is_error() ? r->str : "redis unavailable";
            co_return result;
        }
        result.ok = true;
        const auto& conflicts = r->elements[1].elements;
        for (std::size_t i = 0; i + 1 < conflicts.size(); i += 2) {
            auto idx = static_cast<std::size_t>(conflicts[i].integer);
            std::optional<Mailbox> current;
            if (!conflicts[i + 1].str.empty()) current = decode(conflicts[i + 1].str);
            if (idx < batch.size()) result.conflicts.emplace_back(idx, std::move(current));
        }
        if (options_.wait_replicas > 0) {
            std::vector<std::string> wait{std::string("WAIT"), std::to_string(options_.wait_replicas), "1000"};
            auto w = co_await client_.command(std::move(wait));
            if (!w || w->type != RedisReply::Type::Integer || w->integer < options_.wait_replicas)
                log::warning("redis: a commit reached %lld of %d replicas within 1s",
                             w && w->type == RedisReply::Type::Integer ? w->integer : 0LL, options_.wait_replicas);
        }
        co_return result;
    }

    awaitable<std::optional<StoreStats>> stats() override {
        StoreStats s;
        s.kind = "redis";
        s.where = client_.describe();
        std::vector<std::string> a{std::string("HLEN"), mbox_};
        std::vector<std::string> b{std::string("HLEN"), users_};
        std::vector<std::string> c{std::string("XLEN"), log_};
        auto ra = co_await client_.command(std::move(a));
        auto rb = co_await client_.command(std::move(b));
        auto rc = co_await client_.command(std::move(c));
        if (!ra || !rb || ra->is_error() || rb->is_error()) co_return std::nullopt;
        s.mailboxes = static_cast<std::size_t>(ra->integer);
        s.users = static_cast<std::size_t>(rb->integer);
        s.detail = "keys " + mbox_ + " " + users_ + ", change log " + (rc ? std::to_string(rc->integer) : "?") +
                   " entries";
        co_return s;
    }

    void watch(std::function<void(std::vector<Change>)> on_changes, std::function<void()> resync) override {
        on_changes_ = std::move(on_changes);
        resync_ = std::move(resync);
        if (!watching_) {
            watching_ = true;
            asio::co_spawn(io_, follow_log(), asio::detached);
        }
    }

    void stop() override { stopped_ = true; }

private:
    static RedisOptions with_timeout(RedisOptions o, std::chrono::milliseconds at_least) {
        if (o.timeout < at_least) o.timeout = at_least;
        return o;
    }

    static std::uint64_t entry_seq(const RedisReply& fields) {
        for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2)
            if (fields.elements[i].str == "s") {
                auto v = parse_int(fields.elements[i + 1].str);
                return v ? static_cast<std::uint64_t>(*v) : 0;
            }
        return 0;
    }

    awaitable<std::optional<RedisReply>> eval(std::vector<std::string> args) {
        if (sha_.empty()) {
            if (!co_await load_script()) co_return std::nullopt;
            args[1] = sha_;
        }
        auto copy = args;
        auto r = co_await client_.command(std::move(args));
        if (r && r->is_error() && r->str.rfind("NOSCRIPT", 0) == 0) {
            if (!co_await load_script()) co_return std::nullopt;
            copy[1] = sha_;
            r = co_await client_.command(std::move(copy));
        }
        co_return r;
    }

    awaitable<bool> load_script() {
        std::vector<std::string> load{std::string("SCRIPT"), "LOAD", kCommitScript};
        auto r = co_await client_.command(std::move(load));
        if (!r || r->is_error() || !is_string(*r)) co_return false;
        sha_ = r->str;
        co_return true;
    }

    awaitable<void> follow_log() {
        while (!stopped_) {
            if (paused_) {
                // Waiting for the owner to load everything again.
                co_await sleep_for(std::chrono::milliseconds(100));
                continue;
            }
            std::vector<std::string> cmd{std::string("XREAD"), "COUNT", "1000", "BLOCK", "2000", "STREAMS", log_, last_id_};
            auto r = co_await bulk_.command(std::move(cmd));
            if (stopped_) break;
            if (paused_) continue;
            if (!r || r->is_error()) {
                if (r) log::warning("redis XREAD %s: %s", log_.c_str(), r->str.c_str());
                co_await sleep_for(std::chrono::seconds(1));
                continue;
            }
            if (r->type == RedisReply::Type::Nil || r->elements.empty()) continue;
            std::vector<Change> changes;
            bool gap = false;
            for (const auto& stream : r->elements) {
                if (stream.elements.size() != 2) continue;
                for (const auto& e : stream.elements[1].elements) {
                    if (e.elements.size() != 2) continue;
                    const auto& fields = e.elements[1].elements;
                    std::uint64_t seq = entry_seq(e.elements[1]);
                    if (seq != last_seq_ + 1) gap = true;
                    last_seq_ = seq;
                    last_id_ = e.elements[0].str;
                    bool mine = false;
                    for (std::size_t i = 0; i + 1 < fields.size(); i += 2)
                        if (fields[i].str == "b") mine = fields[i + 1].str == id_;
                    if (mine) continue;
                    for (std::size_t i = 4; i + 1 < fields.size(); i += 2) {
                        Change c;
                        c.name = fields[i].str;
                        if (!fields[i + 1].str.empty()) c.value = decode(fields[i + 1].str);
                        if (!fields[i + 1].str.empty() && !c.value) continue;
                        changes.push_back(std::move(c));
                    }
                }
            }
            if (gap) {
                log::warning("redis: the change log of %s skipped entries (trimmed, or Redis lost data); loading the list again",
                             mbox_.c_str());
                paused_ = true;
                if (resync_) resync_();
                continue;
            }
            if (!changes.empty() && on_changes_) on_changes_(std::move(changes));
        }
        watching_ = false;
    }

    asio::io_context& io_;
    StoreOptions options_;
    RedisClient client_;  // commits and single reads
    RedisClient bulk_;    // HSCAN and the blocking XREAD: long deadlines
    std::string mbox_, users_, log_, seq_;
    std::string id_;
    std::string sha_;
    std::string last_id_ = "$";
    std::uint64_t last_seq_ = 0;
    std::function<void(std::vector<Change>)> on_changes_;
    std::function<void()> resync_;
    bool watching_ = false;
    bool stopped_ = false;
    bool paused_ = false;  // a gap was seen; load() resumes from its position
};

}  // namespace

std::unique_ptr<MailboxStore> open_redis_store(asio::io_context& io, const StoreOptions& options, RedisOptions redis,
                                               std::string key_prefix) {
    return std::make_unique<RedisStore>(io, options, std::move(redis), std::move(key_prefix));
}

}  // namespace mailgrid::location
