// http server glue: runs a request handler over a Connection with
// keep-alive, limits and error replies. Used for /metrics, /healthz, the
// locate API and auth_http.
#pragma once

#include <functional>

#include "net/server.hpp"
#include "proto/http.hpp"

namespace mailgrid {

using HttpHandler = std::function<awaitable<http::Response>(const http::Request&, Connection&)>;

awaitable<void> serve_http(Connection& c, const HttpHandler& handler);

}  // namespace mailgrid
