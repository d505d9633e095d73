// ldif_directory - the embedded directory: an LDIF file held in memory.
//
// Searches evaluate the same RFC 4515 filters as slapd, with equality
// indexes built on first use of an attribute. The file is re-read when it
// changes (checked every reload_interval); a file with errors is reported
// and the previous contents stay in service.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "directory/directory.hpp"
#include "directory/filter.hpp"

namespace mailgrid {

// The entry as a search asking for these attributes returns it (empty =
// all, "1.1" = none, "*" = all user attributes).
Entry project_entry(const Entry& e, const std::vector<std::string>& attributes);

class LdifSnapshot {
public:
    static std::shared_ptr<LdifSnapshot> load(const std::string& path, std::vector<std::string>& errors);
    static std::shared_ptr<LdifSnapshot> from_entries(std::vector<Entry> entries, std::vector<std::string>& errors);

    SearchResult search(const SearchRequest& req) const;
    std::size_t size() const { return entries_.size(); }
    const Entry* find_dn(std::string_view dn) const;
    // In load order; safe to read from another thread while searches run.
    const Entry& entry_at(std::size_t i) const { return entries_[i]; }
    const std::string& normalized_dn_at(std::size_t i) const { return norm_dns_[i]; }
    // Where the entry with this normalized DN is in load order.
    std::optional<std::size_t> position(const std::string& normalized_dn) const;
    // Equality indexes are built on first use; a copy that replaces this
    // one can build the same ones before it goes into service.
    std::vector<std::string> indexed_attributes() const;
    void build_index(const std::string& attr) const { index(attr); }

private:
    std::vector<std::uint32_t> candidates(const Filter& f, bool& all) const;
    const std::unordered_map<std::string, std::vector<std::uint32_t>>& index(const std::string& attr) const;

    std::vector<Entry> entries_;
    std::vector<std::string> norm_dns_;
    std::unordered_map<std::string, std::uint32_t> by_dn_;
    mutable std::unordered_map<std::string, std::unordered_map<std::string, std::vector<std::uint32_t>>> indexes_;
};

class LdifDirectory : public Directory {
public:
    // Loads now; throws std::runtime_error if the file cannot be read.
    LdifDirectory(asio::io_context& io, std::string path, std::chrono::milliseconds reload_interval);
    awaitable<SearchResult> search(SearchRequest request) override;
    awaitable<BindResult> bind_check(std::string dn, std::string password, std::chrono::milliseconds timeout) override;
    std::string describe() const override { return "ldif:" + path_; }

    void start_watching();  // reload on change from now on
    bool reload_if_changed();  // synchronous check, for tests and SIGHUP
    std::size_t entries() const { return snapshot_->size(); }
    std::shared_ptr<const LdifSnapshot> snapshot() const { return snapshot_; }

private:
    struct Stamp {
        time_t mtime = 0;
        long mtime_ns = 0;
        off_t size = -1;
        ino_t inode = 0;
        bool operator==(const Stamp&) const = default;
    };
    struct LoadOutcome {
        std::shared_ptr<LdifSnapshot> snapshot;
        std::vector<std::string> errors;
        std::string failure;
    };
    static LoadOutcome load_file(const std::string& path);
    bool adopt(LoadOutcome outcome, Stamp stamp);
    Stamp stamp() const;
    awaitable<void> watch();

    asio::io_context& io_;
    std::string path_;
    std::chrono::milliseconds interval_;
    std::shared_ptr<LdifSnapshot> snapshot_;
    Stamp loaded_;
};

}  // namespace mailgrid
