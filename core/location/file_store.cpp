// file_store - the embedded store: an LMDB environment on local disk with a
// write-ahead log in front of it.
//
// A commit appends one record (every change of the batch) to PATH/wal, a
// file allocated once and overwritten in place, and fdatasyncs it: one
// data-only flush, about a tenth of an LMDB commit's two (data, then meta
// page) on this kind of disk. Only then is the commit reported durable. A
// second thread applies logged batches to LMDB in the background, several
// per transaction, each transaction synced and recording the last log
// sequence number it contains ("applied" in the meta database). On open,
// records past "applied" are replayed, so a crash between the log and LMDB
// loses nothing; LMDB itself only ever sees fully synced transactions and
// so never needs repair. Readers of the file (command line tools, other
// programs) see LMDB, which trails the log by a few milliseconds.
//
// Log layout: a 4 KiB header (magic, generation, CRC) and records from
// offset 4096: magic, payload length, generation, sequence, CRC, payload.
// Replay stops at the first record that does not check out (a write torn
// by a crash was never acknowledged). When the log is nearly full and all
// of it is applied, the generation is bumped and writing starts over at
// 4096; records of older generations are ignored.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>

#include "location/lmdb_env.hpp"
#include "location/store_impl.hpp"
#include "log/log.hpp"
#include "proto/mupdate.hpp"

namespace mailgrid::location {

namespace {

constexpr std::uint64_t kWalSize = 64ull << 20;
constexpr std::uint64_t kHeaderSize = 4096;
constexpr std::uint32_t kRecordMagic = 0x4d475752;  // "MGWR"
constexpr char kHeaderMagic[8] = {'M', 'G', 'W', 'A', 'L', '0', '0', '1'};
constexpr std::size_t kRecordHead = 4 + 4 + 8 + 8 + 4;
constexpr std::uint32_t kDeleted = 0xffffffffu;

std::uint32_t crc32(std::string_view data) {
    static const auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    std::uint32_t c = 0xffffffffu;
    for (unsigned char b : data) c = table[(c ^ b) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

void put32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
void put64(std::string& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
std::uint32_t get32(const char* p) {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}
std::uint64_t get64(const char* p) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

MDB_val val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// A logged batch as LMDB will get it: sort keys and records ready.
struct Entry {
    std::string key;     // mupdate::sort_key(name)
    std::string record;  // empty: deleted
    std::optional<UserChange> user;
};

struct Logged {
    std::uint64_t seq = 0;
    std::vector<Entry> entries;
};

std::string encode_payload(const std::vector<Change>& batch) {
    std::string p;
    put32(p, static_cast<std::uint32_t>(batch.size()));
    for (const auto& c : batch) {
        put32(p, static_cast<std::uint32_t>(c.name.size()));
        p += c.name;
        if (c.value) {
            auto rec = encode(*c.value);
            put32(p, static_cast<std::uint32_t>(rec.size()));
            p += rec;
        } else {
            put32(p, kDeleted);
        }
    }
    return p;
}

std::optional<std::vector<Entry>> decode_payload(std::string_view p) {
    auto need = [&](std::size_t n) { return p.size() >= n; };
    if (!need(4)) return std::nullopt;
    std::uint32_t n = get32(p.data());
    p.remove_prefix(4);
    std::vector<Entry> out;
    for (std::uint32_t i = 0; i < n; ++i) {
        if (!need(4)) return std::nullopt;
        std::uint32_t len = get32(p.data());
        p.remove_prefix(4);
        if (!need(len)) return std::nullopt;
        Change c;
        c.name.assign(p.substr(0, len));
        p.remove_prefix(len);
        if (!need(4)) return std::nullopt;
        std::uint32_t rl = get32(p.data());
        p.remove_prefix(4);
        Entry e;
        e.key = mupdate::sort_key(c.name);
        if (rl != kDeleted) {
            if (!need(rl)) return std::nullopt;
            e.record.assign(p.substr(0, rl));
            p.remove_prefix(rl);
            c.value = decode(e.record);
            if (!c.value) return std::nullopt;
        }
        e.user = user_change(c);
        out.push_back(std::move(e));
    }
    return out;
}

Entry to_entry(const Change& c) {
    Entry e;
    e.key = mupdate::sort_key(c.name);
    if (c.value) e.record = encode(*c.value);
    e.user = user_change(c);
    return e;
}

class FileStore final : public MailboxStore {
public:
    FileStore(const StoreOptions& o, std::string path)
        : env_(std::move(path), o.read_only, o.map_size, true), read_only_(o.read_only), sync_(o.sync) {
        if (read_only_) wait_for_log();
        else open_wal();
    }

    ~FileStore() override {
        writer_.wait();
        applier_.wait();
        if (wal_fd_ >= 0) ::close(wal_fd_);
    }

    std::string describe() const override { return "file:" + env_.path(); }

    awaitable<Lookup> load(MailboxList& list) override {
        auto job = [this, &list]() { return load_now(list); };
        co_return co_await asio::co_spawn(writer_, run_blocking_body(std::move(job)), use_awaitable);
    }

    awaitable<Lookup> get(std::string name) override {
        try {
            auto v = env_.get(env_.mailboxes(), mupdate::sort_key(name));
            co_return v ? Lookup::found(std::move(*v)) : Lookup::not_found();
        } catch (const std::exception& e) {
            co_return Lookup::temp_fail(e.what());
        }
    }

    awaitable<CommitResult> commit(std::vector<Change> batch) override {
        auto job = [this, b = std::move(batch)]() { return write(b); };
        co_return co_await asio::co_spawn(writer_, run_blocking_body(std::move(job)), use_awaitable);
    }

    awaitable<std::optional<StoreStats>> stats() override {
        StoreStats s;
        s.kind = "file";
        s.where = env_.path();
        MDB_txn* txn = nullptr;
        if (mdb_txn_begin(env_.env(), nullptr, MDB_RDONLY, &txn) != 0) co_return std::nullopt;
        MDB_stat st{};
        if (mdb_stat(txn, env_.mailboxes(), &st) == 0) s.mailboxes = st.ms_entries;
        if (mdb_stat(txn, env_.users(), &st) == 0) s.users = st.ms_entries;
        mdb_txn_abort(txn);
        MDB_envinfo info{};
        MDB_stat env_stat{};
        mdb_env_info(env_.env(), &info);
        mdb_env_stat(env_.env(), &env_stat);
        double used = static_cast<double>(info.me_last_pgno + 1) * env_stat.ms_psize;
        s.detail = "map " + std::to_string(info.me_mapsize >> 20) + " MiB, " +
                   std::to_string(static_cast<long long>(used / (1 << 20))) + " MiB used";
        co_return s;
    }

private:
    // --- the log ---------------------------------------------------------

    void open_wal() {
        std::string path = env_.path() + "/wal";
        wal_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
        if (wal_fd_ < 0) throw std::runtime_error(errno_text("open " + path));
        struct stat st {};
        if (::fstat(wal_fd_, &st) != 0) throw std::runtime_error(errno_text("stat " + path));
        if (static_cast<std::uint64_t>(st.st_size) < kWalSize) {
            // Written out once, so that later writes overwrite allocated
            // blocks and fdatasync has no file size or extents to flush.
            std::string zeros(1 << 20, '\0');
            for (std::uint64_t off = static_cast<std::uint64_t>(st.st_size) & ~((1ull << 20) - 1); off < kWalSize;
                 off += zeros.size())
                if (::pwrite(wal_fd_, zeros.data(), zeros.size(), static_cast<off_t>(off)) != static_cast<ssize_t>(zeros.size()))
                    throw std::runtime_error(errno_text("write " + path));
            if (::fsync(wal_fd_) != 0) throw std::runtime_error(errno_text("fsync " + path));
        }
        applied_ = read_applied();
        next_seq_ = applied_ + 1;
        replay(path);
    }

    std::uint64_t read_applied() {
        MDB_txn* txn = nullptr;
        if (mdb_txn_begin(env_.env(), nullptr, MDB_RDONLY, &txn) != 0) return 0;
        MDB_val k = val("applied"), v{};
        std::uint64_t applied = 0;
        if (mdb_get(txn, env_.meta(), &k, &v) == 0 && v.mv_size == 8) applied = get64(static_cast<const char*>(v.mv_data));
        mdb_txn_abort(txn);
        return applied;
    }

    // Every whole record of the log's current generation, in order; false
    // when the log cannot be read at all.
    template <typename F>
    bool scan_log(int fd, F&& on_record) {
        std::string head(kHeaderSize, '\0');
        if (::pread(fd, head.data(), head.size(), 0) != static_cast<ssize_t>(head.size())) return false;
        bool valid = std::memcmp(head.data(), kHeaderMagic, 8) == 0 &&
                     get32(head.data() + 16) == crc32(std::string_view(head.data(), 16));
        gen_ = valid ? get64(head.data() + 8) : 0;
        std::uint64_t off = kHeaderSize;
        std::string rec_head(kRecordHead, '\0'), payload;
        while (valid && off + kRecordHead <= kWalSize) {
            if (::pread(fd, rec_head.data(), kRecordHead, static_cast<off_t>(off)) != static_cast<ssize_t>(kRecordHead)) break;
            const char* h = rec_head.data();
            std::uint32_t len = get32(h + 4);
            if (get32(h) != kRecordMagic || get64(h + 8) != gen_ || off + kRecordHead + len > kWalSize) break;
            std::uint64_t seq = get64(h + 16);
            payload.resize(len);
            if (::pread(fd, payload.data(), len, static_cast<off_t>(off + kRecordHead)) != static_cast<ssize_t>(len)) break;
            if (crc32(payload) != get32(h + 24)) break;
            if (!on_record(seq, std::string_view(payload))) break;
            off += kRecordHead + len;
        }
        return true;
    }

    // A reader (the command line, another program) waits, briefly, until
    // LMDB holds every change the running bridge has acknowledged, so it
    // never shows a state older than an answer already given. A bridge
    // that died with changes in the log replays them when it restarts;
    // until then the reader shows LMDB as it is.
    void wait_for_log() {
        int fd = ::open((env_.path() + "/wal").c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return;
        std::uint64_t last_seq = 0;
        scan_log(fd, [&](std::uint64_t seq, std::string_view) {
            last_seq = std::max(last_seq, seq);
            return true;
        });
        ::close(fd);
        for (int i = 0; i < 200 && read_applied() < last_seq; ++i) ::usleep(5000);
    }

    // Applies what the log has beyond LMDB, then starts a new generation.
    void replay(const std::string& path) {
        std::vector<Logged> pending;
        std::uint64_t last_seq = applied_;
        bool ok = scan_log(wal_fd_, [&](std::uint64_t seq, std::string_view payload) {
            auto entries = decode_payload(payload);
            if (!entries) return false;
            if (seq > applied_) pending.push_back(Logged{seq, std::move(*entries)});
            last_seq = std::max(last_seq, seq);
            return true;
        });
        if (!ok) throw std::runtime_error(errno_text("read " + path));
        if (!pending.empty()) {
            std::size_t changes = 0;
            for (const auto& l : pending) changes += l.entries.size();
            auto err = apply(pending);
            if (!err.empty()) throw std::runtime_error(env_.path() + ": replaying the log: " + err);
            log::info("%s: replayed %zu change(s) from the log", env_.path().c_str(), changes);
        }
        next_seq_ = last_seq + 1;
        rotate();
    }

    // Starts the log over (everything in it is applied to LMDB).
    void rotate() {
        ++gen_;
        std::string head(kHeaderSize, '\0');
        std::memcpy(head.data(), kHeaderMagic, 8);
        std::string g;
        put64(g, gen_);
        std::memcpy(head.data() + 8, g.data(), 8);
        std::string c;
        put32(c, crc32(std::string_view(head.data(), 16)));
        std::memcpy(head.data() + 16, c.data(), 4);
        if (::pwrite(wal_fd_, head.data(), head.size(), 0) != static_cast<ssize_t>(head.size()) ||
            ::fdatasync(wal_fd_) != 0)
            throw std::runtime_error(errno_text("write " + env_.path() + "/wal"));
        wal_off_ = kHeaderSize;
    }

    // --- writing -------------------------------------------------------

    CommitResult write(const std::vector<Change>& batch) {
        CommitResult r;
        if (read_only_) {
            r.error = "store opened read-only";
            return r;
        }
        {
            std::lock_guard lock(mu_);
            if (!apply_error_.empty()) {
                r.error = apply_error_;
                return r;
            }
        }
        std::string payload = encode_payload(batch);
        std::uint64_t size = kRecordHead + payload.size();
        Logged logged;
        logged.entries.reserve(batch.size());
        for (const auto& c : batch) logged.entries.push_back(to_entry(c));
        try {
            if (size > kWalSize - kHeaderSize) {
                // Too big for the log: straight into LMDB, synced.
                wait_applied(next_seq_ - 1);
                logged.seq = next_seq_++;
                std::vector<Logged> one;
                one.push_back(std::move(logged));
                auto err = apply(one);
                if (!err.empty()) {
                    r.error = err;
                    return r;
                }
                r.ok = true;
                return r;
            }
            if (wal_off_ + size > kWalSize) {
                wait_applied(next_seq_ - 1);
                rotate();
            }
        } catch (const std::exception& e) {
            r.error = e.what();
            return r;
        }
        logged.seq = next_seq_;
        std::string rec;
        rec.reserve(size);
        put32(rec, kRecordMagic);
        put32(rec, static_cast<std::uint32_t>(payload.size()));
        put64(rec, gen_);
        put64(rec, logged.seq);
        put32(rec, crc32(payload));
        rec += payload;
        if (::pwrite(wal_fd_, rec.data(), rec.size(), static_cast<off_t>(wal_off_)) != static_cast<ssize_t>(rec.size()) ||
            (sync_ && ::fdatasync(wal_fd_) != 0)) {
            r.error = errno_text(env_.path() + "/wal");
            return r;
        }
        wal_off_ += rec.size();
        ++next_seq_;
        {
            std::lock_guard lock(mu_);
            queue_.push_back(std::move(logged));
        }
        asio::post(applier_, [this] { drain(); });
        r.ok = true;
        return r;
    }

    void wait_applied(std::uint64_t seq) {
        std::unique_lock lock(mu_);
        applied_cv_.wait(lock, [&] { return applied_ >= seq || !apply_error_.empty(); });
        if (!apply_error_.empty()) throw std::runtime_error(apply_error_);
    }

    // On the applier thread: everything logged so far, one transaction.
    void drain() {
        std::vector<Logged> batch;
        {
            std::lock_guard lock(mu_);
            if (queue_.empty()) return;
            batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
            queue_.clear();
        }
        auto err = apply(batch);
        std::lock_guard lock(mu_);
        if (!err.empty()) {
            // The log still has these; the bridge's memory is right. Stop
            // taking commits: the log cannot be started over until LMDB
            // has them.
            apply_error_ = env_.path() + ": " + err;
            log::error("%s; no further changes are accepted", apply_error_.c_str());
        } else {
            applied_ = batch.back().seq;
        }
        applied_cv_.notify_all();
    }

    // One synced LMDB transaction with the given batches and "applied".
    std::string apply(const std::vector<Logged>& batches) {
        MDB_txn* txn = nullptr;
        int rc = mdb_txn_begin(env_.env(), nullptr, 0, &txn);
        if (rc != 0) return lmdb_error("mdb_txn_begin", rc);
        auto abort = [&](const char* what, int code) {
            mdb_txn_abort(txn);
            std::string e = lmdb_error(what, code);
            if (code == MDB_MAP_FULL) e += " (raise mupdate_store_map_size)";
            return e;
        };
        for (const auto& b : batches) {
            for (const auto& e : b.entries) {
                MDB_val k = val(e.key);
                if (!e.record.empty()) {
                    MDB_val v = val(e.record);
                    if ((rc = mdb_put(txn, env_.mailboxes(), &k, &v, 0)) != 0) return abort("mdb_put", rc);
                } else if ((rc = mdb_del(txn, env_.mailboxes(), &k, nullptr)) != 0 && rc != MDB_NOTFOUND) {
                    return abort("mdb_del", rc);
                }
                if (e.user) {
                    MDB_val uk = val(e.user->user);
                    if (e.user->server) {
                        MDB_val uv = val(*e.user->server);
                        if ((rc = mdb_put(txn, env_.users(), &uk, &uv, 0)) != 0) return abort("mdb_put", rc);
                    } else if ((rc = mdb_del(txn, env_.users(), &uk, nullptr)) != 0 && rc != MDB_NOTFOUND) {
                        return abort("mdb_del", rc);
                    }
                }
            }
        }
        std::string seq;
        put64(seq, batches.back().seq);
        MDB_val k = val("applied"), v = val(seq);
        if ((rc = mdb_put(txn, env_.meta(), &k, &v, 0)) != 0) return abort("mdb_put", rc);
        if ((rc = mdb_txn_commit(txn)) != 0) return lmdb_error("mdb_txn_commit", rc);
        return {};
    }

    Lookup load_now(MailboxList& list) {
        list.clear();
        MDB_txn* txn = nullptr;
        int rc = mdb_txn_begin(env_.env(), nullptr, MDB_RDONLY, &txn);
        if (rc != 0) return Lookup::temp_fail(lmdb_error("mdb_txn_begin", rc));
        MDB_cursor* cur = nullptr;
        if ((rc = mdb_cursor_open(txn, env_.mailboxes(), &cur)) != 0) {
            mdb_txn_abort(txn);
            return Lookup::temp_fail(lmdb_error("mdb_cursor_open", rc));
        }
        MDB_val k{}, v{};
        std::size_t bad = 0;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            auto m = decode(std::string_view(static_cast<const char*>(v.mv_data), v.mv_size));
            if (!m) {
                ++bad;
                continue;
            }
            list.set(name_of_key(std::string_view(static_cast<const char*>(k.mv_data), k.mv_size)), std::move(*m));
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        if (rc != MDB_NOTFOUND) return Lookup::temp_fail(lmdb_error("mdb_cursor_get", rc));
        return Lookup::found(bad ? std::to_string(bad) + " unreadable record(s) skipped" : "");
    }

    LmdbEnv env_;
    bool read_only_;
    bool sync_;
    int wal_fd_ = -1;
    std::uint64_t wal_off_ = kHeaderSize;
    std::uint64_t gen_ = 0;
    std::uint64_t next_seq_ = 1;  // writer thread only

    std::mutex mu_;
    std::condition_variable applied_cv_;
    std::deque<Logged> queue_;     // logged, not yet in LMDB
    std::uint64_t applied_ = 0;    // last sequence in LMDB
    std::string apply_error_;

    // Commits (and the initial load) on one thread, LMDB transactions on
    // another: the log's flush never waits for LMDB's.
    asio::thread_pool writer_{1};
    asio::thread_pool applier_{1};
};

}  // namespace

std::unique_ptr<MailboxStore> open_file_store(const StoreOptions& options, std::string path) {
    return std::make_unique<FileStore>(options, std::move(path));
}

}  // namespace mailgrid::location
