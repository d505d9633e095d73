// delivery_line - the command lines that deliver one message, read
// without CLI11 (see invocation.hpp).
#include "invocation.hpp"

#include <iterator>
#include <string_view>
#include <utility>

namespace mailgrid {

bool parse_delivery_line(int argc, const char* const* argv, Invocation& inv) {
    struct ValueOption {
        std::string_view short_name, long_name;
        std::string Invocation::*single;  // nullptr: -o, which may repeat
    };
    static const ValueOption options[] = {
        {"-c", "--config", nullptr},  // handled apart: it lives in common
        {"-o", "", nullptr},
        {"-d", "--destination", &Invocation::destination},
        {"-e", "--extension", &Invocation::extension},
        {"-f", "--from", &Invocation::sender},
        {"-i", "--queue-id", &Invocation::queue_id},
        {"", "--maildir", &Invocation::maildir},
        {"", "--quota", &Invocation::quota},
    };
    Invocation out;
    unsigned seen = 0;  // options other than -o and -v given once at most
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "-v" || arg == "--verbose") {
            ++out.common.verbose;
            continue;
        }
        if (arg == "--foreground") {
            if (out.common.foreground) return false;
            out.common.foreground = true;
            continue;
        }
        std::size_t which = std::size(options);
        std::string_view value;
        for (std::size_t k = 0; k < std::size(options); ++k) {
            const auto& o = options[k];
            if ((!o.short_name.empty() && arg == o.short_name) || (!o.long_name.empty() && arg == o.long_name)) {
                if (i + 1 >= argc) return false;
                value = argv[++i];
                // What CLI11 might read as another option or a subcommand.
                if (value.starts_with('-') || value == "purge" || value == "reconcile") return false;
            } else if (!o.long_name.empty() && arg.starts_with(o.long_name) && arg.size() > o.long_name.size() + 1 &&
                       arg[o.long_name.size()] == '=') {
                // "--from=" with nothing after it: CLI11 wants a value.
                value = arg.substr(o.long_name.size() + 1);
            } else {
                continue;
            }
            which = k;
            break;
        }
        if (which == std::size(options)) return false;
        if (options[which].short_name == "-o") {
            // CLI11 reads "[a,b]" given to a repeatable option as a list
            // ("[]": none). A parameter name never starts with '['.
            if (value.starts_with('[')) return false;
            out.common.overrides.emplace_back(value);
            continue;
        }
        if (seen & (1u << which)) return false;
        seen |= 1u << which;
        if (which == 0) out.common.config_path = std::string(value);
        else out.*options[which].single = std::string(value);
    }
    inv = std::move(out);
    return true;
}

}  // namespace mailgrid
