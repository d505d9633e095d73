// fuzz_delivery_line - the front's own reading of the command lines Postfix
// starts maildir_deliver with (parse_delivery_line), against CLI11's
// reading of the whole command line in maildir_deliverd
// (read_command_line). The front reads them without CLI11 to start
// faster; it must never deliver on a command line the full program would
// read otherwise.
//
// Input: the arguments after argv[0], separated by NUL bytes (an argument
// cannot hold one).
//
// Invariants, whenever the front accepts a command line:
//  * it is a one-message delivery (not a job, a check or a server);
//  * CLI11 accepts it too, with the same recipient, extension, sender,
//    queue id, Maildir, quota, configuration file, overrides in order,
//    verbosity and --foreground.
#include <string>
#include <vector>

#include "command_line.hpp"
#include "fuzz_check.hpp"
#include "invocation.hpp"

using namespace mailgrid;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);
    std::vector<std::string> args{"maildir_deliver"};
    while (args.size() <= 24) {
        auto nul = input.find('\0');
        args.emplace_back(input.substr(0, nul));
        if (nul == std::string_view::npos) break;
        input.remove_prefix(nul + 1);
    }
    if (size == 0) args.pop_back();  // no arguments at all: .forward's form
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    const int argc = static_cast<int>(argv.size());

    Invocation lean;
    if (!parse_delivery_line(argc, argv.data(), lean)) return 0;
    FUZZ_CHECK(lean.delivering());

    CLI::App app;
    Invocation full;
    bool cli11_accepts = true;
    try {
        read_command_line(app, full, argc, argv.data());
    } catch (const CLI::Error&) {
        cli11_accepts = false;
    }
    FUZZ_CHECK(cli11_accepts);
    FUZZ_CHECK(full.delivering());
    FUZZ_CHECK(lean.destination == full.destination);
    FUZZ_CHECK(lean.extension == full.extension);
    FUZZ_CHECK(lean.sender == full.sender);
    FUZZ_CHECK(lean.queue_id == full.queue_id);
    FUZZ_CHECK(lean.maildir == full.maildir);
    FUZZ_CHECK(lean.quota == full.quota);
    FUZZ_CHECK(lean.common.config_path == full.common.config_path);
    FUZZ_CHECK(lean.common.overrides == full.common.overrides);
    FUZZ_CHECK(lean.common.verbose == full.common.verbose);
    FUZZ_CHECK(lean.common.foreground == full.common.foreground);
    return 0;
}
