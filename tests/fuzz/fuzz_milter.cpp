// fuzz_milter - the milter framing and the command checks that stand
// between an MTA and libmilter in mailgrid_policy.
//
// Invariants:
//  * a byte stream splits into the same frames whole or in 1-3 byte
//    fragments; consumed never exceeds the buffer, and is 0 exactly when
//    the frame is incomplete;
//  * a frame's payload lies inside the buffer and re-encodes to the bytes
//    it was read from;
//  * a macro command that passes the check has NUL-terminated strings in
//    pairs (what libmilter's smfi_getsymval() walks two at a time), and a
//    header exactly a name and a value.
#include <algorithm>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "proto/milter.hpp"

using namespace mailgrid;

namespace {

struct Seen {
    bool ok;
    char command;
    std::string payload;
};

// Frames of everything complete in buf (consumed from it); true if it
// ended with an error.
bool drain(std::string& buf, std::vector<Seen>& out) {
    for (;;) {
        std::size_t used = 0;
        auto f = milter::next_frame(buf, used);
        FUZZ_CHECK(used <= buf.size());
        if (!f) {
            FUZZ_CHECK(used == 0);
            return false;
        }
        FUZZ_CHECK(used > 0);
        if (!f->ok) {
            FUZZ_CHECK(!f->error.empty());
            buf.erase(0, used);
            return true;
        }
        FUZZ_CHECK(f->payload.data() >= buf.data() && f->payload.data() + f->payload.size() <= buf.data() + buf.size());
        FUZZ_CHECK(milter::encode_frame(f->command, f->payload) == buf.substr(0, used));
        if (!milter::check_mta_command(f->command, f->payload)) {
            if (f->command == 'D' && f->payload.size() > 1) {
                auto pairs = f->payload.substr(1);
                FUZZ_CHECK(pairs.back() == '\0');
                FUZZ_CHECK(std::count(pairs.begin(), pairs.end(), '\0') % 2 == 0);
            }
            if (f->command == 'L') FUZZ_CHECK(std::count(f->payload.begin(), f->payload.end(), '\0') == 2);
        }
        out.push_back(Seen{true, f->command, std::string(f->payload)});
        buf.erase(0, used);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto input = fuzz::as_view(data, size);
    std::string whole(input);
    std::vector<Seen> a, b;
    bool error_a = drain(whole, a);
    std::string pieces;
    bool error_b = false;
    fuzz::for_each_fragment(input, [&](std::string_view part) {
        if (error_b) return;
        pieces.append(part);
        error_b = drain(pieces, b);
    });
    FUZZ_CHECK(error_a == error_b);
    FUZZ_CHECK(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i)
        FUZZ_CHECK(a[i].command == b[i].command && a[i].payload == b[i].payload);
    return 0;
}
