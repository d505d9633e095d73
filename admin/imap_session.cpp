#include "imap_session.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mailgrid::admin {

ImapSession::~ImapSession() { close(); }

void ImapSession::close() {
    if (fd_ >= 0) {
        std::string why;
        if (auto c = imap::command("Z", "LOGOUT", {})) send(*c, &why);
        ::close(fd_);
    }
    fd_ = -1;
}

bool ImapSession::open(const std::string& host, std::uint16_t port, const std::string& user,
                       const std::string& password, std::chrono::milliseconds timeout, std::string* why) {
    timeout_ = timeout;
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0) {
        *why = host + ": " + ::gai_strerror(rc);
        return false;
    }
    std::string last = "no address";
    for (addrinfo* a = res; a && fd_ < 0; a = a->ai_next) {
        int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            last = std::strerror(errno);
            ::close(fd);
            continue;
        }
        pollfd p{fd, POLLOUT, 0};
        int err = 0;
        socklen_t len = sizeof err;
        if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1 ||
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            last = err ? std::strerror(err) : "connection timed out";
            ::close(fd);
            continue;
        }
        fd_ = fd;
    }
    ::freeaddrinfo(res);
    if (fd_ < 0) {
        *why = host + ":" + std::to_string(port) + ": " + last;
        return false;
    }
    imap::Response greeting;
    if (!read_response(greeting, why)) return false;
    if (greeting.status != "OK") {
        *why = host + ": greeting: " + greeting.status + " " + greeting.text;
        close();
        return false;
    }
    auto login = run("LOGIN", {user, password});
    if (!login.ok) {
        *why = host + ": LOGIN as " + user + ": " + login.text;
        close();
        return false;
    }
    return true;
}

bool ImapSession::send(const std::string& bytes, std::string* why) {
    std::size_t off = 0;
    while (off < bytes.size()) {
        ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n >= 0) {
            off += static_cast<std::size_t>(n);
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) {
            *why = std::strerror(errno);
            return false;
        }
        pollfd p{fd_, POLLOUT, 0};
        if (::poll(&p, 1, static_cast<int>(timeout_.count())) != 1) {
            *why = "timed out writing";
            return false;
        }
    }
    return true;
}

bool ImapSession::read_response(imap::Response& r, std::string* why) {
    auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
        switch (imap::next_response(buffer_, r)) {
            case imap::Parse::Complete: buffer_.erase(0, r.consumed); return true;
            case imap::Parse::Invalid: *why = "malformed response"; return false;
            case imap::Parse::Incomplete: break;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd_, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) {
            *why = "timed out waiting for the server";
            return false;
        }
        char buf[16384];
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n == 0) {
            *why = "connection closed by the server";
            return false;
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            *why = std::strerror(errno);
            return false;
        }
        buffer_.append(buf, static_cast<std::size_t>(n));
    }
}

ImapResult ImapSession::append(const std::string& mailbox, const std::string& flags, const std::string& date,
                               std::string_view message) {
    std::string tail;
    if (!flags.empty()) tail += flags + " ";
    if (!date.empty()) tail += "\"" + date + "\" ";
    tail += "{" + std::to_string(message.size()) + "+}\r\n";
    tail += message;
    return run("APPEND", {mailbox}, tail);
}

ImapResult ImapSession::run(std::string_view name, const std::vector<std::string>& args, std::string_view list) {
    ImapResult out;
    if (fd_ < 0) {
        out.failed_io = true;
        out.text = "not connected";
        return out;
    }
    std::string tag = "A" + std::to_string(next_tag_++);
    auto cmd = imap::command(tag, name, args);
    if (!cmd) {
        out.text = "an argument cannot be sent as an IMAP string";
        return out;
    }
    if (!list.empty()) cmd->insert(cmd->size() - 2, " " + std::string(list));
    if (!send(*cmd, &out.text)) {
        out.failed_io = true;
        return out;
    }
    for (;;) {
        imap::Response r;
        if (!read_response(r, &out.text)) {
            out.failed_io = true;
            return out;
        }
        if (r.tag == tag) {
            out.ok = r.status == "OK";
            out.text = r.status + " " + r.text;
            return out;
        }
        if (r.tag == "*" && r.status == "BYE") {
            out.failed_io = true;
            out.text = "BYE " + r.text;
            return out;
        }
        out.untagged.push_back(std::move(r));
    }
}

}  // namespace mailgrid::admin
