// saslauth - the saslauthd mux service over a PasswordChecker.
#pragma once

#include <vector>

#include "auth/checker.hpp"
#include "config/suite_config.hpp"
#include "net/server.hpp"

namespace mailgrid {

const std::vector<ParamSpec>& saslauth_params();

// One request per connection: parse, check, answer OK or NO. A temporary
// failure (directory down or slow) closes the connection without an
// answer, which libsasl2 reports as a temporary error ("454 4.7.0" in
// Postfix) rather than a wrong password.
awaitable<void> serve_mux(Connection& c, PasswordChecker& checker, std::chrono::milliseconds fifth_field_wait);

}  // namespace mailgrid
