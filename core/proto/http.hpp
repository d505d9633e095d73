// http - the HTTP/1.x request head parser behind /metrics, the JSON API and
// nginx's auth_http. Pure; bodies are not accepted (GET and HEAD only).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mailgrid::http {

inline constexpr std::size_t kMaxHead = 16384;

struct Request {
    std::string method, target, version;
    std::vector<std::pair<std::string, std::string>> headers;  // names as sent
    // First header with this name (case-insensitive), "" if none.
    std::string header(std::string_view name) const;
    bool has_header(std::string_view name) const;
    bool keep_alive() const;
    std::string path() const;   // target without the query string
};

struct Parsed {
    enum class State { Incomplete, Ok, Error } state = State::Incomplete;
    Request request;
    std::size_t consumed = 0;
    int status = 0;          // for Error: 400, 405, 413, 431, 505
    std::string error;
};

Parsed parse_request(std::string_view buf, std::size_t max_head = kMaxHead);

struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};
std::string serialize(const Response& r, bool keep_alive, bool head_only = false);
const char* reason_phrase(int status);

// %XX decoding; '+' is left alone (not a form). Invalid escapes are kept
// literally, as nginx does when it escapes.
std::string percent_decode(std::string_view s);

}  // namespace mailgrid::http
