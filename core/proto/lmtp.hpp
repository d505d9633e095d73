// lmtp - the server side of LMTP (RFC 2033), pure: bytes in, events out.
//
//   S: 220 host LMTP ready          C: LHLO mx.example.net
//   S: 250-host / 250-PIPELINING / 250-ENHANCEDSTATUSCODES / 250-8BITMIME / 250 SIZE n
//   C: MAIL FROM:<a@b>  RCPT TO:<joe@ex>  RCPT TO:<ann@ex>  DATA
//   S: 250 2.1.0 ok     250 2.1.5 ok      250 2.1.5 ok      354 go ahead
//   C: ... message ... CRLF . CRLF
//   S: 250 2.0.0 joe delivered       452 4.2.2 ann mailbox full   (one per accepted RCPT)
//
// The session answers what needs no decision (LHLO, MAIL, RSET, NOOP,
// QUIT, sequence and syntax errors) and hands the application one event
// per recipient to accept or refuse, and the message once the final "."
// arrives; the application then writes one reply per accepted recipient.
// Message lines are stored with LF line ends and dots unstuffed, so the
// text can go to a Maildir as it is. Commands may be pipelined: feed the
// session what the peer sent and take events until it wants more input.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailgrid::lmtp {

// RFC 5321 allows 512 bytes for a command line; Postfix sends more with
// long addresses and ESMTP parameters. Longer lines are refused.
inline constexpr std::size_t kMaxCommandLine = 4096;
// A message line longer than this is taken in pieces (a line has no limit).
inline constexpr std::size_t kMaxDataPiece = 65536;

struct Options {
    std::string hostname = "localhost";
    std::size_t max_message_size = 50u << 20;  // advertised as SIZE; larger messages get 552
    std::size_t max_recipients = 1000;
};

struct Event {
    enum class Kind {
        Reply,      // the session answered by itself: send `reply`
        Recipient,  // RCPT TO: decide with Session::recipient(), then reply
        Message,    // the message is complete: deliver, one reply per recipient
    } kind = Kind::Reply;
    std::string reply;      // Reply: CRLF-terminated, possibly several lines
    bool close = false;     // Reply: close the connection once it is sent
    std::string address;    // Recipient: the path without '<' '>'
    std::string params;     // Recipient: ESMTP parameters after the path
    bool operator==(const Event&) const = default;
};

class Session {
public:
    explicit Session(Options options);

    std::string greeting() const;

    // Takes the next event from the front of buf. nullopt when more input
    // is needed; consumed may then still be > 0 (message text already
    // taken in). A Recipient event must be answered with recipient()
    // before next() is called again.
    std::optional<Event> next(std::string_view buf, std::size_t& consumed);

    // The application's verdict on the last Recipient event.
    void recipient(bool accepted);

    // After a Message event: the envelope and the text.
    const std::string& sender() const { return sender_; }
    const std::vector<std::string>& recipients() const { return recipients_; }
    const std::string& message() const { return message_; }
    std::string take_message() { return std::move(message_); }
    // Ends the transaction after the application replied to a Message.
    void end_transaction();

    bool in_data() const { return state_ == State::Data; }
    bool in_transaction() const { return mail_given_; }

private:
    enum class State { Command, Data, DiscardLine };
    std::optional<Event> command(std::string_view line);
    std::optional<Event> data(std::string_view buf, std::size_t& consumed);
    Event finish_data();

    Options options_;
    State state_ = State::Command;
    bool greeted_ = false;
    bool mail_given_ = false;
    bool awaiting_verdict_ = false;
    bool too_big_ = false;
    bool at_line_start_ = true;
    std::string sender_;
    std::vector<std::string> recipients_;
    std::string pending_recipient_;
    std::string message_;
};

// One reply line: "250 2.1.5 text\r\n". CR, LF and other control bytes in
// text become spaces; an empty enhanced code is left out.
std::string reply(int code, std::string_view enhanced, std::string_view text);

// The path of "MAIL FROM:" / "RCPT TO:" arguments: "<a@b> SIZE=10" gives
// "a@b" and params "SIZE=10". Also accepts a path without brackets.
// nullopt (and *why) for an unbalanced or missing path.
struct Path {
    std::string address;
    std::string params;
};
std::optional<Path> parse_path(std::string_view arg, std::string* why);

// A client's encoding of message text for DATA: CRLF line ends, leading
// dots doubled, a final newline if missing, then ".\r\n".
std::string encode_data(std::string_view message);

}  // namespace mailgrid::lmtp
