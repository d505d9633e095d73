#include "util/csv.hpp"

namespace mailgrid::csv {

Parsed parse(std::string_view text) {
    Parsed out;
    std::size_t i = 0, line = 1;
    while (i < text.size()) {
        Record rec;
        rec.line = line;
        std::string field;
        bool quoted_field = false, record_done = false;
        while (!record_done) {
            if (i < text.size() && text[i] == '"' && field.empty() && !quoted_field) {
                quoted_field = true;
                ++i;
                for (;;) {
                    if (i >= text.size()) {
                        out.error = "line " + std::to_string(rec.line) + ": unterminated quoted field";
                        return out;
                    }
                    char c = text[i++];
                    if (c == '"') {
                        if (i < text.size() && text[i] == '"') {
                            field += '"';
                            ++i;
                            continue;
                        }
                        break;
                    }
                    if (c == '\n') ++line;
                    field += c;
                }
                if (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r') {
                    out.error = "line " + std::to_string(line) + ": text after a closing quote";
                    return out;
                }
                continue;
            }
            if (i >= text.size() || text[i] == '\n' || (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ||
                (text[i] == '\r' && i + 1 == text.size())) {
                rec.fields.push_back(std::move(field));
                if (i < text.size()) {
                    i += text[i] == '\r' ? 2 : 1;
                    if (i > text.size()) i = text.size();
                    ++line;
                }
                record_done = true;
            } else if (text[i] == ',') {
                rec.fields.push_back(std::move(field));
                field.clear();
                quoted_field = false;
                ++i;
            } else {
                if (quoted_field) {
                    out.error = "line " + std::to_string(line) + ": text after a closing quote";
                    return out;
                }
                field += text[i++];
            }
        }
        bool blank = rec.fields.size() == 1 && rec.fields[0].empty();
        if (!blank) out.records.push_back(std::move(rec));
    }
    return out;
}

std::string format(const std::vector<std::string>& fields) {
    std::string out;
    for (std::size_t k = 0; k < fields.size(); ++k) {
        if (k) out += ',';
        const auto& f = fields[k];
        if (f.find_first_of(",\"\r\n") == std::string::npos && !f.empty()) {
            out += f;
            continue;
        }
        if (f.empty()) continue;
        out += '"';
        for (char c : f) {
            if (c == '"') out += '"';
            out += c;
        }
        out += '"';
    }
    return out + "\n";
}

}  // namespace mailgrid::csv
