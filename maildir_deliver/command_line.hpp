// command_line - maildir_deliver's whole command line (every option,
// purge and reconcile, --help, --version), read with CLI11 by
// maildir_deliverd. The front reads only the delivery forms itself
// (parse_delivery_line in invocation.hpp) and hands anything else over.
#pragma once

#include <CLI/CLI.hpp>

#include "invocation.hpp"

namespace mailgrid {

// Defines the options and subcommands and parses argv into inv. Throws
// CLI11's exceptions: CLI::Success for --help and --version (app.exit
// prints them), another CLI::ParseError for a bad command line.
void read_command_line(CLI::App& app, Invocation& inv, int argc, const char* const* argv);

}  // namespace mailgrid
