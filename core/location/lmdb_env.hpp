// lmdb_env - the LMDB environment of a file: store, shared by the bridge
// (the one writer) and every reader (command line, webmail_locator).
//
// Layout: PATH/data.mdb and PATH/lock.mdb with three named databases,
// "mailboxes" (key: the name in Cyrus order, see mupdate::sort_key; value: a
// location::encode record), "users" (key: user, value: backend server) and
// "meta" (the writer's bookkeeping: how much of its log is applied).
// PATH/bridge.lock is held (flock) by the writer so that two bridges never
// write one list; PATH/wal is the writer's log (file_store.cpp).
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mailgrid::location {

class LmdbEnv {
public:
    // Throws std::runtime_error. A writer creates PATH if needed; a reader
    // needs the writer to have run once.
    LmdbEnv(std::string path, bool read_only, std::uint64_t map_size, bool sync);
    ~LmdbEnv();
    LmdbEnv(const LmdbEnv&) = delete;
    LmdbEnv& operator=(const LmdbEnv&) = delete;

    MDB_env* env() const { return env_; }
    MDB_dbi mailboxes() const { return mailboxes_; }
    MDB_dbi users() const { return users_; }
    MDB_dbi meta() const { return meta_; }  // writers only
    const std::string& path() const { return path_; }

    // One value of a database in its own read transaction: nullopt if
    // absent. Throws std::runtime_error on LMDB errors.
    std::optional<std::string> get(MDB_dbi dbi, std::string_view key) const;

private:
    std::string path_;
    MDB_env* env_ = nullptr;
    MDB_dbi mailboxes_ = 0, users_ = 0, meta_ = 0;
    int lock_fd_ = -1;
};

// "mdb_put: MDB_MAP_FULL: Environment mapsize limit reached"
std::string lmdb_error(const char* what, int rc);

}  // namespace mailgrid::location
