// maildir_name - the names of a Maildir++ store, pure: which user, domain
// and folder names may become path components, where a mailbox lives in
// the store (<domain>/<hash>/<user>), and what a message file's name says
// (its size, its flags), after DJB's maildir(5) and Courier's Maildir++.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailgrid::maildir {

// One path component, as NAME_MAX allows.
inline constexpr std::size_t kMaxComponent = 255;

// Why s may not be one path component below the store (nullopt: it may):
// empty, longer than kMaxComponent, '/', NUL, control bytes or DEL, a
// leading '.' (which also rules out "." and ".."), or invalid UTF-8.
// `what` names it in the message ("user", "domain").
std::optional<std::string> component_problem(std::string_view s, std::string_view what);

// The Maildir++ folder an address extension delivers into: ".ext", with
// '&' written "&-" as IMAP's modified UTF-7 needs. Refused (nullopt, *why
// set): everything component_problem refuses, bytes outside printable
// ASCII, "..", and a trailing '.' (an empty level of the folder hierarchy).
std::optional<std::string> folder_for_extension(std::string_view extension, std::string* why);

// How mailboxes are spread below a domain directory.
struct Layout {
    enum class Hash { None, Classic, Stable } hash = Hash::Classic;
    int levels = 1;  // Stable: directory levels, 1..4

    // "none", "classic", "stable:N". nullopt (and *why) otherwise.
    static std::optional<Layout> parse(std::string_view text, std::string* why);
    std::string describe() const;
};

// The directories between the domain and the user:
//  classic   - one level: the user's first two characters, "_"-padded
//              ("alice" -> "al", "a" -> "a_"), as the classic layout has it;
//  stable:N  - N levels of two hex digits, the bytes of the 32-bit FNV-1a
//              hash of the user name, most significant first ("3f/a9");
//  none      - no level.
std::vector<std::string> hash_components(const Layout& layout, std::string_view user);

// <domain>/<hash...>/<user> as components below the store root. The caller
// has checked user and domain with component_problem.
std::vector<std::string> mailbox_components(const Layout& layout, std::string_view user, std::string_view domain);

// A mailbox path taken from a directory attribute: relative to the store,
// or absolute and inside it. Components are returned below the store root;
// nullopt (and *why) for "..", a component component_problem refuses, or an
// absolute path outside root. Repeated and trailing '/' are harmless.
std::optional<std::vector<std::string>> components_below(std::string_view path, std::string_view root,
                                                         std::string* why);

std::string join_components(const std::vector<std::string>& components);

// What a message file name says: "<base>[,S=<size>][,W=<size>][:2,<flags>]".
struct FileName {
    std::string_view base;                // up to the first ',' or ':'
    std::optional<std::uint64_t> size;    // ,S= (bytes on disk)
    std::optional<std::uint64_t> vsize;   // ,W= (size with CRLF line ends)
    bool has_info = false;                // ":2," present
    std::string_view flags;               // after ":2,"
};
FileName parse_file_name(std::string_view name);
bool has_flag(std::string_view name, char flag);

// A host name fit for unique names: '/' as "\057", ':' as "\072" (DJB's
// advice) and ',' as "\054" (',' starts the Maildir++ size fields).
std::string safe_host(std::string_view host);

// Unique names after Courier: tmp "<sec>.M<usec>P<pid>Q<n>.<host>", final
// "<sec>.M<usec>P<pid>V<dev>I<ino>Q<n>.<host>,S=<size>,W=<vsize>".
struct UniqueParts {
    std::int64_t seconds = 0;
    long microseconds = 0;
    long pid = 0;
    std::uint64_t counter = 0;
    std::string host;  // already safe_host()
};
std::string tmp_name(const UniqueParts& u);
std::string final_name(const UniqueParts& u, std::uint64_t device, std::uint64_t inode, std::uint64_t size,
                       std::uint64_t vsize);

// Size of a message stored with LF line ends, counted with CRLF (",W=").
std::uint64_t crlf_size(std::string_view message);

}  // namespace mailgrid::maildir
