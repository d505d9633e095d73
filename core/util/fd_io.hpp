// fd_io - writing to a file descriptor to the end, the way every program
// here needs it: a short write and EINTR are not errors.
#pragma once

#include <string_view>

namespace mailgrid {

// Writes all of data. False with *error set (EIO for a write that wrote
// nothing) when it cannot; what was written before stays written.
bool write_all(int fd, std::string_view data, int* error);

}  // namespace mailgrid
