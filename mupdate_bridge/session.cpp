// session - one MUPDATE connection: banner, AUTHENTICATE, STARTTLS, the
// list commands and writes (answered once they are stored), and UPDATE,
// after which the connection only streams changes and answers NOOP.
//
// Commands that arrive pipelined are taken together: their writes become
// one commit and their answers one write. A read after a write waits for
// that write to be stored, so it never reports something that may still be
// refused.

#include "bridge.hpp"
#include "log/log.hpp"
#include "util/base64.hpp"
#include "util/secure.hpp"
#include "util/strings.hpp"

#ifndef MAILGRID_VERSION
#define MAILGRID_VERSION "0"
#endif

namespace mailgrid::bridge {

using location::Change;
using location::Mailbox;

namespace {

// Consecutive malformed commands after which a connection is dropped.
constexpr int kMaxErrors = 20;
constexpr std::size_t kChunk = 64 * 1024;
constexpr std::size_t kMaxSaslLine = 16 * 1024;

double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void append_entry(std::string& out, std::string_view tag, const std::string& name, const Mailbox& m) {
    if (m.active) mupdate::append_mailbox(out, tag, name, m.location, m.acl);
    else mupdate::append_reserve(out, tag, name, m.location);
}

awaitable<void> yield() { co_await asio::post(co_await asio::this_coro::executor, use_awaitable); }

}  // namespace

struct Bridge::Output {
    struct Piece {
        std::string text;
        long change = -1;  // index into batch: the answer depends on that commit
    };
    std::vector<Piece> pieces;
    std::vector<Change> batch;

    void text(std::string_view s) {
        if (pieces.empty() || pieces.back().change >= 0) pieces.push_back(Piece{});
        pieces.back().text.append(s);
    }
    void status(std::string_view tag, std::string_view word, std::string_view why) {
        text(mupdate::status(tag, word, why));
    }
    bool empty() const { return pieces.empty() && batch.empty(); }
};

struct Bridge::Session {
    Session(Connection& c, double share, std::size_t floor) : t(c, 1 << 20), guard(share, floor), peer(c.peer()) {}
    Transport t;
    mupdate::Reader reader;
    std::string identity;
    const Writer* writer = nullptr;
    PushGuard guard;
    std::string peer;
    bool closing = false;
    bool linger = false;  // close after an error: let the peer read it
    int errors = 0;

    std::string who() const { return peer + (identity.empty() ? "" : " (" + identity + ")"); }
};

std::string Bridge::banner(bool tls) const {
    const auto& mechs = (plaintext_auth_ || tls) ? mechs_tls_ : mechs_plain_;
    std::string role = follow_.empty() ? std::string("(master)") : "mupdate://" + follow_ + "/";
    return mupdate::banner(mechs, tls_ctx_ && !tls, servername_, "mailgrid mupdate_bridge", MAILGRID_VERSION, role);
}

awaitable<void> Bridge::serve(Connection& c) {
    m_.sessions->add(1);
    struct Count {
        Gauge* g;
        ~Count() { g->add(-1); }
    } count{m_.sessions};
    Session s(c, push_max_share_, push_floor_);
    if (!co_await s.t.write(banner(false))) co_return;
    Output out;
    for (;;) {
        bool wait_input = false;
        while (!wait_input && !s.closing) {
            std::size_t used = 0;
            auto ev = s.reader.next(s.t.buffer(), used);
            s.t.consume(used);
            if (!ev) break;
            switch (ev->kind) {
                case mupdate::Event::Kind::Continue:
                    if (!co_await flush(s, out)) co_return;
                    if (!co_await s.t.write(mupdate::kGoAhead)) co_return;
                    wait_input = true;
                    break;
                case mupdate::Event::Kind::Error:
                    m_.bad_commands->inc();
                    log::warning("%s: %s: %s", s.who().c_str(), printable(ev->tag, 64).c_str(), ev->message.c_str());
                    out.status(ev->tag, "BAD", ev->message);
                    if (ev->fatal || ++s.errors > kMaxErrors) {
                        out.status("*", "BYE", ev->fatal ? "cannot follow this input" : "too many errors");
                        s.closing = s.linger = true;
                    }
                    break;
                case mupdate::Event::Kind::Line:
                    if (!co_await handle(s, ev->line, out)) co_return;
                    break;
            }
        }
        if (!co_await flush(s, out)) co_return;
        if (s.closing) {
            if (s.linger) co_await c.linger_close();
            co_return;
        }
        if (!co_await s.t.read_more()) {
            if (s.t.buffer().size() >= (1u << 20)) log::warning("%s: input buffer full; closing", s.who().c_str());
            co_return;
        }
    }
}

awaitable<bool> Bridge::flush(Session& s, Output& out) {
    if (!out.batch.empty()) {
        auto t0 = std::chrono::steady_clock::now();
        auto r = co_await commit(std::move(out.batch));
        out.batch.clear();
        if (!r.ok) {
            // Nothing of this pipeline is answered: the client must not
            // take any of it as done.
            out.pieces.clear();
            co_await s.t.write(mupdate::status("*", "BYE", "mailbox list unavailable; try again"));
            co_return false;
        }
        for (auto& [idx, current] : r.conflicts)
            for (auto& p : out.pieces)
                if (p.change == static_cast<long>(idx)) {
                    auto tag = p.text.substr(0, p.text.find(' '));
                    p.text = mupdate::status(tag, "NO", "mailbox changed on another server; try again");
                }
        m_.write_seconds->observe(since(t0));
    }
    if (out.pieces.empty()) co_return true;
    std::string all;
    for (auto& p : out.pieces) all += p.text;
    out.pieces.clear();
    co_return co_await s.t.write(all);
}

awaitable<bool> Bridge::handle(Session& s, const mupdate::Line& line, Output& out) {
    const std::string& w = line.word;
    const std::string& tag = line.tag;
    auto args_exactly = [&](std::size_t n) {
        if (line.args.size() < n) out.status(tag, "BAD", "Missing arguments");
        else if (line.args.size() > n) out.status(tag, "BAD", "Extra arguments");
        else return true;
        return false;
    };
    // Unknown commands and commands before login count as errors too: a
    // peer that speaks something else entirely is dropped soon.
    auto error = [&](const char* text) {
        m_.bad_commands->inc();
        out.status(tag, "BAD", text);
        if (++s.errors > kMaxErrors) {
            out.status("*", "BYE", "too many errors");
            s.closing = s.linger = true;
        }
    };
    if (w == "LOGOUT") {
        if (args_exactly(0)) {
            out.status(tag, "OK", "bye-bye");
            s.closing = true;
        }
        co_return true;
    }
    if (w == "AUTHENTICATE") co_return co_await authenticate(s, line, out);
    if (w == "STARTTLS") co_return co_await starttls(s, line, out);
    if (!s.writer) {
        error("Please login first");
        co_return true;
    }
    bool known = true;
    if (w == "NOOP") {
        if (args_exactly(0)) out.status(tag, "OK", "Noop done");
    } else if (w == "FIND") {
        if (args_exactly(1)) {
            if (!out.batch.empty() && !co_await flush(s, out)) co_return false;
            find(s, line, out);
        }
    } else if (w == "LIST") {
        if (line.args.size() > 1) {
            out.status(tag, "BAD", "Extra arguments");
        } else {
            co_return co_await list(s, line, out);
        }
    } else if (w == "UPDATE") {
        if (line.args.size() > 30) {
            out.status(tag, "BAD", "Extra arguments");
        } else if (std::any_of(line.args.begin(), line.args.end(), [](const std::string& a) { return a.empty(); })) {
            out.status(tag, "BAD", "Badly formed arguments");
        } else {
            if (!co_await flush(s, out)) co_return false;
            co_await stream(s, line);
            s.closing = true;
        }
    } else if (w == "ACTIVATE") {
        if (args_exactly(3)) write_op(s, Op::Activate, line, out);
    } else if (w == "RESERVE") {
        if (args_exactly(2)) write_op(s, Op::Reserve, line, out);
    } else if (w == "DEACTIVATE") {
        if (args_exactly(2)) write_op(s, Op::Deactivate, line, out);
    } else if (w == "DELETE") {
        if (args_exactly(1)) write_op(s, Op::Delete, line, out);
    } else {
        log::warning("%s: unknown command %s", s.who().c_str(), printable(w, 64).c_str());
        error("Unrecognized command");
        known = false;
    }
    if (known) s.errors = 0;
    if (out.batch.size() >= max_batch_ && !co_await flush(s, out)) co_return false;
    co_return true;
}

void Bridge::find(Session&, const mupdate::Line& line, Output& out) {
    auto t0 = std::chrono::steady_clock::now();
    std::string text;
    if (const Mailbox* m = list_.find(line.args[0])) append_entry(text, line.tag, line.args[0], *m);
    mupdate::append_status(text, line.tag, "OK", "Search completed");
    out.text(text);
    m_.find_seconds->observe(since(t0));
}

awaitable<bool> Bridge::list(Session& s, const mupdate::Line& line, Output& out) {
    if (!co_await flush(s, out)) co_return false;
    auto t0 = std::chrono::steady_clock::now();
    std::string prefix = line.args.empty() ? std::string() : line.args[0];
    std::string after, chunk;
    std::size_t matched = 0;
    bool more = true;
    while (more) {
        more = list_.visit(after, prefix, nullptr, 2000, [&](const std::string& name, const Mailbox& m) {
            ++matched;
            append_entry(chunk, line.tag, name, m);
        });
        if (chunk.size() >= kChunk || !more) {
            if (!more) mupdate::append_status(chunk, line.tag, "OK", "list complete");
            if (!co_await s.t.write(chunk)) co_return false;
            chunk.clear();
        }
        if (more) co_await yield();
    }
    // A backend's push starts with LIST "servername!": what it may delete
    // is measured against this.
    if (!prefix.empty() && prefix.back() == '!' && prefix.find('!') == prefix.size() - 1)
        s.guard.listed(prefix.substr(0, prefix.size() - 1), matched);
    m_.list_seconds->observe(since(t0));
    log::debug("%s: LIST \"%s\": %zu mailboxes in %.3fs", s.who().c_str(), printable(prefix).c_str(), matched, since(t0));
    co_return true;
}

void Bridge::write_op(Session& s, Op op, const mupdate::Line& line, Output& out) {
    const std::string& tag = line.tag;
    const std::string& name = line.args[0];
    std::string_view loc = line.args.size() > 1 ? std::string_view(line.args[1]) : std::string_view();
    std::string_view acl = line.args.size() > 2 ? std::string_view(line.args[2]) : std::string_view();
    if (!follow_.empty()) {
        refused("read_only").inc();
        out.status(tag, "NO", "read-only: this server follows " + follow_);
        return;
    }
    if (!s.writer->may_write) {
        refused("read_only").inc();
        log::warning("%s: %s %s: refused, not in mupdate_writers", s.who().c_str(), op_name(op), printable(name).c_str());
        out.status(tag, "NO", "read-only session");
        return;
    }
    if (!location::valid_name(name) || (op != Op::Delete && !location::valid_location(loc)) || !location::valid_acl(acl)) {
        refused("invalid").inc();
        log::warning("%s: %s %s: invalid mailbox name, location or ACL", s.who().c_str(), op_name(op),
                     printable(name).c_str());
        out.status(tag, "NO", "invalid mailbox name, location or ACL");
        return;
    }
    const Mailbox* cur = list_.find(name);
    std::optional<Mailbox> current = cur ? std::optional<Mailbox>(*cur) : std::nullopt;

    if (op == Op::Delete && current) {
        std::string server(location::location_server(current->location));
        if (!s.guard.allow_delete(server)) {
            auto undo = s.guard.take_deleted(server);
            std::size_t restored = 0;
            for (auto& [n, old] : undo) {
                if (list_.find(n)) continue;
                list_.set(n, old);
                out.batch.push_back(Change{n, old, std::nullopt});
                ++restored;
            }
            refused("push_guard").inc();
            log::warning("%s: a push for %s would delete more than %zu of its %zu mailboxes (mupdate_push_max_delete); "
                         "refused at %s, %zu delete(s) of this push undone",
                         s.who().c_str(), server.c_str(), s.guard.limit(server), s.guard.listed_count(server),
                         printable(name).c_str(), restored);
            out.status(tag, "NO", "refusing to delete this many of " + server + "'s mailboxes in one push");
            return;
        }
    }

    Decision d = decide(op, name, loc, acl, current ? &*current : nullptr, *s.writer);
    switch (d.kind) {
        case Decision::Kind::Refuse:
            refused(d.conflict ? "conflict" : "policy").inc();
            if (!d.why.empty()) log::warning("%s: %s: refused", s.who().c_str(), printable(d.why, 400).c_str());
            out.status(tag, "NO", d.reply);
            return;
        case Decision::Kind::Unchanged:
            out.status(tag, "OK", "done");
            return;
        case Decision::Kind::Apply:
            break;
    }
    if (d.value) list_.set(name, *d.value);
    else list_.erase(name);
    if (op == Op::Delete) s.guard.deleted(name, *current);
    m_.updates[op]->inc();
    out.batch.push_back(Change{name, std::move(d.value), std::move(current)});
    out.pieces.push_back(Output::Piece{mupdate::status(tag, "OK", "done"), static_cast<long>(out.batch.size() - 1)});
}

awaitable<bool> Bridge::authenticate(Session& s, const mupdate::Line& line, Output& out) {
    const std::string& tag = line.tag;
    if (line.args.empty() || line.args.size() > 2) {
        out.status(tag, "BAD", line.args.empty() ? "Missing arguments" : "Extra arguments");
        co_return true;
    }
    if (s.writer) {
        out.status(tag, "BAD", "already authenticated");
        co_return true;
    }
    if (!co_await flush(s, out)) co_return false;
    std::string mech = line.args[0];
    for (auto& ch : mech) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    std::optional<std::string> initial;
    if (line.args.size() == 2) {
        initial = line.args[1] == "=" ? std::optional<std::string>("") : base64_decode(line.args[1]);
        if (!initial) {
            out.status(tag, "NO", "Invalid base64 string");
            co_return true;
        }
    }
    struct Wipe {
        std::optional<std::string>& s;
        ~Wipe() {
            if (s) secure_wipe(*s);
        }
    } wipe{initial};

    // A PLAIN login that worked recently is accepted again without
    // libsasl2: a backend opens one connection per mailbox operation.
    std::string cache_key;
    if (mech == "PLAIN" && initial && auth_cache_ttl_.count() > 0) {
        cache_key = login_cache_mac_->digest(*initial);
        auto it = login_cache_.find(cache_key);
        if (it != login_cache_.end() && it->second.expires > std::chrono::steady_clock::now()) {
            const Writer* w = find_identity(identities_, it->second.identity);
            if (w) {
                s.writer = w;
                s.identity = it->second.identity;
                m_.auth["cached"]->inc();
                log::debug("%s: %s authenticated (PLAIN, cached)", s.peer.c_str(), s.identity.c_str());
                out.status(tag, "OK", "Authenticated");
                co_return true;
            }
        }
    }

    bool plaintext = plaintext_auth_ || s.t.tls();
    auto x = sasl_->exchange(plaintext, s.t.tls());
    SaslStep step = co_await sasl_->start(x, mech, initial ? &*initial : nullptr);
    while (step.kind == SaslStep::Kind::Continue) {
        // RFC 3656: challenges are bare base64 lines, and so are answers.
        if (!co_await s.t.write(base64_encode(step.challenge) + "\r\n")) co_return false;
        std::optional<std::string> resp;
        for (;;) {
            std::size_t used = 0;
            bool too_long = false;
            resp = mupdate::next_text_line(s.t.buffer(), used, kMaxSaslLine, &too_long);
            s.t.consume(used);
            if (too_long) {
                out.status(tag, "NO", "authentication response too long");
                co_return true;
            }
            if (resp) break;
            if (!co_await s.t.read_more()) co_return false;
        }
        if (*resp == "*") {
            out.status(tag, "NO", "Client canceled authentication");
            co_return true;
        }
        auto decoded = resp->empty() ? std::optional<std::string>("") : base64_decode(*resp);
        secure_wipe(*resp);
        if (!decoded) {
            out.status(tag, "NO", "Invalid base64 string");
            co_return true;
        }
        step = co_await sasl_->step(x, std::move(*decoded));
    }
    if (step.kind == SaslStep::Kind::Fail) {
        m_.auth["fail"]->inc();
        log::warning("%s: authentication failed (%s): %s", s.peer.c_str(), mech.c_str(), printable(step.error).c_str());
        if (auth_fail_delay_.count() > 0) co_await sleep_for(auth_fail_delay_);
        out.status(tag, "NO", step.bad_credentials ? "authentication failed" : "authentication unavailable");
        co_return true;
    }
    const Writer* w = find_identity(identities_, step.identity);
    if (!w) {
        m_.auth["unauthorized"]->inc();
        log::warning("%s: %s authenticated but is in neither mupdate_writers nor mupdate_readers", s.peer.c_str(),
                     printable(step.identity).c_str());
        out.status(tag, "NO", "not authorized");
        co_return true;
    }
    s.writer = w;
    s.identity = step.identity;
    m_.auth["ok"]->inc();
    log::info("%s: %s authenticated (%s%s)", s.peer.c_str(), printable(s.identity).c_str(), mech.c_str(),
              s.t.tls() ? "+TLS" : "");
    if (!cache_key.empty()) {
        if (login_cache_.size() > 1000) login_cache_.clear();
        login_cache_[cache_key] = CachedLogin{s.identity, std::chrono::steady_clock::now() + auth_cache_ttl_};
    }
    out.status(tag, "OK", "Authenticated");
    co_return true;
}

awaitable<bool> Bridge::starttls(Session& s, const mupdate::Line& line, Output& out) {
    const std::string& tag = line.tag;
    if (!tls_ctx_) {
        out.status(tag, "BAD", "Unrecognized command");
        co_return true;
    }
    if (!line.args.empty()) {
        out.status(tag, "BAD", "Extra arguments");
        co_return true;
    }
    if (s.t.tls()) {
        out.status(tag, "BAD", "Already did a successful Starttls");
        co_return true;
    }
    if (s.writer) {
        out.status(tag, "BAD", "Can't Starttls after authentication");
        co_return true;
    }
    out.status(tag, "OK", "Begin TLS negotiation now");
    if (!co_await flush(s, out)) co_return false;
    s.t.discard();
    if (!co_await s.t.start_tls(*tls_ctx_)) co_return false;
    co_return co_await s.t.write(banner(true));
}

awaitable<void> Bridge::stream(Session& s, const mupdate::Line& line) {
    auto f = std::make_shared<Follower>(io_.get_executor());
    f->tag = line.tag;
    if (!line.args.empty()) f->hosts = std::set<std::string>(line.args.begin(), line.args.end());
    followers_.insert(f);
    update_gauges();
    bool pump_done = false;
    asio::steady_timer done(io_);
    done.expires_at(std::chrono::steady_clock::time_point::max());
    asio::co_spawn(io_, pump(s, f, &pump_done, &done), asio::detached);

    // From here on this side only reads: NOOP and LOGOUT are answered by
    // the pump, after the changes queued before them.
    for (;;) {
        for (;;) {
            std::size_t used = 0;
            auto ev = s.reader.next(s.t.buffer(), used);
            s.t.consume(used);
            if (!ev) break;
            if (ev->kind == mupdate::Event::Kind::Continue) {
                f->replies.emplace_back(mupdate::kGoAhead);
            } else if (ev->kind == mupdate::Event::Kind::Error) {
                m_.bad_commands->inc();
                f->replies.push_back(mupdate::status(ev->tag, "BAD", ev->message));
                if (ev->fatal) f->closing = true;
            } else if (ev->line.word == "NOOP") {
                f->replies.push_back(mupdate::status(ev->line.tag, "OK", "Noop done"));
            } else if (ev->line.word == "LOGOUT") {
                f->replies.push_back(mupdate::status(ev->line.tag, "OK", "bye-bye"));
                f->closing = true;
            } else {
                f->replies.push_back(mupdate::status(ev->line.tag, "BAD", "not legal when streaming"));
            }
            f->wake.cancel();
            if (f->closing) break;
        }
        if (f->closing || pump_done) break;
        if (!co_await s.t.read_more()) break;
    }
    if (!f->closing) f->closed = true;
    f->wake.cancel();
    while (!pump_done) {
        asio::error_code ec;
        co_await done.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    followers_.erase(f);
    update_gauges();
}

awaitable<void> Bridge::pump(Session& s, std::shared_ptr<Follower> f, bool* pump_done, asio::steady_timer* done) {
    auto t0 = std::chrono::steady_clock::now();
    std::string after, chunk;
    std::size_t sent = 0;
    bool more = true, ok = true;
    while (more && ok && !f->closed) {
        more = list_.visit(after, "", f->hosts ? &*f->hosts : nullptr, 2000,
                           [&](const std::string& name, const Mailbox& m) {
                               ++sent;
                               append_entry(chunk, f->tag, name, m);
                           });
        if (chunk.size() >= kChunk || !more) {
            if (!more) mupdate::append_status(chunk, f->tag, "OK", "streaming starts");
            ok = co_await s.t.write(chunk);
            chunk.clear();
        }
        // Let every other client in between: a new follower's list never
        // holds up anyone else.
        if (more) co_await yield();
    }
    f->syncing = false;
    if (ok && !f->closed) {
        m_.sync_seconds->observe(since(t0));
        log::info("%s: UPDATE%s: sent %zu mailboxes in %.2fs; streaming changes", s.who().c_str(),
                  f->hosts ? " (partial)" : "", sent, since(t0));
    }
    while (ok && !f->closed) {
        if (f->pending.empty() && f->replies.empty()) {
            if (f->closing) break;
            f->wake.expires_at(std::chrono::steady_clock::time_point::max());
            asio::error_code ec;
            co_await f->wake.async_wait(asio::redirect_error(use_awaitable, ec));
            continue;
        }
        auto pending = std::move(f->pending);
        f->pending.clear();
        f->pending_set.clear();
        auto replies = std::move(f->replies);
        f->replies.clear();
        auto first = f->first_pending;
        std::string text;
        for (const auto& name : pending) {
            // The mailbox as it is now: several changes to it are one line.
            if (const Mailbox* m = list_.find(name)) append_entry(text, f->tag, name, *m);
            else mupdate::append_delete(text, f->tag, name);
            if (text.size() >= 4 * kChunk) {
                if (!(ok = co_await s.t.write(text))) break;
                text.clear();
            }
        }
        if (!ok) break;
        for (const auto& r : replies) text += r;
        ok = co_await s.t.write(text);
        if (ok && !pending.empty()) m_.stream_delay->observe(since(first));
    }
    if (!ok) s.t.connection().close();
    *pump_done = true;
    done->cancel();
}

}  // namespace mailgrid::bridge
