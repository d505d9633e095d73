// saslauth - the saslauthd mux service over a PasswordChecker.
#pragma once

#include <optional>
#include <string>
#include <string_view>
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
// The reply to a whole request in a connection's first read when the
// credential cache answers it (ServiceOptions::answer_at_once); nullopt
// leaves the request to serve_mux.
std::optional<std::string> answer_mux_at_once(std::string_view first_read, PasswordChecker& checker,
                                              std::chrono::milliseconds fifth_field_wait);

}  // namespace mailgrid
