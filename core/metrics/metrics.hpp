// metrics - counters and latency histograms in Prometheus text format.
//
// Series are created once (at table set-up) and then updated lock-free on
// the hot path; render() produces the exposition text for /metrics.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace mailgrid {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
public:
    void inc(std::uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> v_{0};
};

class Gauge {
public:
    void set(double v) { v_.store(v, std::memory_order_relaxed); }
    void add(double d) {
        double cur = v_.load(std::memory_order_relaxed);
        while (!v_.compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
        }
    }
    double value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> v_{0};
};

class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double seconds);
    const std::vector<double>& bounds() const { return bounds_; }
    std::vector<std::uint64_t> counts() const;  // cumulative per bound, then +Inf
    double sum() const { return sum_.load(std::memory_order_relaxed); }

private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
    std::atomic<double> sum_{0};
};

// Latency buckets from 50 µs to 10 s: lookups answered from cache and
// LDAP round trips both land in useful buckets.
std::vector<double> latency_buckets();

class MetricsRegistry {
public:
    Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
    Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
    Histogram& histogram(const std::string& name, const std::string& help, const Labels& labels = {},
                         std::vector<double> bounds = latency_buckets());
    std::string render() const;

private:
    struct Family {
        std::string help, type;
        std::map<std::string, std::unique_ptr<Counter>> counters;
        std::map<std::string, std::unique_ptr<Gauge>> gauges;
        std::map<std::string, std::unique_ptr<Histogram>> histograms;
    };
    Family& family(const std::string& name, const std::string& help, const char* type);
    mutable std::mutex mu_;
    std::map<std::string, Family> families_;
};

std::string format_labels(const Labels& labels);

}  // namespace mailgrid
