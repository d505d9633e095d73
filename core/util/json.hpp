// json - writing JSON for the suite's APIs and --json output: strings
// escaped per RFC 8259, objects and arrays built up in order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mailgrid {

std::string json_string(std::string_view s);

// {"a":1,"b":"x"} built one member at a time.
class JsonObject {
public:
    JsonObject& str(std::string_view key, std::string_view value) { return raw(key, json_string(value)); }
    JsonObject& num(std::string_view key, std::uint64_t value) { return raw(key, std::to_string(value)); }
    JsonObject& num(std::string_view key, double value);
    JsonObject& boolean(std::string_view key, bool value) { return raw(key, value ? "true" : "false"); }
    JsonObject& strings(std::string_view key, const std::vector<std::string>& values);
    JsonObject& raw(std::string_view key, std::string_view json);
    std::string text() const { return "{" + body_ + "}"; }

private:
    std::string body_;
};

// [a,b,c] of already-encoded JSON values.
std::string json_array(const std::vector<std::string>& encoded);

}  // namespace mailgrid
