// delivery_journal - the DeliveryJournal of the LMTP server, in LMDB.
//
// Key: 16 bytes of SHA-256 over the recipient and the SHA-256 of header and
// message; value: the
// time (8 bytes, little endian), the Maildir's path, NUL, the file in it.
// It is written before the message is linked into new/ and is never
// fsync'd per delivery (MDB_NOSYNC, flushed every half minute): a killed
// daemon loses nothing of it, a crashed machine at most the last seconds,
// which then costs a second copy of a message, never a lost one. An
// environment LMDB cannot open (a crash under MDB_NOSYNC can tear it) is
// moved aside and started afresh, for the same reason.
#pragma once

#include <lmdb.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <string>
#include <thread>

#include "mailbox.hpp"

typedef struct evp_md_st EVP_MD;

namespace mailgrid {

class LmdbDeliveryJournal final : public DeliveryJournal {
public:
    // Seconds since the epoch; tests put in a clock of their own.
    using Clock = std::function<std::uint64_t()>;

    // Opens (or makes) the environment in the directory path; entries live
    // for window. Throws std::runtime_error.
    LmdbDeliveryJournal(std::string path, std::chrono::seconds window, Clock clock = {});
    ~LmdbDeliveryJournal() override;
    LmdbDeliveryJournal(const LmdbDeliveryJournal&) = delete;
    LmdbDeliveryJournal& operator=(const LmdbDeliveryJournal&) = delete;

    std::string digest(std::string_view header, std::string_view message) const override;
    std::string id(std::string_view recipient, const std::string& digest) const override;
    std::optional<Entry> find(const std::string& id) override;
    void remember(const std::string& id, const Entry& entry) override;

    // Removes the entries older than the window (in batches, so that
    // deliveries are not held up); returns how many.
    std::size_t expire();
    // Flushes what MDB_NOSYNC left in memory.
    void flush();
    // Expires and flushes on a thread of its own until destroyed.
    void start_upkeep();

    const std::string& path() const { return path_; }

private:
    std::string sha256(std::initializer_list<std::string_view> parts, std::size_t keep) const;
    void open();
    void close();

    std::string path_;
    std::chrono::seconds window_;
    Clock clock_;
    MDB_env* env_ = nullptr;
    MDB_dbi dbi_ = 0;
    EVP_MD* sha256_ = nullptr;

    std::thread upkeep_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
};

}  // namespace mailgrid
