// cli - what a one-message delivery does around the Maildir itself (the
// configuration, the recipient from -d or the environment, the message
// from stdin, the time limit, the status line for Postfix), shared by the
// lean front binary (maildir_deliver) and the full program it hands over
// to (maildir_deliverd). The command line itself: invocation.hpp.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "daemon/common.hpp"
#include "invocation.hpp"
#include "mailbox.hpp"

namespace mailgrid {

// mailgrid.cf with every parameter declared; -o applied; --lmtp as
// deliver_lmtp_listen. Trouble defers when delivering, else exits 78.
SuiteConfig load_deliver_config(const Invocation& inv);

// Does this invocation serve LMTP? Only with --lmtp: a .forward or
// mailbox_command delivery may read a mailgrid.cf that sets
// deliver_lmtp_listen for the server. Exits 78 when there is no address.
bool serving_lmtp(const Invocation& inv, const SuiteConfig& config);

// The first line Postfix reads ("4.2.2 <joe@example.com>: mailbox full"), then exit.
[[noreturn]] void finish(int code, const std::string& enhanced, const std::string& text);
// Configuration trouble while delivering: 4.3.5 and exit 75.
[[noreturn]] void defer_config(const std::string& why);

// One message from stdin: the recipient (-d, --maildir, or USER, DOMAIN,
// EXTENSION from local(8)), the time limit set, the message read.
// Standard input, moved by the kernel (splice from the pipe Postfix gives,
// sendfile from a file) into an anonymous file (memfd) and mapped
// read-only. A page that read() fills costs a process per message a page
// fault, and on a VM a second, hidden one when the program first reads
// it; mapped page-cache pages fault in 16 at a time (bench/RESULTS.md). The file is also what the
// front hands on to maildir_deliverd as its standard input.
class InputBuffer {
public:
    InputBuffer() = default;
    InputBuffer(InputBuffer&& o) noexcept
        : file_(std::exchange(o.file_, -1)), data_(std::exchange(o.data_, nullptr)),
          size_(std::exchange(o.size_, 0)) {}
    InputBuffer& operator=(InputBuffer&&) = delete;
    ~InputBuffer();
    // Reads fd to its end or to at most `cap` bytes; false with errno set.
    bool read_all(int fd, std::size_t cap);
    std::string_view view() const { return {data_, size_}; }
    // The message as a file (-1 before read_all), its offset at the end.
    int file() const { return file_; }

private:
    int file_ = -1;
    const char* data_ = nullptr;
    std::size_t size_ = 0;
};

struct OneMessage {
    Recipient recipient;
    std::string shown;    // the address for the log and the status line
    InputBuffer raw;      // stdin as read
    std::size_t body = 0; // where the message starts in raw (after a "From " line)
    std::chrono::steady_clock::time_point started;
    std::string_view message() const { return raw.view().substr(body); }
};
// Finishes (bad address) when it cannot go on. The message is left for
// read_input.
OneMessage prepare_one_message(const Invocation& inv, MailboxStore& store, const SuiteConfig& config);
// Reads the message; an outcome when it cannot be delivered: unreadable
// (EFBIG: over the file size limit Postfix set) or over the size limit.
std::optional<Outcome> read_input(OneMessage& m, const MailboxStore& store);

// Logs the outcome and exits with its status (printing the status line
// unless delivered).
[[noreturn]] void conclude(const MailboxStore& store, const OneMessage& m, const Invocation& inv, const Outcome& o);

}  // namespace mailgrid
