// saslauthd - the "mux" protocol of Cyrus SASL's saslauthd.
//
//   C: <len16><login> <len16><password> <len16><service> <len16><realm>
//      [<len16><client_addr>]          (cyrus-sasl master adds the 5th)
//   S: <len16>OK | <len16>NO <text>
// One request per connection. Lengths are big-endian 16-bit; each string
// over 256 bytes is refused, as saslauthd refuses it.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mailgrid::saslauthd {

inline constexpr std::size_t kMaxField = 256;

struct Request {
    std::string login, password, service, realm, client_addr;
    bool has_client_addr = false;
};

struct Parsed {
    enum class State { Incomplete, Four, Five, TooLong } state = State::Incomplete;
    Request request;
    std::size_t consumed = 0;
};

// Parses what has arrived. Four: the four classic fields are complete and
// nothing follows yet (a fifth may still come); Five: all five. The caller
// wipes request.password when done with it.
Parsed parse(std::string_view buf);

std::string reply(std::string_view text);  // "OK" or "NO ..."

}  // namespace mailgrid::saslauthd
