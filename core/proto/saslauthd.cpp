#include "proto/saslauthd.hpp"

#include "util/secure.hpp"

namespace mailgrid::saslauthd {

Parsed parse(std::string_view buf) {
    Parsed p;
    std::array<std::string*, 5> fields{&p.request.login, &p.request.password, &p.request.service, &p.request.realm,
                                       &p.request.client_addr};
    std::size_t pos = 0;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i == 4 && pos == buf.size()) {
            p.state = Parsed::State::Four;
            p.consumed = pos;
            return p;
        }
        if (buf.size() - pos < 2) {
            secure_wipe(p.request.password);
            return Parsed{};
        }
        std::size_t len = (static_cast<unsigned char>(buf[pos]) << 8) | static_cast<unsigned char>(buf[pos + 1]);
        if (len > kMaxField) {
            secure_wipe(p.request.password);
            Parsed t;
            t.state = Parsed::State::TooLong;
            t.consumed = buf.size();
            return t;
        }
        if (buf.size() - pos - 2 < len) {
            secure_wipe(p.request.password);
            return Parsed{};
        }
        fields[i]->assign(buf.data() + pos + 2, len);
        pos += 2 + len;
    }
    p.request.has_client_addr = true;
    p.state = Parsed::State::Five;
    p.consumed = pos;
    return p;
}

std::string reply(std::string_view text) {
    std::string out;
    std::size_t n = std::min<std::size_t>(text.size(), 1023);
    out.push_back(static_cast<char>((n >> 8) & 0xFF));
    out.push_back(static_cast<char>(n & 0xFF));
    out.append(text.substr(0, n));
    return out;
}

}  // namespace mailgrid::saslauthd
