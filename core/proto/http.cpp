#include "proto/http.hpp"

#include "util/strings.hpp"

namespace mailgrid::http {

std::string Request::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return {};
}

bool Request::has_header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return true;
    return false;
}

bool Request::keep_alive() const {
    auto c = to_lower(header("Connection"));
    if (version == "HTTP/1.1") return c.find("close") == std::string::npos;
    return c.find("keep-alive") != std::string::npos;
}

std::string Request::path() const {
    auto q = target.find('?');
    return q == std::string::npos ? target : target.substr(0, q);
}

namespace {
bool token_char(unsigned char c) {
    if (c <= 0x20 || c >= 0x7F) return false;
    switch (c) {
        case '(': case ')': case '<': case '>': case '@': case ',': case ';': case ':': case '\\':
        case '"': case '/': case '[': case ']': case '?': case '=': case '{': case '}':
            return false;
        default: return true;
    }
}
Parsed error(int status, std::string why, std::size_t consumed) {
    Parsed p;
    p.state = Parsed::State::Error;
    p.status = status;
    p.error = std::move(why);
    p.consumed = consumed;
    return p;
}
}  // namespace

Parsed parse_request(std::string_view buf, std::size_t max_head) {
    // Find the end of the head: an empty line (CRLF or bare LF).
    std::size_t end = std::string_view::npos, body_start = 0;
    for (std::size_t i = 0; i < buf.size(); ++i) {
        if (buf[i] != '\n') continue;
        if (i + 1 < buf.size() && buf[i + 1] == '\n') { end = i + 1; body_start = i + 2; break; }
        if (i + 2 < buf.size() && buf[i + 1] == '\r' && buf[i + 2] == '\n') { end = i + 1; body_start = i + 3; break; }
    }
    if (end == std::string_view::npos) {
        // +1: the buffer may end in "\n\r" of a head that ends at max_head.
        if (buf.size() > max_head + 1) return error(431, "request header too large", buf.size());
        return {};
    }
    if (end > max_head) return error(431, "request header too large", body_start);

    Parsed p;
    p.consumed = body_start;
    std::string_view head = buf.substr(0, end);
    bool first = true;
    std::size_t pos = 0;
    while (pos < head.size()) {
        auto nl = head.find('\n', pos);
        std::string_view line = head.substr(pos, nl - pos);
        pos = nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.find('\r') != std::string_view::npos || line.find('\0') != std::string_view::npos)
            return error(400, "bare CR or NUL in request head", body_start);
        if (first) {
            first = false;
            auto sp1 = line.find(' ');
            auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
            if (sp1 == std::string_view::npos || sp2 == std::string_view::npos)
                return error(400, "malformed request line", body_start);
            p.request.method = std::string(line.substr(0, sp1));
            p.request.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
            p.request.version = std::string(line.substr(sp2 + 1));
            for (unsigned char c : p.request.method)
                if (!token_char(c)) return error(400, "malformed method", body_start);
            if (p.request.target.empty() || p.request.target.find(' ') != std::string::npos)
                return error(400, "malformed request target", body_start);
            if (p.request.version != "HTTP/1.0" && p.request.version != "HTTP/1.1")
                return error(505, "unsupported HTTP version", body_start);
            continue;
        }
        if (line.front() == ' ' || line.front() == '\t') return error(400, "folded header line", body_start);
        auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) return error(400, "malformed header line", body_start);
        std::string_view name = line.substr(0, colon);
        for (unsigned char c : name)
            if (!token_char(c)) return error(400, "malformed header name", body_start);
        p.request.headers.emplace_back(std::string(name), std::string(trim(line.substr(colon + 1))));
        if (p.request.headers.size() > 100) return error(431, "too many headers", body_start);
    }
    if (first) return error(400, "empty request", body_start);
    auto cl = p.request.header("Content-Length");
    if ((!cl.empty() && cl != "0") || p.request.has_header("Transfer-Encoding"))
        return error(413, "request bodies are not accepted", body_start);
    if (p.request.method != "GET" && p.request.method != "HEAD") return error(405, "method not allowed", body_start);
    p.state = Parsed::State::Ok;
    return p;
}

const char* reason_phrase(int s) {
    switch (s) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 413: return "Payload Too Large";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default: return "Unknown";
    }
}

std::string serialize(const Response& r, bool keep_alive, bool head_only) {
    std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\n";
    if (!r.content_type.empty()) out += "Content-Type: " + r.content_type + "\r\n";
    for (const auto& [k, v] : r.headers) out += k + ": " + v + "\r\n";
    out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
    if (!head_only) out += r.body;
    return out;
}

std::string percent_decode(std::string_view s) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            int h = hex(s[i + 1]), l = hex(s[i + 2]);
            if (h >= 0 && l >= 0) {
                out.push_back(static_cast<char>(h * 16 + l));
                i += 2;
                continue;
            }
        }
        out.push_back(s[i]);
    }
    return out;
}

}  // namespace mailgrid::http
