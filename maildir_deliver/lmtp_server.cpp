// lmtp_server - maildir_deliver's LMTP mode (see lmtp_server.hpp).
#include "lmtp_server.hpp"

#include <chrono>

#include "log/log.hpp"

namespace mailgrid {

namespace {

using Clock = std::chrono::steady_clock;

struct Accepted {
    Recipient recipient;
    Target target;
};

}  // namespace

awaitable<void> serve_lmtp(Connection& c, Agent& agent, const lmtp::Options& options) {
    lmtp::Session session(options);
    if (!co_await c.write(session.greeting())) co_return;
    std::vector<Accepted> accepted;
    std::string out;
    for (;;) {
        bool close = false;
        for (;;) {
            std::size_t consumed = 0;
            auto event = session.next(c.buffer(), consumed);
            c.consume(consumed);
            if (!event) break;
            if (event->kind == lmtp::Event::Kind::Reply) {
                out += event->reply;
                if (!session.in_transaction()) accepted.clear();
                if (event->close) {
                    close = true;
                    break;
                }
                continue;
            }
            if (event->kind == lmtp::Event::Kind::Recipient) {
                std::string why;
                auto r = agent.store().parse_address(event->address, &why);
                if (!r) {
                    session.recipient(false);
                    out += agent.store().bad_address(why).lmtp_reply(event->address);
                    agent.store().record(agent.store().bad_address(why), event->address, {}, 0, 0);
                    continue;
                }
                Target t = co_await agent.resolve(*r);
                if (t.kind != Target::Kind::Mailbox) {
                    session.recipient(false);
                    Outcome o = agent.store().refused(t);
                    out += o.lmtp_reply(event->address);
                    agent.store().record(o, event->address, {}, 0, 0);
                    continue;
                }
                session.recipient(true);
                out += lmtp::reply(250, "2.1.5", "ok");
                accepted.push_back({std::move(*r), std::move(t)});
                continue;
            }
            // The message: the replies so far go out first, then every
            // recipient is delivered at once.
            if (!out.empty()) {
                if (!co_await c.write(out)) co_return;
                out.clear();
            }
            auto started = Clock::now();
            auto header = std::make_shared<const std::string>("Return-Path: <" + session.sender() + ">\n");
            auto message = std::make_shared<const std::string>(session.take_message());
            std::vector<std::pair<Recipient, Target>> to;
            for (auto& a : accepted) to.emplace_back(a.recipient, a.target);
            std::vector<Outcome> outcomes;
            try {
                outcomes = co_await agent.deliver_all(std::move(to), header, message);
            } catch (const std::exception& e) {
                log::error("delivery: %s", e.what());
            }
            outcomes.resize(accepted.size(), Outcome::temporary("4.3.0", "internal error", "delivery failed"));
            double seconds = std::chrono::duration<double>(Clock::now() - started).count();
            for (std::size_t i = 0; i < accepted.size(); ++i) {
                out += outcomes[i].lmtp_reply(accepted[i].recipient.address);
                agent.store().record(outcomes[i], accepted[i].recipient.address, {}, header->size() + message->size(),
                                     seconds);
            }
            accepted.clear();
            session.end_transaction();
        }
        if (!out.empty()) {
            if (!co_await c.write(out)) co_return;
            out.clear();
        }
        if (close) co_return;
        if (!co_await c.read_more()) co_return;
    }
}

}  // namespace mailgrid
