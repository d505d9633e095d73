// store_impl - the store implementations behind open_store (store.hpp);
// internal to core/location.
#pragma once

#include <memory>
#include <string>

#include "cache/redis_client.hpp"
#include "location/store.hpp"

namespace mailgrid::location {

std::unique_ptr<MailboxStore> open_file_store(const StoreOptions& options, std::string path);
std::unique_ptr<MailboxStore> open_redis_store(asio::io_context& io, const StoreOptions& options, RedisOptions redis,
                                               std::string key_prefix);

}  // namespace mailgrid::location
