#include "auth/password.hpp"

#include <argon2.h>
#include <crypt.h>
#include <cstring>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include <memory>

#include "util/base64.hpp"
#include "util/strings.hpp"

namespace mailgrid {

bool constant_time_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        // still touch the data so timing does not reveal where they differ
        volatile unsigned char sink = 0;
        for (char c : a) sink = static_cast<unsigned char>(sink | static_cast<unsigned char>(c));
        (void)sink;
        return false;
    }
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

struct Digest {
    const EVP_MD* md;
    std::size_t len;
};

std::string digest(const EVP_MD* md, std::string_view a, std::string_view b) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(ctx.get(), md, nullptr);
    EVP_DigestUpdate(ctx.get(), a.data(), a.size());
    EVP_DigestUpdate(ctx.get(), b.data(), b.size());
    EVP_DigestFinal_ex(ctx.get(), out, &n);
    return std::string(reinterpret_cast<char*>(out), n);
}

PasswordCheck check_digest(const EVP_MD* md, bool salted, std::string_view b64, std::string_view pw) {
    auto raw = base64_decode(b64);
    auto len = static_cast<std::size_t>(EVP_MD_size(md));
    if (!raw || raw->size() < len || (!salted && raw->size() != len)) return PasswordCheck::Mismatch;
    std::string_view hash = std::string_view(*raw).substr(0, len);
    std::string_view salt = std::string_view(*raw).substr(len);
    return constant_time_equal(digest(md, pw, salt), hash) ? PasswordCheck::Match : PasswordCheck::Mismatch;
}

// OpenLDAP pw-pbkdf2 uses base64 with '.' for '+' and no padding.
std::optional<std::string> ab64_decode(std::string_view s) {
    std::string t(s);
    for (auto& c : t)
        if (c == '.') c = '+';
    return base64_decode(t);
}

PasswordCheck check_pbkdf2(const EVP_MD* md, std::string_view rest, std::string_view pw) {
    auto parts = split(rest, '$');
    if (parts.size() != 3) return PasswordCheck::Mismatch;
    auto iter = parse_int(parts[0]);
    auto salt = ab64_decode(parts[1]);
    auto hash = ab64_decode(parts[2]);
    if (!iter || *iter < 1 || *iter > 10'000'000 || !salt || !hash || hash->empty() || hash->size() > 128)
        return PasswordCheck::Mismatch;
    std::string out(hash->size(), '\0');
    if (PKCS5_PBKDF2_HMAC(pw.data(), static_cast<int>(pw.size()), reinterpret_cast<const unsigned char*>(salt->data()),
                          static_cast<int>(salt->size()), static_cast<int>(*iter), md, static_cast<int>(out.size()),
                          reinterpret_cast<unsigned char*>(out.data())) != 1)
        return PasswordCheck::Mismatch;
    return constant_time_equal(out, *hash) ? PasswordCheck::Match : PasswordCheck::Mismatch;
}

PasswordCheck check_crypt(std::string_view setting, std::string_view pw) {
    if (setting.empty() || pw.find('\0') != std::string_view::npos) return PasswordCheck::Mismatch;
    std::string s(setting), p(pw);
    struct crypt_data data;
    std::memset(&data, 0, sizeof data);
    const char* out = crypt_r(p.c_str(), s.c_str(), &data);
    bool ok = out && out[0] != '*' && constant_time_equal(out, s);
    OPENSSL_cleanse(&data, sizeof data);
    secure_wipe(p);
    return ok ? PasswordCheck::Match : PasswordCheck::Mismatch;
}

PasswordCheck check_argon2(std::string_view encoded, std::string_view pw) {
    std::string e(encoded);
    argon2_type type;
    if (e.rfind("$argon2id$", 0) == 0) type = Argon2_id;
    else if (e.rfind("$argon2i$", 0) == 0) type = Argon2_i;
    else if (e.rfind("$argon2d$", 0) == 0) type = Argon2_d;
    else return PasswordCheck::Mismatch;
    int rc = argon2_verify(e.c_str(), pw.data(), pw.size(), type);
    return rc == ARGON2_OK ? PasswordCheck::Match : PasswordCheck::Mismatch;
}

std::string random_bytes(std::size_t n) {
    std::string s(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(n)) != 1)
        throw std::runtime_error("RAND_bytes failed");
    return s;
}

}  // namespace

std::string password_scheme(std::string_view stored) {
    if (stored.size() < 2 || stored.front() != '{') return "CLEARTEXT";
    auto close = stored.find('}');
    if (close == std::string_view::npos) return "CLEARTEXT";
    std::string s(stored.substr(1, close - 1));
    for (auto& c : s)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return s;
}

PasswordCheck verify_password(std::string_view stored, std::string_view pw) {
    auto scheme = password_scheme(stored);
    std::string_view rest = stored;
    if (scheme != "CLEARTEXT" || (!stored.empty() && stored.front() == '{')) {
        auto close = stored.find('}');
        if (close != std::string_view::npos) rest = stored.substr(close + 1);
    }
    if (scheme == "SSHA") return check_digest(EVP_sha1(), true, rest, pw);
    if (scheme == "SHA") return check_digest(EVP_sha1(), false, rest, pw);
    if (scheme == "SSHA256") return check_digest(EVP_sha256(), true, rest, pw);
    if (scheme == "SHA256") return check_digest(EVP_sha256(), false, rest, pw);
    if (scheme == "SSHA384") return check_digest(EVP_sha384(), true, rest, pw);
    if (scheme == "SSHA512") return check_digest(EVP_sha512(), true, rest, pw);
    if (scheme == "SHA512") return check_digest(EVP_sha512(), false, rest, pw);
    if (scheme == "SMD5") return check_digest(EVP_md5(), true, rest, pw);
    if (scheme == "MD5") return check_digest(EVP_md5(), false, rest, pw);
    if (scheme == "CRYPT") return check_crypt(rest, pw);
    if (scheme == "ARGON2") return check_argon2(rest, pw);
    if (scheme == "PBKDF2-SHA512") return check_pbkdf2(EVP_sha512(), rest, pw);
    if (scheme == "PBKDF2-SHA256") return check_pbkdf2(EVP_sha256(), rest, pw);
    if (scheme == "PBKDF2-SHA1" || scheme == "PBKDF2") return check_pbkdf2(EVP_sha1(), rest, pw);
    if (scheme == "CLEARTEXT")
        return constant_time_equal(rest, pw) ? PasswordCheck::Match : PasswordCheck::Mismatch;
    return PasswordCheck::UnsupportedScheme;
}

std::string hash_ssha512(std::string_view pw) {
    auto salt = random_bytes(16);
    return "{SSHA512}" + base64_encode(digest(EVP_sha512(), pw, salt) + salt);
}

std::string hash_argon2(std::string_view pw) {
    auto salt = random_bytes(16);
    // OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
    const std::uint32_t t = 2, m = 19456, p = 1;
    std::size_t len = argon2_encodedlen(t, m, p, static_cast<std::uint32_t>(salt.size()), 32, Argon2_id);
    std::string encoded(len, '\0');
    int rc = argon2id_hash_encoded(t, m, p, pw.data(), pw.size(), salt.data(), salt.size(), 32, encoded.data(), len);
    if (rc != ARGON2_OK) throw std::runtime_error(std::string("argon2: ") + argon2_error_message(rc));
    encoded.resize(std::strlen(encoded.c_str()));
    return "{ARGON2}" + encoded;
}

}  // namespace mailgrid
