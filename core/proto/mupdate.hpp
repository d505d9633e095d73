// mupdate - the MUPDATE protocol of Cyrus Murder (RFC 3656), pure: bytes in,
// events out, and the encoders for both directions.
//
//   C: X1 ACTIVATE {10+}\r\nuser.alice {23+}\r\nmail1!default {21+}\r\nalice\tlrswipkxtecdan\t\r\n
//   S: X1 OK "done"
//   C: U01 UPDATE
//   S: U01 MAILBOX {10+}\r\nuser.alice {13+}\r\nmail1!default {21+}\r\n...\r\n
//   S: U01 OK "streaming starts"
//
// Commands and responses share one grammar: a tag, a word, then strings,
// each an atom, a quoted string ("..." with \" and \\ as the only escapes)
// or a literal ({n}: synchronising, the server answers "+ go ahead" before
// the client sends the n bytes; {n+}: non-synchronising). Cyrus sends every
// data string as a {n+} literal and expects exactly one string after OK,
// NO, BAD and BYE, so the encoders here always do the same.
//
// A Reader takes what the peer sent and returns one event at a time: a
// complete line, a request to send "+ go ahead", or an error with the tag to
// answer BAD to. After an error it skips the rest of the bad command
// (including the literals announced on it) by itself, so one malformed
// command never desynchronises the ones after it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailgrid::mupdate {

// RFC 3656 asks for lines of at least 1024 octets and literals of at least
// 4096; Cyrus's own master limits neither. These are generous for mailbox
// names (Cyrus: 490 bytes) and ACLs, and bound what one command can make us
// buffer.
inline constexpr std::size_t kMaxLine = 8192;       // one line outside literals
inline constexpr std::size_t kMaxLiteral = 65536;   // one literal
inline constexpr std::size_t kMaxCommand = 262144;  // a whole command, literals included
inline constexpr std::size_t kMaxArgs = 40;         // UPDATE takes up to 30 server names
inline constexpr std::size_t kMaxTag = 64;
// A non-synchronising literal over kMaxLiteral is read and dropped up to
// this size; beyond it the connection is closed.
inline constexpr std::size_t kMaxSkip = 16u << 20;

inline constexpr std::string_view kGoAhead = "+ go ahead\r\n";

struct Line {
    std::string tag;
    std::string word;               // upper-cased: "ACTIVATE", "OK", "MAILBOX"
    std::vector<std::string> args;  // strings after the word, decoded
    bool operator==(const Line&) const = default;
};

struct Event {
    enum class Kind {
        Line,      // a complete command or response in `line`
        Continue,  // a synchronising literal waits: send kGoAhead, then read more
        Error,     // malformed: answer `tag BAD "message"`
    } kind = Kind::Line;
    mupdate::Line line;
    std::string tag;      // Error: the tag if one was read, "*" otherwise
    std::string message;  // Error: what was wrong
    bool fatal = false;   // Error: the stream cannot be followed any more; close after answering
    bool operator==(const Event&) const = default;
};

class Reader {
public:
    // server_side: we receive commands, so synchronising literals need our
    // go-ahead. A client reading responses never sends one.
    explicit Reader(bool server_side = true) : server_side_(server_side) {}

    // The next event from the front of buf, or nullopt when more input is
    // needed. consumed is what the event took; it can be > 0 with nullopt
    // while the rest of a bad command is being skipped. A Continue event
    // consumes nothing: the command is parsed again once its literal came.
    std::optional<Event> next(std::string_view buf, std::size_t& consumed);

    // Skipping the rest of a bad command (for tests and callers that want to
    // know why input is dropped).
    bool skipping() const { return skip_ != Skip::None; }

private:
    enum class Skip { None, Line, Literal };
    std::optional<Event> parse(std::string_view buf, std::size_t& consumed);
    std::optional<Event> fail(std::string tag, std::string message, std::size_t at, std::size_t& consumed,
                              bool fatal = false);
    // Drops skipped input from the front of buf; true once the bad command
    // is behind us.
    bool skip(std::string_view buf, std::size_t& consumed);

    bool server_side_;
    std::size_t granted_ = 0;  // synchronising literals of this command already answered
    Skip skip_ = Skip::None;
    std::size_t skip_left_ = 0;  // Literal: bytes still to drop
    std::string skip_tail_;      // Line: the last bytes of the line, to spot "{n+}" at its end
};

// One line of text (a SASL response: base64 or "*") without its CRLF or LF;
// nullopt when incomplete. Longer than max: *too_long is set and the line
// consumed.
std::optional<std::string> next_text_line(std::string_view buf, std::size_t& consumed, std::size_t max,
                                          bool* too_long);

// --- encoders ---------------------------------------------------------

// True if s can be sent as an atom (tags, command words).
bool is_atom(std::string_view s);
// {n+}CRLF and the bytes: what Cyrus uses for every data string.
void append_literal(std::string& out, std::string_view s);
// A quoted string for response texts: bytes a quoted string cannot carry
// (CR, LF, NUL, '"', '\', 8-bit) become '?'; never empty on the wire ("").
void append_quoted(std::string& out, std::string_view text);

// "tag WORD \"text\"\r\n" for OK, NO, BAD, BYE.
std::string status(std::string_view tag, std::string_view word, std::string_view text);
void append_status(std::string& out, std::string_view tag, std::string_view word, std::string_view text);
void append_mailbox(std::string& out, std::string_view tag, std::string_view name, std::string_view location,
                    std::string_view acl);
void append_reserve(std::string& out, std::string_view tag, std::string_view name, std::string_view location);
void append_delete(std::string& out, std::string_view tag, std::string_view name);
// A client command with every argument as a literal, as Cyrus's client
// sends them.
std::string command(std::string_view tag, std::string_view word, const std::vector<std::string>& args);

// The capability banner: "* AUTH", "* STARTTLS", "* PARTIAL-UPDATE" and
// "* OK MUPDATE ..." with the server name and what we are.
std::string banner(const std::vector<std::string>& mechanisms, bool starttls, std::string_view servername,
                   std::string_view implementation, std::string_view version, std::string_view role);

// --- Cyrus's mailbox order ---------------------------------------------

// LIST and UPDATE must come in Cyrus's mailboxes.db order, which ctl_mboxlist
// -m walks in step with its own list: bytewise, with the hierarchy separator
// '.' as 0x1F (user.alice, user.alice.Sent, user.alice-x). This key sorts
// that way with a plain byte comparison.
std::string sort_key(std::string_view name);
std::string name_from_sort_key(std::string_view key);
bool cyrus_less(std::string_view a, std::string_view b);

}  // namespace mailgrid::mupdate
