#include "util/hmac.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <stdexcept>

namespace mailgrid {

HmacSha256::HmacSha256(std::string_view key) {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    ctx_ = mac ? EVP_MAC_CTX_new(mac) : nullptr;
    EVP_MAC_free(mac);  // the context keeps its own reference
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (!ctx_ || EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) != 1) {
        EVP_MAC_CTX_free(ctx_);
        throw std::runtime_error("OpenSSL has no HMAC-SHA256");
    }
}

HmacSha256::~HmacSha256() { EVP_MAC_CTX_free(ctx_); }

std::string HmacSha256::digest(std::string_view message) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    std::size_t len = 0;
    // A null key starts over with the key already set.
    if (EVP_MAC_init(ctx_, nullptr, 0, nullptr) != 1 ||
        EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
        EVP_MAC_final(ctx_, mac, &len, sizeof mac) != 1)
        throw std::runtime_error("HMAC-SHA256 failed");
    return std::string(reinterpret_cast<const char*>(mac), len);
}

std::string HmacSha256::hex_digest(std::string_view message) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(64);
    for (unsigned char b : digest(message)) {
        out.push_back(hex[b >> 4]);
        out.push_back(hex[b & 15]);
    }
    return out;
}

}  // namespace mailgrid
