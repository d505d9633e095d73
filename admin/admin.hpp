// admin - the operations of the mailgrid command on accounts: the
// directory entry and the mailbox on its backend made, changed and removed
// together, placement of new users over the backends, and the pieces a
// move (move.hpp) is built from.
#pragma once

#include <sysexits.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend.hpp"
#include "config/ldap_table.hpp"
#include "config/suite_config.hpp"
#include "directory/directory_writer.hpp"
#include "directory/expand.hpp"
#include "mail/maildirsize.hpp"

namespace mailgrid::admin {

const std::vector<ParamSpec>& admin_params();

// mkdir -p with mode 0700 for what it makes; throws Failure.
void make_private_directories(const std::string& path);

// An operation that cannot be done: the one-line message and the sysexits
// code the command ends with.
class Failure : public std::runtime_error {
public:
    Failure(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
    int code() const { return code_; }

private:
    int code_;
};

struct User {
    std::string dn;
    std::string address;            // mail
    std::string name;               // cn
    std::vector<std::string> accepts;  // mailacceptinggeneralid (the address, aliases, old maildrops)
    std::vector<std::string> maildrops;
    std::vector<std::string> former_maildrops;  // accepted addresses at backends: left by moves
    std::uint64_t quota = 0;        // bytes, 0 = none
    bool has_password = false;
    std::string password_scheme;
    const Backend* backend = nullptr;  // the backend its (first) maildrop names

    std::vector<std::string> aliases() const;  // accepts without the address and former maildrops
};

struct BackendUsage {
    std::uint64_t users = 0;
    std::uint64_t quota_allocated = 0;  // sum of the users' quotas
    std::uint64_t capacity = 0;         // configured, or the file system's size (Maildir)
    bool up = true;
    std::string why_down;
};

struct Placement {
    const Backend* backend = nullptr;
    std::string why;
};

struct NewUser {
    std::string address;
    std::string name;
    std::optional<std::string> password;       // plaintext, hashed before it is stored
    std::optional<std::string> password_hash;  // an already hashed userPassword value
    std::optional<std::uint64_t> quota;
    std::vector<std::string> aliases;
    std::string backend;  // "" = placement
};

class Admin {
public:
    explicit Admin(const SuiteConfig& config);  // throws ConfigError

    const SuiteConfig& config() const { return config_; }
    const std::vector<Backend>& backends() const { return backends_; }
    const Backend* backend(std::string_view name) const;
    const Backend& require_backend(std::string_view name) const;  // Failure(EX_USAGE) if unknown
    DirectoryWriter& directory();  // connects on first use; Failure(EX_TEMPFAIL) when it cannot

    // Checks and lower-cases an address (user@domain); Failure(EX_DATAERR).
    std::string check_address(std::string_view address) const;
    std::optional<User> find_user(std::string_view address);
    User require_user(std::string_view address);  // Failure(EX_NOUSER) when unknown
    std::vector<User> list_users(const std::string& backend_filter);
    // Who already uses address as mail or mailacceptinggeneralid (its DN), if anyone.
    std::optional<std::string> address_owner(std::string_view address);

    std::map<std::string, BackendUsage> usage();
    // Where a new user goes: the named backend, or the placement policy
    // over the backends that are up, given the usage (updated by the caller
    // when placing many).
    Placement place(const std::string& requested, const std::map<std::string, BackendUsage>& usage) const;

    // The directory entry of a new user, placed on backend.
    Entry make_entry(const NewUser& u, const Backend& backend) const;
    std::string maildrop_for(std::string_view address, const Backend& b) const;
    std::string hash_password(std::string_view password) const;

    // The mailbox on its backend.
    void create_mailbox(const Backend& b, std::string_view address, std::uint64_t quota);
    bool backend_up(const Backend& b, std::string* why);
    // Maildir backends: where the user's Maildir is ("" for Cyrus).
    std::string maildir_path(const Backend& b, std::string_view address) const;
    std::string cyrus_mailbox(std::string_view address) const;

    // The whole account: entry, then mailbox; the entry is taken back if
    // the mailbox cannot be made.
    User add_user(const NewUser& u, bool dry_run, Placement* placed);
    // Entry first (mail stops being accepted), then the mailbox into the
    // attic (or gone, with purge). Returns where the mail went.
    std::string remove_user(std::string_view address, bool purge);
    void set_password(std::string_view address, std::string_view password);
    void set_quota(std::string_view address, std::uint64_t quota);
    void change_aliases(std::string_view address, const std::vector<std::string>& add,
                        const std::vector<std::string>& remove);
    // Attic entries older than admin_attic_days removed; returns how many.
    std::size_t clean_attic(const Backend& b);

    // For ImapSession logins to Cyrus backends.
    std::string cyrus_admin() const { return config_.get("admin_cyrus_admin"); }
    std::string cyrus_password() const;

    // Throws Failure for a directory write that failed.
    [[noreturn]] static void fail_write(const WriteResult& r);
    User user_from_entry(const Entry& e) const;

private:
    std::string expand(const std::string& param, std::string_view address, Quote quote) const;
    std::string backend_of_maildrop(std::string_view maildrop) const;

    const SuiteConfig& config_;
    LdapTableConfig directory_config_;
    std::vector<Backend> backends_;
    std::unique_ptr<DirectoryWriter> writer_;
    std::unique_ptr<MaildirLayout> layout_;
    ExpandContext user_filter_ctx_, user_dn_ctx_;
};

}  // namespace mailgrid::admin
