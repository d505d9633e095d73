// hold - the writer's side of the hold list (core/lookup/hold_list.hpp):
// "mailgrid user move" puts a user's addresses on it so that every
// frontend's ldap_tablemap defers their mail, waits until each frontend
// has taken the new list up, and purges the lookups they cached.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/suite_config.hpp"

namespace mailgrid::admin {

class HoldStore {
public:
    virtual ~HoldStore() = default;
    // Redis when redis_server is set, else hold_file; nullptr and *why
    // when neither is configured.
    static std::unique_ptr<HoldStore> open(const SuiteConfig& c, std::string* why);

    // Each change bumps the generation; every frontend empties its lookup
    // cache when it sees a new one.
    virtual bool change(const std::vector<std::string>& add, const std::vector<std::string>& remove,
                        std::uint64_t* generation, std::string* why) = 0;
    // Until every frontend obeys generation (false and *why on timeout).
    virtual bool wait_taken_up(std::uint64_t generation, std::chrono::milliseconds limit, std::string* why) = 0;
    // Shared-cache entries of these lookup keys, in every table, removed.
    virtual bool purge_cached(const std::vector<std::string>& keys, std::string* why) = 0;
    virtual std::vector<std::string> held(std::string* why) = 0;
    virtual std::string describe() const = 0;
};

}  // namespace mailgrid::admin
