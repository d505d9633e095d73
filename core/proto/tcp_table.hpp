// tcp_table - codec for Postfix's tcp_table(5) lookup protocol.
//
//   C: get <%XX-encoded key>\n
//   S: 200 <%XX-encoded value>\n | 500 <text>\n | 400 <text>\n
//
// Pure: bytes in, requests out. Limits are those of the Postfix client:
// a reply longer than 4096 bytes (newline included) is an error there.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "util/result.hpp"

namespace mailgrid::tcp_table {

inline constexpr std::size_t kMaxReply = 4096;         // Postfix dict_tcp limit, '\n' included
inline constexpr std::size_t kMaxRequestLine = 32768;  // 4 KB keys triple in size when encoded

// Postfix hex_quote(): '%', whitespace, non-printable and bytes >= 0x80 as %XX.
std::string hex_quote(std::string_view in);
// Postfix hex_unquote(): nullopt on a '%' not followed by two hex digits.
std::optional<std::string> hex_unquote(std::string_view in);

struct Request {
    bool ok = false;     // a well-formed "get"
    std::string key;     // decoded key
    std::string reply;   // the error reply to send when !ok
    bool close = false;  // close the connection after replying
};

// Takes one request from the front of buf. nullopt: no complete line yet
// (consumed = 0). A line that would exceed kMaxRequestLine yields an error
// request that closes the connection.
std::optional<Request> parse_request(std::string_view buf, std::size_t& consumed);

// 200 / 500 / 400 reply line for a lookup outcome. A found value that does
// not fit in kMaxReply becomes a 400, which Postfix treats as "try again".
std::string format_reply(const Lookup& result);

}  // namespace mailgrid::tcp_table
