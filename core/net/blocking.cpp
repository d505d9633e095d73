#include "net/asio.hpp"

namespace mailgrid {

asio::thread_pool& blocking_pool() {
    static asio::thread_pool pool(4);
    return pool;
}

}  // namespace mailgrid
