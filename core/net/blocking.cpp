#include "net/asio.hpp"

#include <atomic>

namespace mailgrid {

namespace {
std::atomic<bool> g_pool_made{false};
}

asio::thread_pool& blocking_pool() {
    static asio::thread_pool pool(4);
    g_pool_made.store(true, std::memory_order_relaxed);
    return pool;
}

void finish_blocking_work() {
    if (g_pool_made.load(std::memory_order_relaxed)) blocking_pool().join();
}

}  // namespace mailgrid
