// lru_cache - bounded in-process cache with per-entry expiry.
//
// Entries never outlive their TTL; the least recently used entry goes when
// the cache is full. Not thread-safe: each daemon's event loop owns its
// caches.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace mailgrid {

template <typename V, typename Clock = std::chrono::steady_clock>
class LruCache {
public:
    using time_point = typename Clock::time_point;

    explicit LruCache(std::size_t capacity) : capacity_(capacity) {}

    std::optional<V> get(const std::string& key, time_point now = Clock::now()) {
        const V* v = find(key, now);
        return v ? std::optional<V>(*v) : std::nullopt;
    }

    // The cached value, valid until the cache is next changed.
    const V* find(const std::string& key, time_point now = Clock::now()) {
        auto it = index_.find(key);
        if (it == index_.end()) return nullptr;
        auto node = it->second;
        if (node->expires <= now) {
            items_.erase(node);
            index_.erase(it);
            return nullptr;
        }
        items_.splice(items_.begin(), items_, node);
        return &node->value;
    }

    void put(const std::string& key, V value, std::chrono::milliseconds ttl, time_point now = Clock::now()) {
        if (capacity_ == 0 || ttl.count() <= 0) return;
        auto expires = now + ttl;
        if (auto it = index_.find(key); it != index_.end()) {
            it->second->value = std::move(value);
            it->second->expires = expires;
            items_.splice(items_.begin(), items_, it->second);
            return;
        }
        while (items_.size() >= capacity_) {
            index_.erase(items_.back().key);
            items_.pop_back();
        }
        items_.push_front(Node{key, std::move(value), expires});
        index_.emplace(key, items_.begin());
    }

    bool erase(const std::string& key) {
        auto it = index_.find(key);
        if (it == index_.end()) return false;
        items_.erase(it->second);
        index_.erase(it);
        return true;
    }

    void clear() {
        items_.clear();
        index_.clear();
    }
    std::size_t size() const { return items_.size(); }
    std::size_t capacity() const { return capacity_; }

private:
    struct Node {
        std::string key;
        V value;
        time_point expires;
    };
    std::size_t capacity_;
    std::list<Node> items_;
    std::unordered_map<std::string, typename std::list<Node>::iterator> index_;
};

}  // namespace mailgrid
