#include "hold.hpp"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "cache/redis_client.hpp"
#include "lookup/hold_list.hpp"
#include "util/strings.hpp"

namespace mailgrid::admin {

namespace {

using Clock = std::chrono::steady_clock;

class RedisHold : public HoldStore {
public:
    RedisHold(RedisOptions o, std::string prefix, std::vector<std::string> tables)
        : options_(std::move(o)), prefix_(std::move(prefix)), tables_(std::move(tables)) {}
    ~RedisHold() override {
        if (ctx_) redisFree(ctx_);
    }

    bool change(const std::vector<std::string>& add, const std::vector<std::string>& remove, std::uint64_t* generation,
                std::string* why) override {
        std::vector<std::vector<std::string>> cmds;
        cmds.push_back({"MULTI"});
        for (const auto& a : add) cmds.push_back({"SADD", prefix_ + "hold", HoldList::normalize(a)});
        for (const auto& a : remove) cmds.push_back({"SREM", prefix_ + "hold", HoldList::normalize(a)});
        cmds.push_back({"INCR", prefix_ + "hold:gen"});
        cmds.push_back({"EXEC"});
        redisReply* last = nullptr;
        for (auto& c : cmds) {
            if (last) freeReplyObject(last);
            last = command(c, why);
            if (!last) return false;
        }
        bool ok = last->type == REDIS_REPLY_ARRAY && last->elements > 0 &&
                  last->element[last->elements - 1]->type == REDIS_REPLY_INTEGER;
        if (ok) *generation = static_cast<std::uint64_t>(last->element[last->elements - 1]->integer);
        else *why = "Redis refused the hold list change";
        freeReplyObject(last);
        return ok;
    }

    bool wait_taken_up(std::uint64_t generation, std::chrono::milliseconds limit, std::string* why) override {
        auto deadline = Clock::now() + limit;
        for (;;) {
            std::vector<std::string> behind;
            std::string cursor = "0";
            do {
                auto* r = command({"SCAN", cursor, "MATCH", prefix_ + "hold:seen:*", "COUNT", "1000"}, why);
                if (!r) return false;
                if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                    freeReplyObject(r);
                    *why = "unexpected SCAN reply";
                    return false;
                }
                cursor = r->element[0]->str ? r->element[0]->str : "0";
                std::vector<std::string> keys;
                for (std::size_t i = 0; i < r->element[1]->elements; ++i) keys.push_back(r->element[1]->element[i]->str);
                freeReplyObject(r);
                for (const auto& k : keys) {
                    auto* v = command({"GET", k}, why);
                    if (!v) return false;
                    if (v->type == REDIS_REPLY_STRING) {
                        auto g = parse_int(std::string_view(v->str, v->len));
                        if (!g || static_cast<std::uint64_t>(*g) < generation)
                            behind.push_back(k.substr(prefix_.size() + 10));
                    }
                    freeReplyObject(v);
                }
            } while (cursor != "0");
            if (behind.empty()) return true;
            if (Clock::now() >= deadline) {
                *why = "frontends still on an older hold list: " + behind.front() +
                       (behind.size() > 1 ? " and " + std::to_string(behind.size() - 1) + " more" : "");
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }

    bool purge_cached(const std::vector<std::string>& keys, std::string* why) override {
        for (const auto& key : keys) {
            std::string k = to_lower(key);
            if (!tables_.empty()) {
                for (const auto& t : tables_) {
                    auto* r = command({"DEL", prefix_ + "t:" + t + ":" + k}, why);
                    if (!r) return false;
                    freeReplyObject(r);
                }
                continue;
            }
            std::string cursor = "0";
            do {
                auto* r = command({"SCAN", cursor, "MATCH", prefix_ + "t:*:" + glob_escape(k), "COUNT", "1000"}, why);
                if (!r) return false;
                cursor = r->element[0]->str;
                std::vector<std::string> found;
                for (std::size_t i = 0; i < r->element[1]->elements; ++i) found.push_back(r->element[1]->element[i]->str);
                freeReplyObject(r);
                for (const auto& f : found) {
                    auto* d = command({"DEL", f}, why);
                    if (!d) return false;
                    freeReplyObject(d);
                }
            } while (cursor != "0");
        }
        return true;
    }

    std::vector<std::string> held(std::string* why) override {
        std::vector<std::string> out;
        auto* r = command({"SMEMBERS", prefix_ + "hold"}, why);
        if (!r) return out;
        for (std::size_t i = 0; i < r->elements; ++i) out.push_back(r->element[i]->str);
        freeReplyObject(r);
        std::sort(out.begin(), out.end());
        return out;
    }

    std::string describe() const override {
        return "redis " + (options_.unix_path.empty() ? options_.host + ":" + std::to_string(options_.port)
                                                      : options_.unix_path);
    }

private:
    static std::string glob_escape(const std::string& s) {
        std::string out;
        for (char c : s) {
            if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
            out += c;
        }
        return out;
    }

    redisReply* command(const std::vector<std::string>& args, std::string* why) {
        if (!ctx_ && !connect(why)) return nullptr;
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        auto* r = static_cast<redisReply*>(redisCommandArgv(ctx_, static_cast<int>(args.size()), argv.data(), lens.data()));
        if (!r) {
            *why = std::string("Redis: ") + (ctx_->errstr[0] ? ctx_->errstr : "no reply");
            redisFree(ctx_);
            ctx_ = nullptr;
            return nullptr;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            *why = std::string("Redis: ") + std::string(r->str, r->len);
            freeReplyObject(r);
            return nullptr;
        }
        return r;
    }

    bool connect(std::string* why) {
        timeval tv{static_cast<time_t>(std::max<long long>(1, options_.timeout.count() / 1000)) + 2, 0};
        ctx_ = options_.unix_path.empty() ? redisConnectWithTimeout(options_.host.c_str(), options_.port, tv)
                                          : redisConnectUnixWithTimeout(options_.unix_path.c_str(), tv);
        if (!ctx_ || ctx_->err) {
            *why = "Redis " + describe() + ": " + (ctx_ ? ctx_->errstr : "cannot allocate");
            if (ctx_) redisFree(ctx_);
            ctx_ = nullptr;
            return false;
        }
        redisSetTimeout(ctx_, tv);
        if (!options_.password.empty() || options_.db) {
            std::vector<std::vector<std::string>> setup;
            if (!options_.password.empty()) setup.push_back({"AUTH", options_.password});
            if (options_.db) setup.push_back({"SELECT", std::to_string(options_.db)});
            for (auto& s : setup) {
                auto* r = command(s, why);
                if (!r) return false;
                freeReplyObject(r);
            }
        }
        return true;
    }

    RedisOptions options_;
    std::string prefix_;
    std::vector<std::string> tables_;
    redisContext* ctx_ = nullptr;
};

class FileHold : public HoldStore {
public:
    FileHold(std::string path, std::chrono::milliseconds poll) : path_(std::move(path)), poll_(poll) {}

    bool change(const std::vector<std::string>& add, const std::vector<std::string>& remove, std::uint64_t* generation,
                std::string* why) override {
        int lock = ::open((path_ + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (lock < 0) return fail(path_ + ".lock", why);
        ::flock(lock, LOCK_EX);
        HoldFile f = read();
        std::set<std::string> set(f.addresses.begin(), f.addresses.end());
        for (const auto& a : add) set.insert(HoldList::normalize(a));
        for (const auto& a : remove) set.erase(HoldList::normalize(a));
        f.addresses.assign(set.begin(), set.end());
        ++f.generation;
        std::string tmp = path_ + ".tmp";
        std::ofstream out(tmp, std::ios::trunc);
        out << format_hold_file(f);
        out.close();
        bool ok = out.good() && ::rename(tmp.c_str(), path_.c_str()) == 0;
        if (!ok) fail(path_, why);
        ::close(lock);
        *generation = f.generation;
        return ok;
    }

    bool wait_taken_up(std::uint64_t, std::chrono::milliseconds, std::string*) override {
        // ldap_tablemap stats the file every tablemap_hold_poll.
        std::this_thread::sleep_for(2 * poll_ + std::chrono::milliseconds(100));
        return true;
    }

    bool purge_cached(const std::vector<std::string>&, std::string*) override { return true; }

    std::vector<std::string> held(std::string*) override { return read().addresses; }

    std::string describe() const override { return "file " + path_; }

private:
    HoldFile read() const {
        std::ifstream in(path_);
        std::stringstream s;
        s << in.rdbuf();
        return parse_hold_file(s.str());
    }
    static bool fail(const std::string& what, std::string* why) {
        *why = what + ": " + std::strerror(errno);
        return false;
    }

    std::string path_;
    std::chrono::milliseconds poll_;
};

}  // namespace

std::unique_ptr<HoldStore> HoldStore::open(const SuiteConfig& c, std::string* why) {
    std::chrono::milliseconds poll{1000};
    if (c.has("tablemap_hold_poll")) {
        if (auto d = parse_duration(c.raw("tablemap_hold_poll"))) poll = *d;
    }
    if (auto ro = RedisOptions::from_config(c)) {
        std::vector<std::string> tables;
        if (c.has("tablemap_tables"))
            for (const auto& item : split_list(c.raw("tablemap_tables")))
                if (auto eq = item.find('='); eq != std::string::npos) tables.push_back(item.substr(0, eq));
        return std::make_unique<RedisHold>(*ro, c.get("redis_prefix"), tables);
    }
    if (!c.get("hold_file").empty()) return std::make_unique<FileHold>(c.get("hold_file"), poll);
    *why = "no hold list: set redis_server (frontends sharing Redis) or hold_file (one host)";
    return nullptr;
}

}  // namespace mailgrid::admin
