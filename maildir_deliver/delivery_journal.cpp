// delivery_journal - the DeliveryJournal of the LMTP server, in LMDB (see
// delivery_journal.hpp).
#include "delivery_journal.hpp"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <stdexcept>

#include "location/lmdb_env.hpp"
#include "log/log.hpp"

namespace mailgrid {

namespace {

constexpr std::size_t kIdBytes = 16;
constexpr std::size_t kExpireBatch = 1000;
constexpr auto kFlushEvery = std::chrono::seconds(30);
// Virtual address space only: pages are used as entries need them.
constexpr std::size_t kMapSize = std::size_t(8) << 30;

std::string encode(std::uint64_t when, const DeliveryJournal::Entry& e) {
    std::string v(8, '\0');
    for (int i = 0; i < 8; ++i) v[i] = static_cast<char>((when >> (8 * i)) & 0xff);
    return v + e.mailbox + '\0' + e.file;
}

std::uint64_t stamp_of(const MDB_val& v) {
    if (v.mv_size < 8) return 0;
    auto* p = static_cast<const unsigned char*>(v.mv_data);
    std::uint64_t when = 0;
    for (int i = 7; i >= 0; --i) when = (when << 8) | p[i];
    return when;
}

bool broken(int rc) { return rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH || rc == MDB_PANIC; }

}  // namespace

LmdbDeliveryJournal::LmdbDeliveryJournal(std::string path, std::chrono::seconds window, Clock clock)
    : path_(std::move(path)), window_(window), clock_(std::move(clock)) {
    if (!clock_) clock_ = [] { return static_cast<std::uint64_t>(std::time(nullptr)); };
    if (path_.empty() || path_[0] != '/') throw std::runtime_error("the delivery journal needs an absolute path: " + path_);
    sha256_ = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (!sha256_) throw std::runtime_error("OpenSSL has no SHA-256");
    if (::mkdir(path_.c_str(), 0700) != 0 && errno != EEXIST)
        throw std::runtime_error("cannot create " + path_ + ": " + std::strerror(errno));
    open();
}

LmdbDeliveryJournal::~LmdbDeliveryJournal() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (upkeep_.joinable()) upkeep_.join();
    flush();
    close();
    EVP_MD_free(sha256_);
}

void LmdbDeliveryJournal::close() {
    if (env_) mdb_env_close(env_);
    env_ = nullptr;
}

void LmdbDeliveryJournal::open() {
    for (int attempt = 0;; ++attempt) {
        int rc = mdb_env_create(&env_);
        if (rc != 0) throw std::runtime_error(path_ + ": " + location::lmdb_error("mdb_env_create", rc));
        mdb_env_set_mapsize(env_, kMapSize);
        mdb_env_set_maxreaders(env_, 1024);
        const char* what = "mdb_env_open";
        rc = mdb_env_open(env_, path_.c_str(), MDB_NOTLS | MDB_NOSYNC, 0600);
        if (rc == 0) {
            MDB_txn* txn = nullptr;
            what = "mdb_txn_begin";
            rc = mdb_txn_begin(env_, nullptr, 0, &txn);
            if (rc == 0) {
                what = "mdb_dbi_open";
                rc = mdb_dbi_open(txn, nullptr, 0, &dbi_);
                if (rc == 0) {
                    what = "mdb_txn_commit";
                    rc = mdb_txn_commit(txn);
                } else {
                    mdb_txn_abort(txn);
                }
            }
        }
        if (rc == 0) return;
        std::string why = path_ + ": " + location::lmdb_error(what, rc);
        close();
        if (!broken(rc) || attempt > 0) throw std::runtime_error(why);
        // Only a memory of what was delivered: start a new one.
        std::string aside = path_ + ".broken." + std::to_string(clock_());
        if (::rename(path_.c_str(), aside.c_str()) != 0 || ::mkdir(path_.c_str(), 0700) != 0)
            throw std::runtime_error(why + "; cannot move it aside: " + std::strerror(errno));
        log::warning("%s; moved to %s, starting a new delivery journal", why.c_str(), aside.c_str());
    }
}

std::string LmdbDeliveryJournal::sha256(std::initializer_list<std::string_view> parts, std::size_t keep) const {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    bool ok = ctx && EVP_DigestInit_ex(ctx.get(), sha256_, nullptr) == 1;
    // Each part's length first, so that no two sequences of parts hash alike.
    for (auto part : parts) {
        std::uint64_t size = part.size();
        ok = ok && EVP_DigestUpdate(ctx.get(), &size, sizeof size) == 1 &&
             EVP_DigestUpdate(ctx.get(), part.data(), part.size()) == 1;
    }
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!ok || EVP_DigestFinal_ex(ctx.get(), out, &n) != 1 || n < keep) throw std::runtime_error("SHA-256 failed");
    return std::string(reinterpret_cast<const char*>(out), keep);
}

std::string LmdbDeliveryJournal::digest(std::string_view header, std::string_view message) const {
    return sha256({header, message}, 32);
}

std::string LmdbDeliveryJournal::id(std::string_view recipient, const std::string& digest) const {
    return sha256({recipient, digest}, kIdBytes);
}

std::optional<DeliveryJournal::Entry> LmdbDeliveryJournal::find(const std::string& id) {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
    if (rc != 0) {
        log::warning("%s: %s", path_.c_str(), location::lmdb_error("mdb_txn_begin", rc).c_str());
        return std::nullopt;
    }
    MDB_val key{id.size(), const_cast<char*>(id.data())}, value{};
    std::optional<Entry> found;
    if ((rc = mdb_get(txn, dbi_, &key, &value)) == 0 && value.mv_size > 8 &&
        stamp_of(value) + static_cast<std::uint64_t>(window_.count()) >= clock_()) {
        std::string_view rest(static_cast<const char*>(value.mv_data) + 8, value.mv_size - 8);
        if (auto nul = rest.find('\0'); nul != std::string_view::npos)
            found = Entry{std::string(rest.substr(0, nul)), std::string(rest.substr(nul + 1))};
    } else if (rc != 0 && rc != MDB_NOTFOUND) {
        log::warning("%s: %s", path_.c_str(), location::lmdb_error("mdb_get", rc).c_str());
    }
    mdb_txn_abort(txn);
    return found;
}

void LmdbDeliveryJournal::remember(const std::string& id, const Entry& entry) {
    // Failing here costs at most a second copy after a lost reply, so the
    // delivery goes on.
    std::string v = encode(clock_(), entry);
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    const char* what = "mdb_txn_begin";
    if (rc == 0) {
        MDB_val key{id.size(), const_cast<char*>(id.data())}, value{v.size(), v.data()};
        what = "mdb_put";
        rc = mdb_put(txn, dbi_, &key, &value, 0);
        if (rc == 0) {
            what = "mdb_txn_commit";
            rc = mdb_txn_commit(txn);
        } else {
            mdb_txn_abort(txn);
        }
    }
    if (rc != 0) log::warning("%s: %s: not remembered", path_.c_str(), location::lmdb_error(what, rc).c_str());
}

std::size_t LmdbDeliveryJournal::expire() {
    const std::uint64_t now = clock_();
    const std::uint64_t oldest = now - std::min<std::uint64_t>(now, window_.count());
    std::size_t removed = 0;
    std::string resume;
    for (bool more = true; more;) {
        MDB_txn* txn = nullptr;
        MDB_cursor* cursor = nullptr;
        int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
        if (rc == 0 && (rc = mdb_cursor_open(txn, dbi_, &cursor)) != 0) mdb_txn_abort(txn);
        if (rc != 0) {
            log::warning("%s: %s", path_.c_str(), location::lmdb_error("expire", rc).c_str());
            return removed;
        }
        MDB_val key{resume.size(), resume.data()}, value{};
        rc = mdb_cursor_get(cursor, &key, &value, resume.empty() ? MDB_FIRST : MDB_SET_RANGE);
        std::size_t seen = 0;
        while (rc == 0 && seen++ < kExpireBatch) {
            if (stamp_of(value) < oldest && mdb_cursor_del(cursor, 0) == 0) ++removed;
            rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT);
        }
        more = rc == 0;
        if (more) resume.assign(static_cast<const char*>(key.mv_data), key.mv_size);
        mdb_cursor_close(cursor);
        if ((rc = mdb_txn_commit(txn)) != 0) {
            log::warning("%s: %s", path_.c_str(), location::lmdb_error("mdb_txn_commit", rc).c_str());
            return removed;
        }
    }
    return removed;
}

void LmdbDeliveryJournal::flush() {
    if (!env_) return;
    if (int rc = mdb_env_sync(env_, 1); rc != 0)
        log::warning("%s: %s", path_.c_str(), location::lmdb_error("mdb_env_sync", rc).c_str());
}

void LmdbDeliveryJournal::start_upkeep() {
    // Expiring takes a pass over every entry: a few times per window, at
    // most once a minute.
    auto expire_every = std::clamp<std::chrono::seconds>(window_ / 8, std::chrono::minutes(1), std::chrono::hours(1));
    upkeep_ = std::thread([this, expire_every] {
        auto next_expiry = std::chrono::steady_clock::now() + expire_every;
        std::unique_lock lock(mutex_);
        while (!wake_.wait_for(lock, kFlushEvery, [this] { return stopping_; })) {
            lock.unlock();
            if (std::chrono::steady_clock::now() >= next_expiry) {
                if (auto n = expire()) log::info("delivery journal: %zu entries older than %llds removed", n,
                                                 static_cast<long long>(window_.count()));
                next_expiry = std::chrono::steady_clock::now() + expire_every;
            }
            flush();
            lock.lock();
        }
    });
}

}  // namespace mailgrid
