// fd_io - see fd_io.hpp.
#include "util/fd_io.hpp"

#include <unistd.h>

#include <cerrno>

namespace mailgrid {

bool write_all(int fd, std::string_view data, int* error) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            *error = errno;
            return false;
        }
        if (n == 0) {
            *error = EIO;
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

}  // namespace mailgrid
