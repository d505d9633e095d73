// imap - the client side of IMAP4rev1 (RFC 3501) that the mailgrid admin
// command needs to talk to a Cyrus backend as its administrator: commands
// with quoted or literal arguments, and the server's responses split into
// whole responses (literals included) with the tagged completion found.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailgrid::imap {

inline constexpr std::size_t kMaxResponse = 1 << 20;

struct Response {
    std::string tag;     // "*" for untagged, "+" for a continuation
    std::string status;  // OK NO BAD PREAUTH BYE (upper case); "" otherwise
    std::string text;    // the rest of the first line
    std::string raw;     // the whole response: every line and literal, CRLFs included
    std::size_t consumed = 0;
};

enum class Parse { Complete, Incomplete, Invalid };

// The next whole response at the front of buffer: its first line and any
// literal ({n}CRLF + n bytes) it announces, up to the final CRLF.
// Invalid for lines over kMaxResponse or malformed literal counts.
Parse next_response(std::string_view buffer, Response& out);

// An argument as an IMAP astring: an atom when it may be one, else a
// quoted string; nullopt if it needs a literal (CR, LF, NUL, 8-bit).
std::optional<std::string> quote(std::string_view arg);

// The words of a response line: atoms, quoted strings (unquoted) and
// parenthesised lists (kept whole, parentheses included).
std::vector<std::string> tokens(std::string_view line);

// The literals of a response ({n}CRLF + n bytes), in order.
std::vector<std::string_view> literals(std::string_view raw);

// "TAG COMMAND arg arg\r\n" with each argument quoted as needed; nullopt if
// an argument cannot be quoted.
std::optional<std::string> command(std::string_view tag, std::string_view name,
                                   const std::vector<std::string>& args);

}  // namespace mailgrid::imap
