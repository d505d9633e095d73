// fuzz_maildirsize - the Maildir++ quota file and the names of a Maildir
// store (core/mail/maildirsize, core/mail/maildir_name).
//
// Invariants:
//  * a valid file re-formatted (limit + totals) parses to the same limit
//    and usage; a change line appended adds exactly its numbers (or makes
//    the sums overflow, which is refused, never wrapped);
//  * a limit parses back from its own formatting;
//  * an invalid, torn or negative file always asks for a recount;
//  * a name component_problem accepts has no '/', NUL or control byte, does
//    not start with '.', fits NAME_MAX; a folder made from an extension is
//    ".<something acceptable>" without ".."; a path taken from a directory
//    attribute stays below the store; file name sizes are the digits after
//    ",S=" and ",W="; the size with CRLF line ends is the size plus one
//    for each LF without a CR before it.
#include <string>

#include "fuzz_check.hpp"
#include "mail/maildir_name.hpp"
#include "mail/maildirsize.hpp"

using namespace mailgrid;

namespace {

void check_component(std::string_view s) {
    if (maildir::component_problem(s, "x")) return;
    FUZZ_CHECK(!s.empty() && s.size() <= maildir::kMaxComponent && s.front() != '.');
    for (unsigned char c : s) FUZZ_CHECK(c != '/' && c >= 0x20 && c != 0x7f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);

    // The quota file.
    auto p = maildirsize::parse(input);
    maildirsize::FileState state;
    state.exists = true;
    state.size = input.size();
    state.age = std::chrono::seconds(size % 2000);
    state.parsed = p;
    auto reason = maildirsize::recount_reason(state, std::nullopt, static_cast<std::int64_t>(size), 1);
    if (!p.valid || p.usage.bytes < 0 || p.usage.messages < 0 || input.size() >= maildirsize::kRecountSize)
        FUZZ_CHECK(reason.has_value());
    if (p.valid) {
        auto again = maildirsize::parse(maildirsize::format_file(p.limit, p.usage));
        FUZZ_CHECK(again.valid && again.limit == p.limit && again.usage == p.usage && again.lines == 1);
        std::int64_t add_bytes = static_cast<std::int64_t>(size) * 977 - 5000, add_count = static_cast<std::int64_t>(size % 7) - 3;
        auto appended = maildirsize::parse(std::string(input) + maildirsize::format_line(add_bytes, add_count));
        std::int64_t b = 0, c = 0;
        bool overflow = __builtin_add_overflow(p.usage.bytes, add_bytes, &b) ||
                        __builtin_add_overflow(p.usage.messages, add_count, &c);
        if (!input.empty() && input.back() == '\n') {
            FUZZ_CHECK(appended.valid == !overflow);
            if (appended.valid) FUZZ_CHECK(appended.usage.bytes == b && appended.usage.messages == c &&
                                           appended.lines == p.lines + 1);
        }
        (void)maildirsize::exceeds(p.limit, p.usage, add_bytes, add_count);
    }
    if (auto l = maildirsize::parse_limit(input)) {
        auto l2 = maildirsize::parse_limit(maildirsize::format_limit(*l));
        FUZZ_CHECK(l2 && *l2 == *l);
    }

    // Names.
    check_component(input);
    std::string why;
    if (auto folder = maildir::folder_for_extension(input, &why)) {
        FUZZ_CHECK(folder->size() >= 2 && folder->front() == '.' && folder->size() <= maildir::kMaxComponent);
        FUZZ_CHECK(folder->find("..") == std::string::npos && folder->find('/') == std::string::npos);
        check_component(std::string_view(*folder).substr(1));
    }
    if (auto parts = maildir::components_below(input, "/store", &why)) {
        FUZZ_CHECK(!parts->empty());
        for (const auto& c : *parts) {
            FUZZ_CHECK(!maildir::component_problem(c, "x"));
            FUZZ_CHECK(c != "..");
        }
    }
    if (!maildir::component_problem(input, "user")) {
        for (const char* layout : {"classic", "stable:3", "none"}) {
            auto l = maildir::Layout::parse(layout, &why);
            FUZZ_CHECK(l);
            auto comps = maildir::mailbox_components(*l, input, "example.com");
            for (const auto& c : comps) check_component(c);
            FUZZ_CHECK(!maildir::component_problem(comps[1], "hash"));
        }
    }
    auto name = maildir::parse_file_name(input);
    if (name.size) FUZZ_CHECK(input.find(",S=") != std::string_view::npos);
    if (name.vsize) FUZZ_CHECK(input.find(",W=") != std::string_view::npos);
    if (name.has_info) FUZZ_CHECK(input.find(":2,") != std::string_view::npos);
    FUZZ_CHECK(maildir::safe_host(input).find_first_of("/:,") == std::string::npos);
    std::uint64_t bare_lf = 0;
    for (std::size_t i = 0; i < input.size(); ++i)
        if (input[i] == '\n' && (i == 0 || input[i - 1] != '\r')) ++bare_lf;
    FUZZ_CHECK(maildir::crlf_size(input) == input.size() + bare_lf);
    return 0;
}
