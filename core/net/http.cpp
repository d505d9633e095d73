#include "net/http.hpp"

namespace mailgrid {

awaitable<void> serve_http(Connection& c, const HttpHandler& handler) {
    for (;;) {
        auto parsed = http::parse_request(c.buffer());
        if (parsed.state == http::Parsed::State::Incomplete) {
            if (!co_await c.read_more()) co_return;
            continue;
        }
        if (parsed.state == http::Parsed::State::Error) {
            http::Response r;
            r.status = parsed.status;
            r.body = parsed.error + "\n";
            co_await c.write(http::serialize(r, false));
            co_return;
        }
        c.consume(parsed.consumed);
        auto response = co_await handler(parsed.request, c);
        bool keep = parsed.request.keep_alive();
        if (!co_await c.write(http::serialize(response, keep, parsed.request.method == "HEAD"))) co_return;
        if (!keep) co_return;
    }
}

}  // namespace mailgrid
