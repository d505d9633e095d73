// fuzz_csv - the RFC 4180 reader "mailgrid import" reads user lists with.
//
// Invariants:
//  * parse never crashes; an error names a line ("line N: ..."), no later
//    than the lines the text has; records start on increasing lines;
//  * every record has at least one field, and none is a blank line;
//  * a record with more than one field or a non-empty field formats to one
//    line that parses back to the same fields, on line 1, without error;
//    all such records formatted one after the other parse back in order,
//    each on the line its predecessors' line breaks put it.
#include <algorithm>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "util/csv.hpp"

using namespace mailgrid;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input = fuzz::as_view(data, size);
    auto p = csv::parse(input);
    std::size_t lines = 1 + static_cast<std::size_t>(std::count(input.begin(), input.end(), '\n'));

    if (!p.error.empty()) {
        FUZZ_CHECK(p.error.rfind("line ", 0) == 0);
        std::size_t n = 0, i = 5;
        while (i < p.error.size() && p.error[i] >= '0' && p.error[i] <= '9') n = n * 10 + (p.error[i++] - '0');
        FUZZ_CHECK(i > 5 && n >= 1 && n <= lines);
        FUZZ_CHECK(p.error.compare(i, 2, ": ") == 0);
        if (!p.records.empty()) FUZZ_CHECK(p.records.back().line <= n);
    }

    std::size_t prev = 0;
    std::string all;
    std::vector<csv::Record> kept;
    std::size_t line = 1;
    for (const auto& r : p.records) {
        FUZZ_CHECK(r.line > prev && r.line <= lines);
        prev = r.line;
        FUZZ_CHECK(!r.fields.empty());
        FUZZ_CHECK(!(r.fields.size() == 1 && r.fields[0].empty()));

        auto text = csv::format(r.fields);
        FUZZ_CHECK(!text.empty() && text.back() == '\n');
        auto back = csv::parse(text);
        FUZZ_CHECK(back.error.empty());
        FUZZ_CHECK(back.records.size() == 1);
        FUZZ_CHECK(back.records[0].fields == r.fields);
        FUZZ_CHECK(back.records[0].line == 1);

        all += text;
        kept.push_back({r.fields, line});
        line += static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
    }
    auto again = csv::parse(all);
    FUZZ_CHECK(again.error.empty());
    FUZZ_CHECK(again.records.size() == kept.size());
    for (std::size_t i = 0; i < kept.size(); ++i) {
        FUZZ_CHECK(again.records[i].fields == kept[i].fields);
        FUZZ_CHECK(again.records[i].line == kept[i].line);
    }
    return 0;
}
