// lmdb_env - opening the LMDB environment of a file: store (see lmdb_env.hpp).
#include "location/lmdb_env.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace mailgrid::location {

std::string lmdb_error(const char* what, int rc) { return std::string(what) + ": " + mdb_strerror(rc); }

namespace {

void make_dirs(const std::string& path) {
    for (std::size_t i = 1; i <= path.size(); ++i) {
        if (i != path.size() && path[i] != '/') continue;
        std::string part = path.substr(0, i);
        if (::mkdir(part.c_str(), 0750) != 0 && errno != EEXIST)
            throw std::runtime_error("mkdir " + part + ": " + std::strerror(errno));
    }
}

}  // namespace

LmdbEnv::LmdbEnv(std::string path, bool read_only, std::uint64_t map_size, bool sync) : path_(std::move(path)) {
    if (path_.empty() || path_[0] != '/') throw std::runtime_error("file store needs an absolute path: " + path_);
    if (!read_only) {
        make_dirs(path_);
        std::string lock = path_ + "/bridge.lock";
        lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
        if (lock_fd_ < 0) throw std::runtime_error("open " + lock + ": " + std::strerror(errno));
        if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
            ::close(lock_fd_);
            lock_fd_ = -1;
            throw std::runtime_error(path_ + " is in use by another mupdate_bridge");
        }
    } else {
        struct stat st {};
        std::string data = path_ + "/data.mdb";
        if (::stat(data.c_str(), &st) != 0) throw std::runtime_error("no mailbox list at " + path_ + " (" + std::strerror(errno) + ")");
    }
    int rc = mdb_env_create(&env_);
    if (rc != 0) throw std::runtime_error(lmdb_error("mdb_env_create", rc));
    auto fail = [&](const char* what, int code) {
        std::string msg = path_ + ": " + lmdb_error(what, code);
        mdb_env_close(env_);
        env_ = nullptr;
        if (lock_fd_ >= 0) ::close(lock_fd_);
        lock_fd_ = -1;
        throw std::runtime_error(msg);
    };
    mdb_env_set_maxdbs(env_, 4);
    // Readers are the command line tools and other programs' lookups.
    mdb_env_set_maxreaders(env_, 512);
    if (!read_only && (rc = mdb_env_set_mapsize(env_, map_size)) != 0) fail("mdb_env_set_mapsize", rc);
    unsigned flags = MDB_NOTLS;
    if (read_only) flags |= MDB_RDONLY;
    if (!sync) flags |= MDB_NOSYNC;
    if ((rc = mdb_env_open(env_, path_.c_str(), flags, 0640)) != 0) fail("mdb_env_open", rc);

    MDB_txn* txn = nullptr;
    if ((rc = mdb_txn_begin(env_, nullptr, read_only ? MDB_RDONLY : 0, &txn)) != 0) fail("mdb_txn_begin", rc);
    unsigned dbi_flags = read_only ? 0 : MDB_CREATE;
    if ((rc = mdb_dbi_open(txn, "mailboxes", dbi_flags, &mailboxes_)) != 0 ||
        (rc = mdb_dbi_open(txn, "users", dbi_flags, &users_)) != 0 ||
        (!read_only && (rc = mdb_dbi_open(txn, "meta", dbi_flags, &meta_)) != 0)) {
        mdb_txn_abort(txn);
        fail("mdb_dbi_open", rc);
    }
    if ((rc = mdb_txn_commit(txn)) != 0) fail("mdb_txn_commit", rc);
}

LmdbEnv::~LmdbEnv() {
    if (env_) mdb_env_close(env_);
    if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::optional<std::string> LmdbEnv::get(MDB_dbi dbi, std::string_view key) const {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
    if (rc != 0) throw std::runtime_error(lmdb_error("mdb_txn_begin", rc));
    MDB_val k{key.size(), const_cast<char*>(key.data())}, v{};
    rc = mdb_get(txn, dbi, &k, &v);
    std::optional<std::string> out;
    if (rc == 0) out.emplace(static_cast<const char*>(v.mv_data), v.mv_size);
    mdb_txn_abort(txn);
    if (rc != 0 && rc != MDB_NOTFOUND) throw std::runtime_error(lmdb_error("mdb_get", rc));
    return out;
}

}  // namespace mailgrid::location
