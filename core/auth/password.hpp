// password - checking and making userPassword values.
//
// Schemes as OpenLDAP stores them: {SSHA} {SSHA256} {SSHA512} {SHA}
// {SHA256} {SHA512} {SMD5} {MD5}, {CRYPT} ($1$ $5$ $6$ $y$ $2b$ via
// libcrypt), {ARGON2} (libargon2 encoded form), {PBKDF2-SHA512} and its
// SHA256/SHA1 siblings (OpenLDAP pw-pbkdf2 form), {CLEARTEXT} and bare
// cleartext. Comparisons are constant-time.
#pragma once

#include <string>
#include <string_view>

#include "util/secure.hpp"

namespace mailgrid {

enum class PasswordCheck { Match, Mismatch, UnsupportedScheme };

PasswordCheck verify_password(std::string_view stored, std::string_view password);

// The scheme name of a stored value, upper case ("SSHA512", "CLEARTEXT").
std::string password_scheme(std::string_view stored);

// New hashes for provisioning. Salts come from OpenSSL's RAND_bytes.
std::string hash_ssha512(std::string_view password);
std::string hash_argon2(std::string_view password);

bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace mailgrid
