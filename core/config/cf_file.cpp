#include "config/cf_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/strings.hpp"

namespace mailgrid {

namespace {
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }
}  // namespace

CfFile CfFile::parse(std::string_view text, std::string path) {
    CfFile f;
    f.path_ = std::move(path);

    std::string logical;
    int first_line = 0;
    int lineno = 0;

    auto flush = [&]() {
        if (logical.empty()) return;
        std::string_view s = logical;
        if (s.find('\0') != std::string_view::npos)
            throw ConfigError(f.path_ + ", line " + std::to_string(first_line) + ": NUL byte in configuration text");
        std::size_t i = 0;
        while (i < s.size() && !is_space(s[i]) && s[i] != '=') ++i;
        std::string name(s.substr(0, i));
        std::size_t j = i;
        while (j < s.size() && is_space(s[j])) ++j;
        if (j >= s.size() || s[j] != '=')
            throw ConfigError(f.path_ + ", line " + std::to_string(first_line) +
                              ": missing '=' after attribute name: \"" + printable(name, 60) + "\"");
        if (name.empty())
            throw ConfigError(f.path_ + ", line " + std::to_string(first_line) + ": missing attribute name");
        std::string value(trim(s.substr(j + 1)));
        for (auto& p : f.params_) {
            if (p.name == name) {
                f.duplicates_.push_back(f.path_ + ", line " + std::to_string(first_line) + ": overriding earlier entry: " +
                                        name + "=" + p.value);
            }
        }
        f.params_.push_back({std::move(name), std::move(value), first_line});
        logical.clear();
    };

    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = (nl == std::string_view::npos) ? text.size() : nl + 1;
        ++lineno;
        std::size_t k = 0;
        while (k < line.size() && is_space(line[k])) ++k;
        if (k == line.size() || line[k] == '#') continue;  // comment or blank
        if (k > 0) {
            if (logical.empty()) {
                f.warnings_.push_back(f.path_ + ", line " + std::to_string(lineno) +
                                      ": logical line must not start with whitespace: \"" +
                                      printable(trim(line), 30) + "\"");
                continue;
            }
            logical.append(line);
            continue;
        }
        flush();
        logical.assign(line);
        first_line = lineno;
    }
    flush();
    return f;
}

CfFile CfFile::load(const std::string& path) {
    // Plain read(2), no iostreams: a program started once per message
    // (maildir_deliver) reads this file, and iostreams' locale set-up would
    // cost it more than the reading.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw ConfigError(path + ": cannot open: " + std::string(std::strerror(errno)));
    std::string text;
    struct stat st{};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) text.reserve(static_cast<std::size_t>(st.st_size));
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            ::close(fd);
            throw ConfigError(path + ": cannot read: " + std::string(std::strerror(e)));
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return parse(text, path);
}

const CfParam* CfFile::find(std::string_view name) const {
    for (auto it = params_.rbegin(); it != params_.rend(); ++it)
        if (it->name == name) return &*it;
    return nullptr;
}

std::string CfFile::where(const CfParam& p) const { return path_ + ", line " + std::to_string(p.line); }

}  // namespace mailgrid
