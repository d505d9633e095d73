// socketmap - codec for Postfix's and Sendmail's socketmap_table(5).
//
//   C: <len>:<name> <key>,
//   S: <len>:OK <value>, | NOTFOUND , | TEMP <why>, | PERM <why>,
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "util/result.hpp"

namespace mailgrid::socketmap {

inline constexpr std::size_t kMaxRequest = 100000;  // Postfix sends at most 10000
inline constexpr std::size_t kMaxReply = 100000;    // Postfix socketmap_max_reply_size

struct Request {
    bool ok = false;
    std::string name;
    std::string key;
    std::string reply;   // encoded error reply when !ok (may be empty: just close)
    bool close = false;
};

std::optional<Request> parse_request(std::string_view buf, std::size_t& consumed);

// Encoded reply. Never a bare "OK" (older Postfix reads it as not found):
// an empty value is NOTFOUND. Values over kMaxReply become TEMP.
std::string format_reply(const Lookup& result);

}  // namespace mailgrid::socketmap
