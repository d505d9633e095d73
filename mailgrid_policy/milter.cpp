// milter - libmilter callbacks bridged into the rule engine (see milter.hpp).
#include "milter.hpp"

#include <arpa/inet.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>

#include "log/log.hpp"
#include "net/listen.hpp"
#include "proto/milter.hpp"
#include "util/strings.hpp"

namespace mailgrid {

// What a milter connection has seen; libmilter's thread for the
// connection owns it (smfi_setpriv). The rule engine's own state of the
// message (state) is only touched on the event loop.
struct Milter::Session {
    std::string client = "unknown[unknown]";
    std::string login, sender, queue_id;
    std::uint64_t announced = 0;  // SIZE= at MAIL FROM
    std::uint64_t bytes = 0;      // the message as received so far
    std::shared_ptr<MessageState> state = std::make_shared<MessageState>();
    std::vector<std::string> recipients;  // accepted so far

    void new_message() {
        login.clear();
        sender.clear();
        queue_id.clear();
        announced = bytes = 0;
        state = std::make_shared<MessageState>();
        recipients.clear();
    }
};

namespace {

Milter* g_milter = nullptr;

std::string macro(SMFICTX* ctx, const char* name) {
    const char* v = smfi_getsymval(ctx, const_cast<char*>(name));
    return v ? std::string(v) : std::string();
}

// Postfix hands envelope addresses as the client typed them, in <>.
std::string bare_address(const char* arg) {
    std::string_view s = trim(arg ? arg : "");
    if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = s.substr(1, s.size() - 2);
    return std::string(s);
}

Milter::Session* session_of(SMFICTX* ctx) {
    auto* s = static_cast<Milter::Session*>(smfi_getpriv(ctx));
    if (!s) {
        // The MTA skipped the connect step: start from nothing.
        s = new Milter::Session;
        smfi_setpriv(ctx, s);
    }
    return s;
}

CheckRequest request_of(const Milter::Session& s, policy::Stage stage) {
    CheckRequest r;
    r.stage = stage;
    r.sender = s.sender;
    r.login = s.login;
    r.client = s.client;
    r.queue_id = s.queue_id;
    r.size = s.announced;
    return r;
}

sfsistat answer(SMFICTX* ctx, const Verdict& v) {
    if (v.dunno()) return SMFIS_CONTINUE;
    std::string code = std::to_string(v.code);
    std::string status = v.status;
    // smfi_setreply formats the text: '%' must be doubled, no line breaks,
    // at most 980 characters.
    std::string text;
    for (char c : v.text) {
        if (text.size() >= 900) break;
        if (c == '%') text += "%%";
        else text.push_back(c == '\r' || c == '\n' ? ' ' : c);
    }
    smfi_setreply(ctx, code.data(), status.empty() ? nullptr : status.data(), text.data());
    return v.code >= 500 ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

sfsistat on_connect(SMFICTX* ctx, char* hostname, _SOCK_ADDR* addr) {
    auto* s = session_of(ctx);
    std::string ip = macro(ctx, "{client_addr}");
    if (ip.empty() && addr) {
        sockaddr_storage ss{};
        std::memcpy(&ss, addr, addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
        char buf[INET6_ADDRSTRLEN] = "unknown";
        if (ss.ss_family == AF_INET) {
            sockaddr_in in{};
            std::memcpy(&in, &ss, sizeof in);
            ::inet_ntop(AF_INET, &in.sin_addr, buf, sizeof buf);
        } else if (ss.ss_family == AF_INET6) {
            sockaddr_in6 in6{};
            std::memcpy(&in6, &ss, sizeof in6);
            ::inet_ntop(AF_INET6, &in6.sin6_addr, buf, sizeof buf);
        }
        ip = buf;
    }
    s->client = printable(hostname && *hostname ? hostname : "unknown", 100) + "[" + printable(ip, 60) + "]";
    return SMFIS_CONTINUE;
}

sfsistat on_envfrom(SMFICTX* ctx, char** argv) {
    auto* s = session_of(ctx);
    s->new_message();
    s->sender = macro(ctx, "{mail_addr}");
    if (s->sender.empty() && argv) s->sender = bare_address(argv[0]);
    s->login = macro(ctx, "{auth_authen}");
    for (int i = 1; argv && argv[0] && argv[i]; ++i) {
        std::string_view arg = argv[i];
        if (arg.size() > 5 && iequals(arg.substr(0, 5), "SIZE=")) {
            if (auto n = parse_int(arg.substr(5)); n && *n > 0) s->announced = static_cast<std::uint64_t>(*n);
        }
    }
    return answer(ctx, g_milter->decide(*s, request_of(*s, policy::Stage::Mail), false));
}

sfsistat on_envrcpt(SMFICTX* ctx, char** argv) {
    auto* s = session_of(ctx);
    std::string rcpt = macro(ctx, "{rcpt_addr}");
    if (rcpt.empty() && argv) rcpt = bare_address(argv[0]);
    auto r = request_of(*s, policy::Stage::Rcpt);
    r.recipient = rcpt;
    Verdict v = g_milter->decide(*s, std::move(r), false);
    if (v.dunno()) s->recipients.push_back(std::move(rcpt));
    return answer(ctx, v);
}

sfsistat on_header(SMFICTX* ctx, char* name, char* value) {
    // "Name: value\r\n", as the message is stored and counted.
    session_of(ctx)->bytes += std::strlen(name ? name : "") + 2 + std::strlen(value ? value : "") + 2;
    return SMFIS_CONTINUE;
}

sfsistat on_eoh(SMFICTX* ctx) {
    session_of(ctx)->bytes += 2;
    return SMFIS_CONTINUE;
}

sfsistat on_body(SMFICTX* ctx, unsigned char*, size_t length) {
    session_of(ctx)->bytes += length;
    return SMFIS_CONTINUE;
}

sfsistat on_eom(SMFICTX* ctx) {
    auto* s = session_of(ctx);
    if (!g_milter->checks_size() || s->recipients.empty() || s->bytes == 0) return SMFIS_CONTINUE;
    s->queue_id = macro(ctx, "i");
    auto r = request_of(*s, policy::Stage::EndOfMessage);
    r.size = s->bytes;
    return answer(ctx, g_milter->decide(*s, std::move(r), true));
}

sfsistat on_abort(SMFICTX* ctx) {
    session_of(ctx)->new_message();
    return SMFIS_CONTINUE;
}

sfsistat on_close(SMFICTX* ctx) {
    delete static_cast<Milter::Session*>(smfi_getpriv(ctx));
    smfi_setpriv(ctx, nullptr);
    return SMFIS_CONTINUE;
}

char g_name[] = "mailgrid_policy";

// The guard's listener for milter_socket()'s notation.
ListenSpec guard_listen_spec(const std::string& form) {
    std::string text;
    if (form.rfind("unix:", 0) == 0) {
        text = form;
    } else {
        auto colon = form.find(':'), at = form.find('@');
        std::string port = form.substr(colon + 1, at - colon - 1), host = form.substr(at + 1);
        text = form.rfind("inet6:", 0) == 0 ? "[" + host + "]:" + port : host + ":" + port;
    }
    std::string err;
    auto spec = ListenSpec::parse(text, &err);
    if (!spec) throw std::runtime_error("milter " + form + ": " + err);
    spec->text = form;
    return *spec;
}

// A directory only this process (and, once privileges are dropped,
// daemon_user) can enter: libmilter's socket is not for anyone else.
std::string make_private_dir(const SuiteConfig& config) {
    const char* base = std::getenv("RUNTIME_DIRECTORY");  // systemd's RuntimeDirectory=
    if (!base || !*base) base = std::getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    std::string tmpl = std::string(base) + "/mailgrid_policy.XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error(tmpl + ": " + std::strerror(errno));
    auto user = config.get("daemon_user");
    if (!user.empty() && ::geteuid() == 0) {
        if (struct passwd* pw = ::getpwnam(user.c_str())) {
            if (::chown(tmpl.c_str(), pw->pw_uid, pw->pw_gid) != 0)
                throw std::runtime_error(tmpl + ": " + std::strerror(errno));
        }
    }
    return tmpl;
}

}  // namespace

std::optional<std::string> milter_socket(std::string_view listen, std::string* why) {
    auto t = std::string(trim(listen));
    auto fail = [&](std::string text) -> std::optional<std::string> {
        if (why) *why = std::move(text);
        return std::nullopt;
    };
    if (t.empty()) return fail("empty milter address");
    auto lower = to_lower(t);
    if (lower.rfind("unix:", 0) == 0 || lower.rfind("local:", 0) == 0) {
        auto path = t.substr(t.find(':') + 1);
        if (path.empty() || path.front() != '/') return fail("\"" + t + "\": a unix socket needs an absolute path");
        return "unix:" + path;
    }
    if (t.front() == '/') return "unix:" + t;
    if (t.find('@') != std::string::npos) {
        // libmilter's own inet:port@host / inet6:port@host.
        if (lower.rfind("inet:", 0) != 0 && lower.rfind("inet6:", 0) != 0)
            return fail("\"" + t + "\": expected inet:port@host or inet6:port@host");
        return t;
    }
    if (lower.rfind("inet:", 0) == 0) t = t.substr(5);
    std::string err;
    auto spec = ListenSpec::parse(t, &err);
    if (!spec || spec->kind != ListenSpec::Kind::Tcp) return fail("\"" + std::string(listen) + "\": " + err);
    if (spec->port == 0) return fail("\"" + std::string(listen) + "\": libmilter needs a port number");
    bool v6 = spec->host.find(':') != std::string::npos;
    std::string host = spec->host.empty() ? (v6 ? "::" : "0.0.0.0") : spec->host;
    return std::string(v6 ? "inet6:" : "inet:") + std::to_string(spec->port) + "@" + host;
}

Milter::Milter(asio::io_context& io, PolicyEngine& engine, const SuiteConfig& config, MetricsRegistry* metrics,
               Server& server)
    : io_(io), engine_(engine) {
    std::string why;
    auto sock = milter_socket(config.get("milter_listen"), &why);
    if (!sock) config.fail("milter_listen", why);
    socket_ = *sock;
    timeout_ = config.get_duration("milter_timeout");
    if (timeout_.count() <= 0) config.fail("milter_timeout", "must be more than 0");
    auto action = to_lower(config.get("milter_timeout_action"));
    if (action == "accept") timeout_accepts_ = true;
    else if (action != "tempfail") config.fail("milter_timeout_action", "expected tempfail or accept, got \"" + action + "\"");
    check_size_ = config.get_bool("milter_check_size");
    if (metrics) {
        m_requests_ = &metrics->counter("mailgrid_policy_requests_total", "Requests answered", {{"listener", "milter"}});
        m_timeouts_ = &metrics->counter("mailgrid_policy_milter_timeouts_total",
                                        "Milter callbacks that got no decision within milter_timeout");
        m_seconds_ = &metrics->histogram("mailgrid_policy_request_seconds", "Time to a decision",
                                         {{"listener", "milter"}});
        m_malformed_ = &metrics->counter("mailgrid_policy_milter_malformed_total",
                                         "Milter connections closed for a command libmilter would misread");
    }
    if (g_milter) throw std::runtime_error("only one milter per process");

    static smfiDesc desc{};
    desc.xxfi_name = g_name;
    desc.xxfi_version = SMFI_VERSION;
    desc.xxfi_flags = SMFIF_NONE;  // never changes a message
    desc.xxfi_connect = on_connect;
    desc.xxfi_envfrom = on_envfrom;
    desc.xxfi_envrcpt = on_envrcpt;
    desc.xxfi_header = on_header;
    desc.xxfi_eoh = on_eoh;
    desc.xxfi_body = on_body;
    desc.xxfi_eom = on_eom;
    desc.xxfi_abort = on_abort;
    desc.xxfi_close = on_close;
    auto spec = guard_listen_spec(socket_);
    private_dir_ = make_private_dir(config);
    private_socket_ = private_dir_ + "/milter";
    std::string conn = "unix:" + private_socket_;
    try {
        if (smfi_setconn(conn.data()) == MI_FAILURE) throw std::runtime_error("milter " + conn + ": bad address");
        if (smfi_register(desc) == MI_FAILURE) throw std::runtime_error("milter: libmilter refused the registration");
        if (smfi_opensocket(true) == MI_FAILURE) throw std::runtime_error("milter " + conn + ": cannot listen");
        auto user = config.get("daemon_user");
        if (!user.empty() && ::geteuid() == 0) {
            if (struct passwd* pw = ::getpwnam(user.c_str())) {
                if (::chown(private_socket_.c_str(), pw->pw_uid, pw->pw_gid) != 0)
                    throw std::runtime_error(private_socket_ + ": " + std::strerror(errno));
            }
        }
        ServiceOptions options;
        options.name = "milter";
        options.max_buffer = milter::kMaxFrame + 64;
        server.listen(spec, options, [this](Connection& c) { return relay(c); });
    } catch (...) {
        remove_private_socket();
        throw;
    }
    g_milter = this;
}

Milter::~Milter() {
    stop();
    remove_private_socket();
    g_milter = nullptr;
}

void Milter::remove_private_socket() {
    if (private_dir_.empty()) return;
    ::unlink(private_socket_.c_str());
    ::rmdir(private_dir_.c_str());
    private_dir_.clear();
}

awaitable<void> Milter::relay(Connection& mta) {
    auto ex = co_await asio::this_coro::executor;
    auto libmilter = std::make_shared<asio::local::stream_protocol::socket>(ex);
    asio::local::stream_protocol::endpoint where(private_socket_);
    asio::error_code ec;
    co_await libmilter->async_connect(where, asio::redirect_error(use_awaitable, ec));
    if (ec) {
        log::error("milter %s: cannot reach libmilter at %s: %s", mta.peer().c_str(), private_socket_.c_str(),
                   ec.message().c_str());
        co_return;
    }
    auto replies_done = std::make_shared<bool>(false);
    auto wake = std::make_shared<asio::steady_timer>(ex, asio::steady_timer::time_point::max());
    asio::co_spawn(ex, relay_replies(libmilter, mta), [replies_done, wake](std::exception_ptr) {
        *replies_done = true;
        wake->cancel();
    });
    for (;;) {
        std::size_t used = 0;
        auto frame = milter::next_frame(mta.buffer(), used);
        if (!frame) {
            if (!co_await mta.read_more()) break;
            continue;
        }
        std::optional<std::string> why;
        if (!frame->ok) why = frame->error;
        else why = milter::check_mta_command(frame->command, frame->payload);
        if (why) {
            if (m_malformed_) m_malformed_->inc();
            log::warning("milter %s: %s; closing the connection", mta.peer().c_str(), printable(*why).c_str());
            break;
        }
        std::string_view raw = mta.buffer().substr(0, used);
        co_await asio::async_write(*libmilter, asio::buffer(raw.data(), raw.size()),
                                   asio::redirect_error(use_awaitable, ec));
        if (ec) break;
        mta.consume(used);
    }
    libmilter->close(ec);
    mta.close();
    // relay_replies uses mta: it must be done before mta goes away.
    while (!*replies_done) co_await wake->async_wait(asio::redirect_error(use_awaitable, ec));
}

awaitable<void> Milter::relay_replies(std::shared_ptr<asio::local::stream_protocol::socket> libmilter, Connection& mta) {
    std::array<char, 16384> buf;
    for (;;) {
        asio::error_code ec;
        std::size_t n = co_await libmilter->async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
        if (ec || n == 0) break;
        if (!co_await mta.write(std::string_view(buf.data(), n))) break;
    }
    // libmilter hung up (or the MTA did): end the other direction too.
    asio::error_code ec;
    libmilter->close(ec);
    mta.close();
}

void Milter::start(std::function<void()> on_exit) {
    thread_ = std::thread([this, on_exit = std::move(on_exit)]() {
        int rc = smfi_main();
        if (rc != MI_SUCCESS) log::error("milter %s: libmilter stopped with an error", socket_.c_str());
        else log::info("milter %s: stopped", socket_.c_str());
        if (on_exit) asio::post(io_, on_exit);
    });
}

void Milter::stop() {
    if (!thread_.joinable()) return;
    smfi_stop();
    thread_.join();
}

Verdict Milter::decide(Session& s, CheckRequest request, bool final_size) {
    PolicyEngine* engine = &engine_;
    auto started = std::chrono::steady_clock::now();
    std::future<Verdict> answer;
    if (final_size) {
        auto job = [engine, request, recipients = s.recipients]() mutable -> awaitable<Verdict> {
            co_return co_await engine->check_final_size(std::move(request), std::move(recipients));
        };
        answer = asio::co_spawn(io_, std::move(job), asio::use_future);
    } else {
        auto job = [engine, request, state = s.state]() mutable -> awaitable<Verdict> {
            co_return co_await engine->check(std::move(request), state);
        };
        answer = asio::co_spawn(io_, std::move(job), asio::use_future);
    }
    Verdict v;
    bool decided = false;
    if (answer.wait_for(timeout_) == std::future_status::ready) {
        try {
            v = answer.get();
            decided = true;
        } catch (const std::exception& e) {
            log::error("milter: check failed: %s", e.what());
        }
    } else {
        if (m_timeouts_) m_timeouts_->inc();
        log::warning("milter: no decision within %lld ms for %s from %s (from=<%s> to=<%s>); %s",
                     static_cast<long long>(timeout_.count()), policy::stage_name(request.stage), s.client.c_str(),
                     printable(request.sender).c_str(), printable(request.recipient).c_str(),
                     timeout_accepts_ ? "accepting" : "answering 451 4.3.0");
    }
    if (!decided && !timeout_accepts_) {
        v = Verdict{};
        v.action = Verdict::Action::DeferIfPermit;
        v.code = 451;
        v.status = "4.3.0";
        v.text = "Temporary failure, try again later";
    }
    if (m_requests_) m_requests_->inc();
    if (m_seconds_) m_seconds_->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    return v;
}

}  // namespace mailgrid
