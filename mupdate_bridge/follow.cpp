// follow - a read-only mirror of another mupdate master (see follow.hpp).
#include "follow.hpp"

#include <asio/experimental/awaitable_operators.hpp>
#include <fstream>
#include <sstream>

#include "bridge.hpp"
#include "log/log.hpp"
#include "proto/mupdate.hpp"
#include "util/base64.hpp"
#include "util/secure.hpp"
#include "util/strings.hpp"

namespace mailgrid::bridge {

using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

namespace {

// Responses from the upstream master, read with deadlines.
class LineReader {
public:
    explicit LineReader(asio::ip::tcp::socket& s) : sock_(s), reader_(false) {}

    // Drained: everything buffered was taken, the next call waits for input.
    enum class Result { Event, Drained, Timeout, Closed };

    awaitable<Result> next(Clock::time_point deadline, mupdate::Event& out) {
        for (;;) {
            std::size_t used = 0;
            auto ev = reader_.next(std::string_view(buf_).substr(pos_), used);
            pos_ += used;
            if (pos_ > (1u << 16) && pos_ * 2 > buf_.size()) {
                buf_.erase(0, pos_);
                pos_ = 0;
            }
            if (ev) {
                out = std::move(*ev);
                co_return Result::Event;
            }
            // Nothing complete is left in the buffer: the caller may want
            // to act on what it collected before we block.
            if (!pending_ready_) {
                pending_ready_ = true;
                co_return Result::Drained;
            }
            pending_ready_ = false;
            asio::steady_timer t(sock_.get_executor());
            t.expires_at(deadline);
            asio::error_code ec1, ec2;
            auto r = co_await (sock_.async_read_some(asio::buffer(chunk_), asio::redirect_error(use_awaitable, ec1)) ||
                               t.async_wait(asio::redirect_error(use_awaitable, ec2)));
            if (r.index() == 1) co_return Result::Timeout;
            std::size_t n = std::get<0>(r);
            if (ec1 || n == 0) co_return Result::Closed;
            buf_.append(chunk_.data(), n);
        }
    }

private:
    asio::ip::tcp::socket& sock_;
    mupdate::Reader reader_;
    std::string buf_;
    std::size_t pos_ = 0;
    std::array<char, 65536> chunk_{};
    bool pending_ready_ = false;
};

std::string describe(const mupdate::Line& l) {
    std::string s = l.tag + " " + l.word;
    for (const auto& a : l.args) s += " \"" + printable(a, 100) + "\"";
    return s;
}

}  // namespace

Upstream::Upstream(asio::io_context& io, Bridge& bridge, const SuiteConfig& config) : io_(io), bridge_(bridge) {
    std::string target = config.get("mupdate_follow");
    auto colon = target.rfind(':');
    host_ = target.substr(0, colon);
    port_ = target.substr(colon + 1);
    if (host_.size() > 2 && host_.front() == '[' && host_.back() == ']') host_ = host_.substr(1, host_.size() - 2);
    user_ = config.get("mupdate_follow_user");
    password_ = config.get("mupdate_follow_password");
    auto file = config.get("mupdate_follow_password_file");
    if (!file.empty()) {
        std::ifstream in(file);
        if (!in) config.fail("mupdate_follow_password_file", "cannot read " + file);
        std::getline(in, password_);
    }
    if (user_.empty() || password_.empty())
        config.fail("mupdate_follow", "needs mupdate_follow_user and mupdate_follow_password (or _file)");
    authzid_ = config.get("mupdate_follow_authzid");
    noop_interval_ = config.get_duration("mupdate_follow_noop_interval");
    retry_ = config.get_duration("mupdate_follow_retry");
    if (noop_interval_.count() <= 0) config.fail("mupdate_follow_noop_interval", "must be positive");
}

void Upstream::start() { asio::co_spawn(io_, run(), asio::detached); }

void Upstream::stop() {
    stopped_ = true;
    if (socket_) {
        asio::error_code ec;
        socket_->close(ec);
    }
}

awaitable<void> Upstream::run() {
    while (!stopped_) {
        auto why = co_await session();
        synced_ = false;
        socket_.reset();
        if (stopped_) break;
        log::warning("following %s:%s: %s; reconnecting in %.1fs", host_.c_str(), port_.c_str(), why.c_str(),
                     static_cast<double>(retry_.count()) / 1000.0);
        co_await sleep_for(retry_);
    }
}

awaitable<std::string> Upstream::session() {
    using tcp = asio::ip::tcp;
    asio::error_code ec, ec2;
    tcp::resolver resolver(io_);
    auto endpoints = co_await resolver.async_resolve(host_, port_, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return "resolve: " + ec.message();
    auto sock = std::make_shared<tcp::socket>(io_);
    socket_ = sock;
    {
        asio::steady_timer t(io_);
        t.expires_after(std::chrono::seconds(10));
        auto r = co_await (asio::async_connect(*sock, endpoints, asio::redirect_error(use_awaitable, ec)) ||
                           t.async_wait(asio::redirect_error(use_awaitable, ec2)));
        if (r.index() == 1) co_return "connect timed out";
        if (ec) co_return "connect: " + ec.message();
    }
    sock->set_option(tcp::no_delay(true), ec);
    LineReader in(*sock);
    mupdate::Event ev;
    auto deadline = [](std::chrono::seconds s) { return Clock::now() + s; };
    auto send = [&](std::string text) -> awaitable<bool> {
        asio::error_code e;
        co_await asio::async_write(*sock, asio::buffer(text), asio::redirect_error(use_awaitable, e));
        secure_wipe(text);
        co_return !e;
    };

    // Banner.
    std::vector<std::string> mechs;
    for (;;) {
        auto r = co_await in.next(deadline(std::chrono::seconds(30)), ev);
        if (r == LineReader::Result::Drained) continue;
        if (r == LineReader::Result::Closed) co_return "connection closed before the banner";
        if (r == LineReader::Result::Timeout) co_return "no banner within 30s";
        if (ev.kind != mupdate::Event::Kind::Line) co_return "malformed banner";
        if (ev.line.word == "AUTH") mechs = ev.line.args;
        if (ev.line.word == "BYE") co_return "refused: " + describe(ev.line);
        if (ev.line.word == "OK") break;
    }
    bool plain = false;
    for (const auto& m : mechs) plain |= iequals(m, "PLAIN");
    if (!plain) co_return "the server offers no PLAIN (needs allowplaintext: yes and PLAIN in sasl_mech_list)";

    std::string creds = authzid_ + std::string(1, '\0') + user_ + std::string(1, '\0') + password_;
    std::string b64 = base64_encode(creds);
    secure_wipe(creds);
    std::string auth = "A01 AUTHENTICATE \"PLAIN\" ";
    mupdate::append_literal(auth, b64);
    auth += "\r\n";
    secure_wipe(b64);
    if (!co_await send(std::move(auth))) co_return "write failed";
    for (;;) {
        auto r = co_await in.next(deadline(std::chrono::seconds(30)), ev);
        if (r == LineReader::Result::Drained) continue;
        if (r == LineReader::Result::Timeout) co_return "no answer to AUTHENTICATE within 30s";
        if (r == LineReader::Result::Closed) co_return "connection closed during authentication";
        if (ev.kind != mupdate::Event::Kind::Line || ev.line.tag != "A01") co_return "unexpected answer to AUTHENTICATE";
        if (ev.line.word != "OK") co_return "authentication as " + user_ + " refused: " + describe(ev.line);
        break;
    }

    // The whole list, then changes as they happen.
    if (!co_await send("U01 UPDATE\r\n")) co_return "write failed";
    auto t0 = Clock::now();
    location::MailboxList fresh;
    std::size_t invalid = 0;
    auto to_change = [&](const mupdate::Line& l, location::Change& c) {
        if (l.word == "MAILBOX" && l.args.size() == 3)
            c = location::Change{l.args[0], location::Mailbox{true, l.args[1], l.args[2]}, std::nullopt};
        else if (l.word == "RESERVE" && l.args.size() == 2)
            c = location::Change{l.args[0], location::Mailbox{false, l.args[1], {}}, std::nullopt};
        else if (l.word == "DELETE" && l.args.size() == 1)
            c = location::Change{l.args[0], std::nullopt, std::nullopt};
        else
            return false;
        if (!location::valid_name(c.name) || (c.value && (!location::valid_location(c.value->location) ||
                                                           !location::valid_acl(c.value->acl)))) {
            ++invalid;
            return false;
        }
        return true;
    };
    for (;;) {
        auto r = co_await in.next(deadline(std::chrono::seconds(60)), ev);
        if (r == LineReader::Result::Drained) continue;
        if (r == LineReader::Result::Timeout) co_return "UPDATE stalled for 60s";
        if (r == LineReader::Result::Closed) co_return "connection closed during UPDATE";
        if (ev.kind != mupdate::Event::Kind::Line) co_return "malformed line during UPDATE: " + ev.message;
        if (ev.line.tag != "U01") continue;
        if (ev.line.word == "OK") break;
        if (ev.line.word == "NO" || ev.line.word == "BAD" || ev.line.word == "BYE")
            co_return "UPDATE refused: " + describe(ev.line);
        location::Change c;
        if (to_change(ev.line, c) && c.value) fresh.set(c.name, std::move(*c.value));
    }
    log::info("following %s:%s: UPDATE gave %zu mailboxes in %.2fs%s", host_.c_str(), port_.c_str(), fresh.size(),
              std::chrono::duration<double>(Clock::now() - t0).count(),
              invalid ? (" (" + std::to_string(invalid) + " invalid skipped)").c_str() : "");
    if (!co_await bridge_.replace_all(std::move(fresh), "UPDATE from " + host_ + ":" + port_, true))
        co_return "the list could not be taken over";
    synced_ = true;

    std::vector<location::Change> batch;
    auto next_noop = Clock::now() + noop_interval_;
    std::string outstanding;
    unsigned noop_n = 0;
    for (;;) {
        auto r = co_await in.next(next_noop, ev);
        if (stopped_) co_return "stopped";
        if (r == LineReader::Result::Closed) co_return "connection closed";
        if (r == LineReader::Result::Drained) {
            if (!batch.empty()) {
                if (!co_await bridge_.apply_external(std::move(batch), true)) co_return "the store refused the changes";
                batch.clear();
            }
            continue;
        }
        if (r == LineReader::Result::Timeout) {
            if (Clock::now() >= next_noop) {
                if (!outstanding.empty()) co_return "no answer to " + outstanding;
                outstanding = "N" + std::to_string(noop_n++);
                if (!co_await send(outstanding + " NOOP\r\n")) co_return "write failed";
                next_noop = Clock::now() + noop_interval_;
            }
            continue;
        }
        if (ev.kind != mupdate::Event::Kind::Line) co_return "malformed line: " + ev.message;
        const auto& l = ev.line;
        if (l.word == "BYE") co_return "server said " + describe(l);
        if (l.tag == outstanding) {
            if (l.word != "OK") co_return "NOOP answered " + describe(l);
            outstanding.clear();
            continue;
        }
        if (l.tag != "U01") continue;
        location::Change c;
        if (to_change(l, c)) batch.push_back(std::move(c));
        else if (l.word != "MAILBOX" && l.word != "RESERVE" && l.word != "DELETE")
            co_return "unexpected " + describe(l);
    }
}

}  // namespace mailgrid::bridge
