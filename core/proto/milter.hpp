// milter - the framing of the Sendmail milter protocol, and the checks an
// MTA's commands must pass before libmilter sees them.
//
//   <length: 4 bytes, big-endian> <command: 1 byte> <data: length - 1 bytes>
//
// mailgrid's milter is libmilter's (we do not implement the protocol's
// meaning), but libmilter trusts its peer: a macro command with an odd
// number of strings makes smfi_getsymval() read past the list and crash
// the process. A guard in front of libmilter frames every command with
// this codec and drops the connection on one libmilter would misread.
// Pure: bytes in, frames and verdicts out.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mailgrid::milter {

// libmilter's data limit is 65535 bytes, 1 MiB when the MTA negotiates
// SMFIP_MDS_1M; one more for the command byte.
inline constexpr std::size_t kMaxFrame = (1u << 20) + 1;

struct Frame {
    bool ok = false;
    char command = 0;
    std::string_view payload;  // into the buffer given to next_frame
    std::string error;         // !ok: why (close the connection)
};

// The frame at the front of buf. nullopt: incomplete, nothing consumed.
// A length of 0 or over kMaxFrame is an error (consumed: all of buf).
std::optional<Frame> next_frame(std::string_view buf, std::size_t& consumed);

// Why a command from the MTA is malformed (nullopt: libmilter may have
// it): an unknown command; connect without its host name, family, port
// and address; helo, mail, rcpt and unknown without NUL-terminated
// strings; a header that is not exactly name and value; a macro command
// for a stage that is not a command letter or whose strings do not pair up; option
// negotiation shorter than its three numbers.
std::optional<std::string> check_mta_command(char command, std::string_view payload);

// One frame on the wire.
std::string encode_frame(char command, std::string_view payload);

}  // namespace mailgrid::milter
