// secure - wiping secrets from memory.
#pragma once

#include <string.h>

#include <string>

namespace mailgrid {

// Overwrites a secret in memory (explicit_bzero: not optimised away).
inline void secure_wipe(std::string& s) {
    if (!s.empty()) ::explicit_bzero(s.data(), s.size());
    s.clear();
}

inline void secure_wipe(void* p, std::size_t n) {
    if (n) ::explicit_bzero(p, n);
}

}  // namespace mailgrid
