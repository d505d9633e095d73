// lmtp_server - maildir_deliver's LMTP mode: Postfix's lmtp(8) client (or
// any LMTP client) hands over many recipients per connection and gets one
// reply per recipient, without a process per message.
#pragma once

#include "agent.hpp"
#include "net/server.hpp"
#include "proto/lmtp.hpp"

namespace mailgrid {

// One LMTP connection: recipients are checked as they come (unknown users
// are refused at RCPT), and after the final "." the message is written to
// every accepted recipient's Maildir at once, on the agent's thread pool.
awaitable<void> serve_lmtp(Connection& c, Agent& agent, const lmtp::Options& options);

}  // namespace mailgrid
