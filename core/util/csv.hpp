// csv - RFC 4180 records, as spreadsheets export user lists: fields
// separated by commas, quoted with "" when they hold commas, quotes or
// line breaks; CRLF or LF line ends.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mailgrid::csv {

struct Record {
    std::vector<std::string> fields;
    std::size_t line = 0;  // where the record starts, from 1
};

struct Parsed {
    std::vector<Record> records;  // blank lines skipped
    std::string error;            // "line N: ..." (the records before it are kept)
};

Parsed parse(std::string_view text);
// One record, quoting fields that need it, ending in "\n".
std::string format(const std::vector<std::string>& fields);

}  // namespace mailgrid::csv
