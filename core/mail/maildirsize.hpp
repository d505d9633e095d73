// maildirsize - the Maildir++ quota file, pure: parse, format, and the
// rules for when to count the Maildir again, as Courier's maildirquota(7)
// and Dovecot's maildir++ quota backend read and write it.
//
//   1000000S,1000C                 <- the limit: bytes (S), messages (C)
//             26            1      <- one line per change (Courier pads
//   -2048 -1                          to 12, Dovecot does not)
//
// Usage is the sum of all lines after the first. Deliveries append one
// line with one write(2) on an O_APPEND descriptor; a recount replaces
// the file with the limit and one line of totals.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mailgrid::maildirsize {

// Readers fill a 5120-byte buffer: a file that size or larger is recounted.
inline constexpr std::size_t kRecountSize = 5120;
// An over-quota file with a single line is trusted for this long.
inline constexpr std::chrono::seconds kStaleAge{15 * 60};

struct Limit {
    std::uint64_t bytes = 0;     // 0 = no limit
    std::uint64_t messages = 0;  // 0 = no limit
    bool unlimited() const { return bytes == 0 && messages == 0; }
    bool operator==(const Limit&) const = default;
};

// "1000000S,1000C", "1000000S", "1000C", "0S" (no limit); spaces around
// fields are ignored. A bare number is bytes (an LDAP quota attribute).
// nullopt (and *why) for anything else.
std::optional<Limit> parse_limit(std::string_view text, std::string* why = nullptr);
// The header line's text (no newline): "0S" when unlimited, as Dovecot
// writes it.
std::string format_limit(const Limit& limit);

struct Usage {
    std::int64_t bytes = 0;
    std::int64_t messages = 0;
    bool operator==(const Usage&) const = default;
};

struct Parsed {
    bool valid = false;  // a header and only well-formed lines, no overflow
    std::string error;   // why not, for logs
    Limit limit;
    Usage usage;         // sums of the lines after the header
    std::size_t lines = 0;  // lines after the header
};

// The file's contents (the caller reads at most kRecountSize bytes; a
// larger file is recounted anyway). Any whitespace separates numbers; a
// last line without its newline (a torn append) makes the file invalid.
Parsed parse(std::string_view contents);

// One change line as Courier writes it: "%12lld %12lld\n".
std::string format_line(std::int64_t bytes, std::int64_t messages);
// A recounted file: the limit and one line of totals.
std::string format_file(const Limit& limit, const Usage& usage);

// Would adding (bytes, messages) to usage exceed the limit?
bool exceeds(const Limit& limit, const Usage& usage, std::int64_t bytes, std::int64_t messages);

// What is known about the file on disk before a delivery.
struct FileState {
    bool exists = false;
    std::size_t size = 0;
    std::chrono::seconds age{0};  // now - mtime
    Parsed parsed;
};

// Why the Maildir must be counted again before adding (bytes, messages)
// under `wanted` (nullopt: no recount needed). The rules of maildirquota(7):
// the file is missing or unreadable, has grown to kRecountSize, sums to
// something negative, or says the delivery would exceed the quota while
// it has more than one line or is older than kStaleAge. Also when wanted
// is a different limit than the file's (the directory changed it).
std::optional<std::string> recount_reason(const FileState& file, const std::optional<Limit>& wanted,
                                          std::int64_t bytes, std::int64_t messages);

}  // namespace mailgrid::maildirsize
