// strings - small string helpers shared by every parser in the suite.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailgrid {

std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
std::string_view trim(std::string_view s);

// Postfix list syntax: items separated by commas and/or whitespace.
std::vector<std::string> split_list(std::string_view s);
// Split at every occurrence of sep, keeping empty fields.
std::vector<std::string_view> split(std::string_view s, char sep);

// "yes"/"no" and the other spellings Postfix accepts.
std::optional<bool> parse_bool(std::string_view s);
// Postfix time units: "10" (seconds unless default_unit says otherwise),
// "10s", "5m", "2h", "1d", "1w", also "250ms" for sub-second timeouts.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view s, char default_unit = 's');
// The same with microsecond resolution ("50us").
std::optional<std::chrono::microseconds> parse_duration_us(std::string_view s, char default_unit = 's');
std::optional<std::int64_t> parse_int(std::string_view s);
// Sizes with optional K/M/G/T suffix (powers of 1024).
std::optional<std::uint64_t> parse_size(std::string_view s);

bool valid_utf8(std::string_view s);
// Printable rendering for log lines: control bytes and non-ASCII become \xNN.
std::string printable(std::string_view s, std::size_t max_len = 200);

}  // namespace mailgrid
