#include "metrics/metrics.hpp"

#include <cstdio>

namespace mailgrid {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
    for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double v) {
    std::size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    double cur = sum_.load(std::memory_order_relaxed);
    while (!sum_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
    }
}

std::vector<std::uint64_t> Histogram::counts() const {
    std::vector<std::uint64_t> out(bounds_.size() + 1);
    std::uint64_t acc = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        acc += buckets_[i].load(std::memory_order_relaxed);
        out[i] = acc;
    }
    return out;
}

std::vector<double> latency_buckets() {
    return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::string format_labels(const Labels& labels) {
    if (labels.empty()) return {};
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : labels) {
        if (!first) out.push_back(',');
        first = false;
        out += k + "=\"";
        for (char c : v) {
            if (c == '\\' || c == '"') { out.push_back('\\'); out.push_back(c); }
            else if (c == '\n') out += "\\n";
            else out.push_back(c);
        }
        out.push_back('"');
    }
    out.push_back('}');
    return out;
}

MetricsRegistry::Family& MetricsRegistry::family(const std::string& name, const std::string& help, const char* type) {
    auto& f = families_[name];
    if (f.type.empty()) {
        f.help = help;
        f.type = type;
    }
    return f;
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help, const Labels& labels) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, help, "counter").counters[format_labels(labels)];
    if (!slot) slot = std::make_unique<Counter>();
    return *slot;
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help, const Labels& labels) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, help, "gauge").gauges[format_labels(labels)];
    if (!slot) slot = std::make_unique<Gauge>();
    return *slot;
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help, const Labels& labels,
                                      std::vector<double> bounds) {
    std::lock_guard lock(mu_);
    auto& slot = family(name, help, "histogram").histograms[format_labels(labels)];
    if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
    return *slot;
}

namespace {
std::string num(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}
// Insert an extra label into a rendered label set.
std::string with_label(const std::string& labels, const std::string& extra) {
    if (labels.empty()) return "{" + extra + "}";
    return labels.substr(0, labels.size() - 1) + "," + extra + "}";
}
}  // namespace

std::string MetricsRegistry::render() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& [name, f] : families_) {
        out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + f.type + "\n";
        for (const auto& [labels, c] : f.counters) out += name + labels + " " + std::to_string(c->value()) + "\n";
        for (const auto& [labels, g] : f.gauges) out += name + labels + " " + num(g->value()) + "\n";
        for (const auto& [labels, h] : f.histograms) {
            auto counts = h->counts();
            const auto& b = h->bounds();
            for (std::size_t i = 0; i < b.size(); ++i)
                out += name + "_bucket" + with_label(labels, "le=\"" + num(b[i]) + "\"") + " " +
                       std::to_string(counts[i]) + "\n";
            out += name + "_bucket" + with_label(labels, "le=\"+Inf\"") + " " + std::to_string(counts.back()) + "\n";
            out += name + "_sum" + labels + " " + num(h->sum()) + "\n";
            out += name + "_count" + labels + " " + std::to_string(counts.back()) + "\n";
        }
    }
    return out;
}

}  // namespace mailgrid
