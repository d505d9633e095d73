// asio - the one event-loop model of every daemon: standalone Asio with
// C++20 coroutines, single-threaded per io_context.
#pragma once

#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>

namespace mailgrid {

template <typename T = void>
using awaitable = asio::awaitable<T>;
using asio::use_awaitable;

// Resume the calling coroutine after `d` (cancellable through the timer).
inline awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(d);
    asio::error_code ec;
    co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
}

}  // namespace mailgrid

namespace mailgrid {

// A small pool for work that would block the event loop: LDAP connection
// set-up, password hashing, file loading.
asio::thread_pool& blocking_pool();

// Waits until the jobs still on the blocking pool (an LDAP connect to a
// server that is down takes up to its timeout) have finished, and ends the
// pool. Their completions are posted to the io_context that awaits them:
// call this before that io_context is destroyed, or a job that finishes
// later posts to freed memory. At the end of a program only: run_blocking
// runs nothing afterwards.
void finish_blocking_work();

// GCC 12 destroys aggregate temporaries (brace-initialised structs,
// lambdas) that appear inside a co_await expression twice. Name them first:
//     auto job = [..] { .. };
//     auto r = co_await run_blocking(std::move(job));
template <typename F>
awaitable<decltype(std::declval<F&>()())> run_blocking_body(F f) {
    co_return f();
}

template <typename F>
auto run_blocking(F f) -> awaitable<decltype(f())> {
    co_return co_await asio::co_spawn(blocking_pool(), run_blocking_body(std::move(f)), use_awaitable);
}

}  // namespace mailgrid
