// receive_buffer - bytes a peer has sent and a codec has not consumed yet,
// for every connection that feeds the pure codecs (plain or under TLS).
// Room for the next read is made without zero-filling on every read: the
// buffer grows once, then slides unconsumed bytes to the front when its
// tail runs out. Reads never take it past its limit (only append() may:
// bytes that were already read elsewhere).
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

namespace mailgrid {

class ReceiveBuffer {
public:
    explicit ReceiveBuffer(std::size_t limit) : limit_(limit) {}

    // Received and not yet consumed.
    std::string_view data() const { return {bytes_.data() + begin_, end_ - begin_}; }
    void consume(std::size_t n) {
        begin_ += n;
        if (begin_ == end_) begin_ = end_ = 0;
    }
    // Where the next read may put its bytes; empty when data() is at the
    // limit. commit() then says how many it put there.
    std::span<char> room();
    void commit(std::size_t n) { end_ += n; }
    // Bytes that arrived another way (read before the connection object
    // existed); may take the buffer past its limit.
    void append(std::string_view bytes);
    // Drops everything received; wipe() also overwrites the memory (it
    // held a password).
    void clear() { begin_ = end_ = 0; }
    void wipe();

private:
    std::size_t limit_;
    std::vector<char> bytes_;  // [begin_, end_) unconsumed
    std::size_t begin_ = 0, end_ = 0;
};

}  // namespace mailgrid
