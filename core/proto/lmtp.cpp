// lmtp - the server side of LMTP (see lmtp.hpp).
#include "proto/lmtp.hpp"

#include "util/strings.hpp"

namespace mailgrid::lmtp {

namespace {

std::string upper(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return out;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

Event answer(int code, std::string_view enhanced, std::string_view text, bool close = false) {
    Event e;
    e.kind = Event::Kind::Reply;
    e.reply = reply(code, enhanced, text);
    e.close = close;
    return e;
}

// The value of an ESMTP parameter ("SIZE=123") in params, if present.
std::optional<std::string_view> param_value(std::string_view params, std::string_view name) {
    for (auto word : split(params, ' ')) {
        auto eq = word.find('=');
        if (eq != std::string_view::npos && iequals(word.substr(0, eq), name)) return word.substr(eq + 1);
    }
    return std::nullopt;
}

}  // namespace

std::string reply(int code, std::string_view enhanced, std::string_view text) {
    std::string out = std::to_string(code) + " ";
    if (!enhanced.empty()) {
        out.append(enhanced);
        out += ' ';
    }
    for (unsigned char c : text) out += (c < 0x20 || c == 0x7f) ? ' ' : static_cast<char>(c);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += "\r\n";
    return out;
}

std::optional<Path> parse_path(std::string_view arg, std::string* why) {
    auto fail = [&](const char* w) -> std::optional<Path> {
        if (why) *why = w;
        return std::nullopt;
    };
    while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
    Path p;
    std::size_t end = 0;
    if (!arg.empty() && arg.front() == '<') {
        bool quoted = false;
        std::size_t i = 1;
        for (; i < arg.size(); ++i) {
            char c = arg[i];
            if (c == '\\' && i + 1 < arg.size()) {
                ++i;
            } else if (c == '"') {
                quoted = !quoted;
            } else if (c == '>' && !quoted) {
                break;
            }
        }
        if (i >= arg.size()) return fail("unbalanced '<'");
        p.address.assign(arg.substr(1, i - 1));
        end = i + 1;
        if (end < arg.size() && arg[end] != ' ') return fail("text after '>'");
    } else {
        end = arg.find(' ');
        if (end == std::string_view::npos) end = arg.size();
        p.address.assign(arg.substr(0, end));
        if (p.address.empty()) return fail("no address");
    }
    // A source route ("@a,@b:user@example") is ignored, as RFC 5321 allows.
    while (!p.address.empty() && p.address.front() == '@') {
        auto colon = p.address.find(':');
        if (colon == std::string::npos) return fail("bad source route");
        p.address.erase(0, colon + 1);
    }
    p.params.assign(trim(arg.substr(std::min(end, arg.size()))));
    return p;
}

std::string encode_data(std::string_view message) {
    std::string out;
    out.reserve(message.size() + message.size() / 32 + 8);
    std::size_t i = 0;
    while (i < message.size()) {
        auto nl = message.find('\n', i);
        auto line = message.substr(i, nl == std::string_view::npos ? std::string_view::npos : nl - i);
        if (!line.empty() && line.front() == '.') out += '.';
        out.append(line);
        out += "\r\n";
        if (nl == std::string_view::npos) break;
        i = nl + 1;
    }
    out += ".\r\n";
    return out;
}

Session::Session(Options options) : options_(std::move(options)) {}

std::string Session::greeting() const { return reply(220, "", options_.hostname + " LMTP ready"); }

void Session::recipient(bool accepted) {
    if (!awaiting_verdict_) return;
    awaiting_verdict_ = false;
    if (accepted) recipients_.push_back(std::move(pending_recipient_));
    pending_recipient_.clear();
}

void Session::end_transaction() {
    mail_given_ = false;
    sender_.clear();
    recipients_.clear();
    message_.clear();
    too_big_ = false;
    if (state_ == State::Data) state_ = State::Command;
}

std::optional<Event> Session::next(std::string_view buf, std::size_t& consumed) {
    consumed = 0;
    if (awaiting_verdict_) recipient(false);
    for (;;) {
        std::string_view rest = buf.substr(consumed);
        if (state_ == State::Data) {
            std::size_t n = 0;
            auto e = data(rest, n);
            consumed += n;
            return e;
        }
        auto nl = rest.find('\n');
        if (state_ == State::DiscardLine) {
            if (nl == std::string_view::npos) {
                consumed = buf.size();
                return std::nullopt;
            }
            consumed += nl + 1;
            state_ = State::Command;
            return answer(500, "5.5.2", "line too long");
        }
        if (nl == std::string_view::npos) {
            if (rest.size() >= kMaxCommandLine) {
                consumed = buf.size();
                state_ = State::DiscardLine;
            }
            return std::nullopt;
        }
        consumed += nl + 1;
        if (nl >= kMaxCommandLine) return answer(500, "5.5.2", "line too long");
        auto line = rest.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        return command(line);
    }
}

std::optional<Event> Session::command(std::string_view line) {
    if (line.find('\0') != std::string_view::npos) return answer(500, "5.5.2", "NUL byte in command");
    auto space = line.find(' ');
    std::string verb = upper(line.substr(0, space));
    std::string_view arg = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);

    if (verb == "LHLO") {
        if (trim(arg).empty()) return answer(501, "5.5.4", "LHLO needs a host name");
        end_transaction();
        greeted_ = true;
        Event e;
        std::string host = reply(250, "", options_.hostname);
        e.reply = "250-" + host.substr(4) + "250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
                  "250 SIZE " + std::to_string(options_.max_message_size) + "\r\n";
        return e;
    }
    if (verb == "HELO" || verb == "EHLO") return answer(500, "5.5.1", "this is LMTP: say LHLO");
    if (verb == "MAIL") {
        if (!greeted_) return answer(503, "5.5.1", "send LHLO first");
        if (mail_given_) return answer(503, "5.5.1", "nested MAIL command");
        if (!starts_with_ci(arg, "FROM:")) return answer(501, "5.5.4", "syntax: MAIL FROM:<address>");
        std::string why;
        auto path = parse_path(arg.substr(5), &why);
        if (!path) return answer(501, "5.1.7", "bad sender address syntax: " + why);
        if (auto size = param_value(path->params, "SIZE")) {
            auto n = parse_int(*size);
            if (!n || *n < 0) return answer(501, "5.5.4", "bad SIZE parameter");
            if (static_cast<std::uint64_t>(*n) > options_.max_message_size)
                return answer(552, "5.3.4", "message size exceeds fixed limit");
        }
        sender_ = std::move(path->address);
        mail_given_ = true;
        return answer(250, "2.1.0", "ok");
    }
    if (verb == "RCPT") {
        if (!mail_given_) return answer(503, "5.5.1", "need MAIL command");
        if (!starts_with_ci(arg, "TO:")) return answer(501, "5.5.4", "syntax: RCPT TO:<address>");
        std::string why;
        auto path = parse_path(arg.substr(3), &why);
        if (!path) return answer(501, "5.1.3", "bad recipient address syntax: " + why);
        if (path->address.empty()) return answer(501, "5.1.3", "empty recipient address");
        if (recipients_.size() >= options_.max_recipients) return answer(452, "4.5.3", "too many recipients");
        Event e;
        e.kind = Event::Kind::Recipient;
        e.address = path->address;
        e.params = std::move(path->params);
        pending_recipient_ = std::move(path->address);
        awaiting_verdict_ = true;
        return e;
    }
    if (verb == "DATA") {
        if (!trim(arg).empty()) return answer(501, "5.5.4", "DATA takes no argument");
        if (!mail_given_) return answer(503, "5.5.1", "need MAIL command");
        if (recipients_.empty()) return answer(503, "5.5.1", "no valid recipients");
        state_ = State::Data;
        message_.clear();
        too_big_ = false;
        at_line_start_ = true;
        return answer(354, "", "go ahead, end with <CRLF>.<CRLF>");
    }
    if (verb == "RSET") {
        end_transaction();
        return answer(250, "2.0.0", "ok");
    }
    if (verb == "NOOP") return answer(250, "2.0.0", "ok");
    if (verb == "QUIT") return answer(221, "2.0.0", "bye", true);
    if (verb == "VRFY") return answer(252, "2.5.0", "cannot verify, but will try delivery");
    if (verb == "HELP") return answer(214, "2.0.0", "commands: LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY");
    if (verb == "BDAT" || verb == "STARTTLS" || verb == "AUTH" || verb == "ETRN" || verb == "EXPN")
        return answer(502, "5.5.1", "command not implemented");
    if (verb.empty()) return answer(500, "5.5.2", "empty command");
    return answer(500, "5.5.2", "unrecognized command");
}

std::optional<Event> Session::data(std::string_view buf, std::size_t& consumed) {
    auto append = [this](std::string_view piece) {
        if (too_big_) return;
        if (message_.size() + piece.size() > options_.max_message_size) {
            too_big_ = true;
            std::string().swap(message_);
            return;
        }
        message_.append(piece);
    };
    std::size_t i = 0;
    for (;;) {
        auto nl = buf.find('\n', i);
        if (nl == std::string_view::npos) {
            auto tail = buf.substr(i);
            if (tail.size() >= kMaxDataPiece) {
                // A very long line: take it in pieces, keeping a final CR
                // back in case an LF follows.
                std::size_t take = tail.size() - (tail.back() == '\r' ? 1 : 0);
                auto piece = tail.substr(0, take);
                if (at_line_start_ && piece.front() == '.') piece.remove_prefix(1);
                append(piece);
                at_line_start_ = false;
                i += take;
            }
            consumed = i;
            return std::nullopt;
        }
        auto line = buf.substr(i, nl - i);
        i = nl + 1;
        if (at_line_start_ && (line == "." || line == ".\r")) {
            consumed = i;
            return finish_data();
        }
        if (at_line_start_ && !line.empty() && line.front() == '.') line.remove_prefix(1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        append(line);
        append("\n");
        at_line_start_ = true;
    }
}

Event Session::finish_data() {
    state_ = State::Command;
    if (!too_big_) {
        Event e;
        e.kind = Event::Kind::Message;
        return e;
    }
    Event e;
    for (std::size_t n = 0; n < recipients_.size(); ++n) e.reply += reply(552, "5.3.4", "message exceeds size limit");
    end_transaction();
    return e;
}

}  // namespace mailgrid::lmtp
