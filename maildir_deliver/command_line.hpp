// command_line - maildir_deliver's whole command line (every option,
// purge and reconcile, --help, --version), read with CLI11 by
// maildir_deliverd. The front reads only the delivery forms itself
// (parse_delivery_line in cli.hpp) and hands anything else over.
#pragma once

#include <optional>

#include <CLI/CLI.hpp>

#include "cli.hpp"

namespace mailgrid {

// Defines the options and subcommands; parses argv. Returns an exit status
// when there is nothing more to do (--help, --version), and a bad command
// line defers the message (75, "4.3.5 ...") since Postfix bounces for 64.
std::optional<int> parse_command_line(CLI::App& app, Invocation& inv, int argc, const char* const* argv);

}  // namespace mailgrid
