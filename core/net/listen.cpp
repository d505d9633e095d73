#include "net/listen.hpp"

#include "util/strings.hpp"

namespace mailgrid {

std::optional<ListenSpec> ListenSpec::parse(std::string_view s, std::string* error) {
    auto fail = [&](const std::string& why) -> std::optional<ListenSpec> {
        if (error) *error = why + ": " + std::string(s);
        return std::nullopt;
    };
    ListenSpec spec;
    spec.text = std::string(s);
    std::string_view v = trim(s);
    if (v.rfind("unix:", 0) == 0 || v.rfind("local:", 0) == 0 || (!v.empty() && v.front() == '/')) {
        if (v.front() != '/') v.remove_prefix(v.find(':') + 1);
        if (v.empty() || v.front() != '/') return fail("unix socket path must be absolute");
        spec.kind = Kind::Unix;
        spec.path = std::string(v);
        return spec;
    }
    if (v.rfind("inet:", 0) == 0) v.remove_prefix(5);
    std::string_view host, port;
    if (!v.empty() && v.front() == '[') {
        auto close = v.find(']');
        if (close == std::string_view::npos || close + 1 >= v.size() || v[close + 1] != ':')
            return fail("bad [address]:port");
        host = v.substr(1, close - 1);
        port = v.substr(close + 2);
    } else {
        auto colon = v.rfind(':');
        if (colon == std::string_view::npos) {
            port = v;  // just a port: all addresses
        } else {
            host = v.substr(0, colon);
            port = v.substr(colon + 1);
        }
    }
    auto p = parse_int(port);
    if (!p || *p < 0 || *p > 65535) return fail("bad port");
    spec.host = std::string(host);
    spec.port = static_cast<std::uint16_t>(*p);
    return spec;
}

}  // namespace mailgrid
