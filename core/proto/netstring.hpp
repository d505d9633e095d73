// netstring - D. J. Bernstein's "<length>:<bytes>," framing.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mailgrid::netstring {

struct Frame {
    bool ok = false;
    std::string_view payload;  // points into the input buffer
    std::string error;         // when !ok: the framing is broken, close
};

// Takes one netstring from the front of buf. nullopt: incomplete (consumed
// = 0). A frame longer than max_payload, or broken syntax, is an error.
std::optional<Frame> parse(std::string_view buf, std::size_t max_payload, std::size_t& consumed);

std::string encode(std::string_view payload);

}  // namespace mailgrid::netstring
