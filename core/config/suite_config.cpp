#include "config/suite_config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/strings.hpp"

namespace mailgrid {

SuiteConfig SuiteConfig::load(const std::string& path, const std::vector<std::string>& overrides, bool required) {
    SuiteConfig c;
    c.path_ = path;
    if (!path.empty()) {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0 || required) {
            auto cf = CfFile::load(path);
            c.file_params_ = cf.params();
            for (auto& w : cf.warnings()) c.warnings_.push_back(w);
            for (auto& w : cf.duplicates()) c.warnings_.push_back(w);
        }
    }
    for (const auto& o : overrides) {
        auto eq = o.find('=');
        if (eq == std::string::npos || eq == 0)
            throw ConfigError("-o " + o + ": expected name=value");
        c.set(std::string(trim(std::string_view(o).substr(0, eq))), std::string(trim(std::string_view(o).substr(eq + 1))));
    }
    return c;
}

namespace {
// `name` against a declared name, like strcmp; without a strlen per call
// (one declare sorts some ninety names).
int compare_name(const char* declared, std::string_view name) {
    int c = std::strncmp(declared, name.data(), name.size());
    if (c != 0) return c;
    return declared[name.size()] == '\0' ? 0 : 1;
}

// specs_ is kept sorted by name.
auto find_spec(auto& specs, std::string_view name) {
    return std::lower_bound(specs.begin(), specs.end(), name,
                            [](const ParamSpec& s, std::string_view n) { return compare_name(s.name, n) < 0; });
}
}  // namespace

void SuiteConfig::declare(const std::vector<ParamSpec>& specs) {
    specs_.reserve(specs_.size() + specs.size());
    for (const auto& s : specs) {
        auto at = find_spec(specs_, s.name);
        // Declared again: the later spec wins.
        if (at != specs_.end() && std::strcmp(at->name, s.name) == 0) *at = s;
        else specs_.insert(at, s);
    }
}

const ParamSpec* SuiteConfig::spec(std::string_view name) const {
    auto at = find_spec(specs_, name);
    return at != specs_.end() && compare_name(at->name, name) == 0 ? &*at : nullptr;
}

void SuiteConfig::set(std::string name, std::string value) { overrides_[std::move(name)] = std::move(value); }

std::optional<std::string> SuiteConfig::lookup(std::string_view name) const {
    if (auto it = overrides_.find(name); it != overrides_.end()) return it->second;
    for (auto it = file_params_.rbegin(); it != file_params_.rend(); ++it)
        if (it->name == name) return it->value;
    if (const auto* s = spec(name)) return std::string(s->default_value);
    return std::nullopt;
}

bool SuiteConfig::has(std::string_view name) const {
    if (overrides_.count(std::string(name))) return true;
    for (const auto& p : file_params_)
        if (p.name == name) return true;
    return false;
}

std::string SuiteConfig::raw(std::string_view name) const { return lookup(name).value_or(""); }

std::string SuiteConfig::get(std::string_view name) const { return expand(raw(name), 0); }

std::string SuiteConfig::expand(std::string_view v, int depth) const {
    if (depth > 20) throw ConfigError(path_ + ": parameter expansion too deep (recursive $name?)");
    std::string out;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] != '$') { out.push_back(v[i]); continue; }
        if (i + 1 < v.size() && v[i + 1] == '$') { out.push_back('$'); ++i; continue; }
        std::size_t start, end;
        if (i + 1 < v.size() && (v[i + 1] == '{' || v[i + 1] == '(')) {
            char close = v[i + 1] == '{' ? '}' : ')';
            start = i + 2;
            end = v.find(close, start);
            if (end == std::string_view::npos) throw ConfigError(path_ + ": unbalanced ${ in: " + std::string(v));
            auto name = v.substr(start, end - start);
            out += expand(raw(name), depth + 1);
            i = end;
        } else {
            start = i + 1;
            end = start;
            while (end < v.size() && (std::isalnum(static_cast<unsigned char>(v[end])) || v[end] == '_')) ++end;
            if (end == start) { out.push_back('$'); continue; }
            out += expand(raw(v.substr(start, end - start)), depth + 1);
            i = end - 1;
        }
    }
    return out;
}

std::string SuiteConfig::where(std::string_view name) const {
    if (overrides_.count(std::string(name))) return "-o " + std::string(name);
    for (auto it = file_params_.rbegin(); it != file_params_.rend(); ++it)
        if (it->name == name) return path_ + ", line " + std::to_string(it->line);
    return std::string(name) + " (default)";
}

void SuiteConfig::fail(std::string_view name, const std::string& why) const {
    throw ConfigError(where(name) + ": " + why);
}

bool SuiteConfig::get_bool(std::string_view name) const {
    auto v = get(name);
    auto b = parse_bool(v);
    if (!b) fail(name, "bad boolean value for " + std::string(name) + ": " + v);
    return *b;
}

std::int64_t SuiteConfig::get_int(std::string_view name, std::int64_t min, std::int64_t max) const {
    auto v = get(name);
    auto n = parse_int(v);
    if (!n) fail(name, "bad numerical value for " + std::string(name) + ": " + v);
    if (*n < min || *n > max)
        fail(name, std::string(name) + " = " + v + " is out of range [" + std::to_string(min) + ", " +
                       std::to_string(max) + "]");
    return *n;
}

std::chrono::milliseconds SuiteConfig::get_duration(std::string_view name, char unit) const {
    auto v = get(name);
    auto d = parse_duration(v, unit);
    if (!d) fail(name, "bad time value for " + std::string(name) + ": " + v);
    return *d;
}

std::chrono::microseconds SuiteConfig::get_duration_us(std::string_view name, char unit) const {
    auto v = get(name);
    auto d = parse_duration_us(v, unit);
    if (!d) fail(name, "bad time value for " + std::string(name) + ": " + v);
    return *d;
}

std::uint64_t SuiteConfig::get_size(std::string_view name) const {
    auto v = get(name);
    auto s = parse_size(v);
    if (!s) fail(name, "bad size value for " + std::string(name) + ": " + v);
    return *s;
}

std::vector<std::string> SuiteConfig::get_list(std::string_view name) const { return split_list(get(name)); }

std::vector<std::pair<std::string, std::string>> SuiteConfig::get_pairs(std::string_view name) const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& item : get_list(name)) {
        auto eq = item.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
            fail(name, "expected name=value, got \"" + item + "\"");
        out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    }
    return out;
}

std::vector<std::string> SuiteConfig::unknown(const std::vector<std::string>& foreign) const {
    std::vector<std::string> out;
    auto check = [&](const std::string& name, const std::string& where_) {
        if (spec(name)) return;
        for (const auto& f : foreign)
            if (name.rfind(f, 0) == 0) return;
        out.push_back(where_ + ": unknown parameter: " + name);
    };
    for (const auto& p : file_params_) check(p.name, path_ + ", line " + std::to_string(p.line));
    for (const auto& [n, v] : overrides_) check(n, "-o " + n);
    return out;
}

std::string SuiteConfig::show(bool only_set) const {
    std::string out;
    for (const auto& s : specs_) {
        std::string_view name = s.name;
        if (only_set && !has(name)) continue;
        out.append(name).append(" = ").append(raw(name)).append("\n");
    }
    return out;
}

}  // namespace mailgrid
