// fuzz_check - helpers shared by the libFuzzer targets.
//
// FUZZ_CHECK is not assert(): RelWithDebInfo defines NDEBUG, and a broken
// invariant must abort so libFuzzer saves the input as a crash artifact.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                       \
        }                                                                                       \
    } while (0)

namespace fuzz {

inline std::string_view as_view(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// Calls f with consecutive fragments of 1 to 3 bytes covering all of s. The
// sizes depend on the bytes and their offsets, so the fuzzer steers them.
template <class F>
void for_each_fragment(std::string_view s, F&& f) {
    std::size_t i = 0;
    while (i < s.size()) {
        std::uint32_t h = static_cast<std::uint32_t>(static_cast<unsigned char>(s[i])) * 2654435761u ^
                          static_cast<std::uint32_t>(i) * 40503u;
        std::size_t n = 1 + (h >> 16) % 3;
        if (n > s.size() - i) n = s.size() - i;
        f(s.substr(i, n));
        i += n;
    }
}

// Exactly one '\n', at the end.
inline bool one_line(std::string_view s) {
    return !s.empty() && s.back() == '\n' && s.find('\n') == s.size() - 1;
}

}  // namespace fuzz
