// imap_session - a blocking IMAP client for one Cyrus backend, logged in
// as the Cyrus administrator (admins in imapd.conf), with a deadline on
// every step.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "proto/imap.hpp"

namespace mailgrid::admin {

struct ImapResult {
    bool ok = false;         // tagged OK
    bool failed_io = false;  // the backend is down or did not answer
    std::string text;        // the tagged response's text, or why it failed
    std::vector<imap::Response> untagged;
};

class ImapSession {
public:
    ImapSession() = default;
    ~ImapSession();
    ImapSession(const ImapSession&) = delete;
    ImapSession& operator=(const ImapSession&) = delete;

    // Connects, reads the greeting and logs in. false and *why if not.
    bool open(const std::string& host, std::uint16_t port, const std::string& user, const std::string& password,
              std::chrono::milliseconds timeout, std::string* why);
    // args are quoted as IMAP strings; list, if given, is appended as it
    // is (a parenthesised list such as "(MESSAGES)").
    ImapResult run(std::string_view command, const std::vector<std::string>& args, std::string_view list = {});
    // APPEND with a LITERAL+ literal: flags "(\\Seen ...)" or "", date an
    // IMAP date-time or "".
    ImapResult append(const std::string& mailbox, const std::string& flags, const std::string& date,
                      std::string_view message);
    void close();

private:
    bool send(const std::string& bytes, std::string* why);
    bool read_response(imap::Response& r, std::string* why);

    int fd_ = -1;
    std::string buffer_;
    int next_tag_ = 1;
    std::chrono::milliseconds timeout_{30000};
};

}  // namespace mailgrid::admin
