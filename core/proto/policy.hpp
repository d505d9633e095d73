// policy - codec for Postfix's SMTP access policy delegation protocol
// (check_policy_service, SMTPD_POLICY_README).
//
//   C: request=smtpd_access_policy\n protocol_state=RCPT\n ... name=value\n \n
//   S: action=<access(5) action>\n \n
//
// Pure: bytes in, requests out. A malformed request has no reply: the
// protocol says a server in trouble logs and closes, and Postfix then
// answers the client with its smtpd_policy_service_default_action.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mailgrid::policy {

// Postfix sends each name and value in at most 4 x line_length_limit
// (2048) bytes; a request of some 30 attributes stays far below 64 KiB.
inline constexpr std::size_t kMaxAttribute = 8192;
inline constexpr std::size_t kMaxLine = 2 * kMaxAttribute + 2;  // name '=' value '\r'
inline constexpr std::size_t kMaxRequest = 64 * 1024;           // all lines and the empty one
inline constexpr std::size_t kMaxAction = 2000;                 // our replies: one short SMTP reply

enum class Stage { Unknown, Connect, Ehlo, Helo, Mail, Rcpt, Data, EndOfMessage, Vrfy, Etrn };
Stage parse_stage(std::string_view protocol_state);
const char* stage_name(Stage s);  // "RCPT", ... as Postfix writes protocol_state

// The attributes the rule engine and the logs use; the others are
// counted and ignored, as the protocol asks. A repeated attribute keeps
// its last value.
struct Request {
    std::string request;         // "smtpd_access_policy"
    std::string protocol_state;  // as sent
    Stage stage = Stage::Unknown;
    std::string protocol_name, helo_name, queue_id, instance;
    std::string sender, recipient;
    std::string client_address, client_name, reverse_client_name;
    std::string sasl_method, sasl_username, sasl_sender;
    std::uint64_t size = 0;             // MAIL FROM SIZE=, the real size at END-OF-MESSAGE; 0 = unknown
    std::uint64_t recipient_count = 0;  // DATA and END-OF-MESSAGE only
    std::size_t attributes = 0;         // lines received
    std::size_t ignored = 0;            // attributes not listed above

    // The fields above, not the counts.
    bool same_fields(const Request& o) const;
};

struct Parsed {
    bool ok = false;
    Request request;
    std::string error;  // !ok: why, for the log; close the connection without a reply
};

// The request at the front of buf. nullopt: incomplete, nothing consumed.
// Otherwise consumed covers the request and its empty line (on an error:
// all of buf, the connection is of no further use). Lines may end in
// "\r\n" (people test with telnet); names must be non-empty, values hold
// no NUL or CR; size and recipient_count must be numbers.
std::optional<Parsed> parse_request(std::string_view buf, std::size_t& consumed);

// "action=<action>\n\n"; line breaks and NULs in the action become
// spaces and it is cut to kMaxAction bytes, so a reply is always one
// attribute.
std::string format_reply(std::string_view action);

// The request as Postfix would send it (every non-empty field, the counts
// only when non-zero). For tests, the fuzzer and the load generator.
std::string format_request(const Request& r);

}  // namespace mailgrid::policy
