// policy - Postfix policy delegation codec (see policy.hpp).
#include "proto/policy.hpp"

#include "util/strings.hpp"

namespace mailgrid::policy {

namespace {

struct StageName {
    std::string_view name;
    Stage stage;
};
constexpr StageName kStages[] = {
    {"CONNECT", Stage::Connect}, {"EHLO", Stage::Ehlo}, {"HELO", Stage::Helo},
    {"MAIL", Stage::Mail},       {"RCPT", Stage::Rcpt}, {"DATA", Stage::Data},
    {"END-OF-MESSAGE", Stage::EndOfMessage}, {"VRFY", Stage::Vrfy}, {"ETRN", Stage::Etrn},
};

// "" (unavailable) is 0, as Postfix may send it.
bool parse_count(std::string_view v, std::uint64_t& out) {
    std::uint64_t n = 0;
    if (v.size() > 20) return false;
    for (char c : v) {
        if (c < '0' || c > '9') return false;
        auto d = static_cast<std::uint64_t>(c - '0');
        if (n > (UINT64_MAX - d) / 10) return false;
        n = n * 10 + d;
    }
    out = n;
    return true;
}

Parsed failure(std::string why) {
    Parsed p;
    p.error = std::move(why);
    return p;
}

// Stores one attribute; an error text if its value is unusable.
std::optional<std::string> assign(Request& r, std::string_view name, std::string_view value) {
    auto set = [&](std::string& field) { field.assign(value); };
    if (name == "request") set(r.request);
    else if (name == "protocol_state") {
        set(r.protocol_state);
        r.stage = parse_stage(value);
    } else if (name == "protocol_name") set(r.protocol_name);
    else if (name == "helo_name") set(r.helo_name);
    else if (name == "queue_id") set(r.queue_id);
    else if (name == "instance") set(r.instance);
    else if (name == "sender") set(r.sender);
    else if (name == "recipient") set(r.recipient);
    else if (name == "client_address") set(r.client_address);
    else if (name == "client_name") set(r.client_name);
    else if (name == "reverse_client_name") set(r.reverse_client_name);
    else if (name == "sasl_method") set(r.sasl_method);
    else if (name == "sasl_username") set(r.sasl_username);
    else if (name == "sasl_sender") set(r.sasl_sender);
    else if (name == "size") {
        if (!parse_count(value, r.size)) return "size is not a number: \"" + printable(value, 40) + "\"";
    } else if (name == "recipient_count") {
        if (!parse_count(value, r.recipient_count))
            return "recipient_count is not a number: \"" + printable(value, 40) + "\"";
    } else {
        ++r.ignored;
    }
    return std::nullopt;
}

}  // namespace

Stage parse_stage(std::string_view protocol_state) {
    for (const auto& s : kStages)
        if (iequals(s.name, protocol_state)) return s.stage;
    return Stage::Unknown;
}

const char* stage_name(Stage s) {
    for (const auto& n : kStages)
        if (n.stage == s) return n.name.data();
    return "UNKNOWN";
}

bool Request::same_fields(const Request& o) const {
    return request == o.request && protocol_state == o.protocol_state && stage == o.stage &&
           protocol_name == o.protocol_name && helo_name == o.helo_name && queue_id == o.queue_id &&
           instance == o.instance && sender == o.sender && recipient == o.recipient &&
           client_address == o.client_address && client_name == o.client_name &&
           reverse_client_name == o.reverse_client_name && sasl_method == o.sasl_method &&
           sasl_username == o.sasl_username && sasl_sender == o.sasl_sender && size == o.size &&
           recipient_count == o.recipient_count;
}

std::optional<Parsed> parse_request(std::string_view buf, std::size_t& consumed) {
    consumed = 0;
    Parsed out;
    Request& r = out.request;
    std::size_t pos = 0;
    // Every check below depends only on bytes before the current line's
    // end, so a request fed in pieces fails exactly when it fails whole.
    for (;;) {
        auto nl = buf.find('\n', pos);
        std::size_t end = nl == std::string_view::npos ? buf.size() : nl;
        if (end - pos > kMaxLine) {
            consumed = buf.size();
            return failure("attribute line " + std::to_string(r.attributes + 1) + " is longer than " +
                           std::to_string(kMaxLine) + " bytes");
        }
        if (nl == std::string_view::npos ? buf.size() >= kMaxRequest : nl >= kMaxRequest) {
            consumed = buf.size();
            return failure("request is longer than " + std::to_string(kMaxRequest) +
                           " bytes without its ending empty line");
        }
        if (nl == std::string_view::npos) return std::nullopt;

        std::string_view line = buf.substr(pos, nl - pos);
        pos = nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) break;
        ++r.attributes;
        auto eq = line.find('=');
        if (eq == std::string_view::npos) {
            consumed = buf.size();
            return failure("attribute line " + std::to_string(r.attributes) + " has no '=': \"" +
                           printable(line, 60) + "\"");
        }
        std::string_view name = line.substr(0, eq), value = line.substr(eq + 1);
        if (name.empty()) {
            consumed = buf.size();
            return failure("attribute line " + std::to_string(r.attributes) + " has an empty name");
        }
        if (name.size() > kMaxAttribute || value.size() > kMaxAttribute) {
            consumed = buf.size();
            return failure("attribute " + printable(name.substr(0, 60)) + " is longer than " +
                           std::to_string(kMaxAttribute) + " bytes");
        }
        if (line.find_first_of(std::string_view("\0\r", 2)) != std::string_view::npos) {
            consumed = buf.size();
            return failure("attribute " + printable(name, 60) + " contains a NUL or CR byte");
        }
        if (auto why = assign(r, name, value)) {
            consumed = buf.size();
            return failure(*why);
        }
    }
    consumed = pos;
    if (r.request.empty()) return failure("no request attribute (not a policy delegation client?)");
    if (r.request != "smtpd_access_policy")
        return failure("unsupported request type \"" + printable(r.request, 60) + "\"");
    out.ok = true;
    return out;
}

std::string format_reply(std::string_view action) {
    std::string out = "action=";
    std::size_t n = std::min(action.size(), kMaxAction);
    for (std::size_t i = 0; i < n; ++i) {
        char c = action[i];
        out.push_back(c == '\n' || c == '\r' || c == '\0' ? ' ' : c);
    }
    out += "\n\n";
    return out;
}

std::string format_request(const Request& r) {
    std::string out;
    auto add = [&](std::string_view name, const std::string& v) {
        if (v.empty()) return;
        out.append(name).push_back('=');
        out.append(v).push_back('\n');
    };
    add("request", r.request);
    add("protocol_state", r.protocol_state);
    add("protocol_name", r.protocol_name);
    add("helo_name", r.helo_name);
    add("queue_id", r.queue_id);
    add("sender", r.sender);
    add("recipient", r.recipient);
    if (r.recipient_count) add("recipient_count", std::to_string(r.recipient_count));
    add("client_address", r.client_address);
    add("client_name", r.client_name);
    add("reverse_client_name", r.reverse_client_name);
    add("instance", r.instance);
    add("sasl_method", r.sasl_method);
    add("sasl_username", r.sasl_username);
    add("sasl_sender", r.sasl_sender);
    if (r.size) add("size", std::to_string(r.size));
    out.push_back('\n');
    return out;
}

}  // namespace mailgrid::policy
