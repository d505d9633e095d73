// receive_buffer - see receive_buffer.hpp.
#include "net/receive_buffer.hpp"

#include <algorithm>
#include <cstring>

#include "util/secure.hpp"

namespace mailgrid {

namespace {
// Below this much free tail, make room before reading; a read of less
// would cost a system call for little.
constexpr std::size_t kMinRead = 4096;
constexpr std::size_t kFirstSize = 16384;
}  // namespace

std::span<char> ReceiveBuffer::room() {
    if (end_ - begin_ >= limit_) return {};
    if (bytes_.size() - end_ < kMinRead) {
        if (begin_ > 0) {
            std::memmove(bytes_.data(), bytes_.data() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        if (bytes_.size() - end_ < kMinRead)
            bytes_.resize(std::max(bytes_.size(), std::min(limit_, std::max(bytes_.size() * 2, kFirstSize))));
    }
    std::size_t n = std::min(bytes_.size() - end_, limit_ - (end_ - begin_));
    return {bytes_.data() + end_, n};
}

void ReceiveBuffer::append(std::string_view bytes) {
    if (bytes.empty()) return;
    if (bytes_.size() - end_ < bytes.size()) bytes_.resize(std::max(end_ + bytes.size(), kFirstSize));
    std::memcpy(bytes_.data() + end_, bytes.data(), bytes.size());
    end_ += bytes.size();
}

void ReceiveBuffer::wipe() {
    secure_wipe(bytes_.data(), bytes_.size());
    clear();
}

}  // namespace mailgrid
