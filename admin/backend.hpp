// backend - the mail stores the admin command places users on: Maildir
// backends (a store root it can reach, locally or over NFS) and Cyrus
// backends (reached over IMAP as the Cyrus administrator).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/suite_config.hpp"
#include "mail/maildir_name.hpp"
#include "mail/maildirsize.hpp"

namespace mailgrid::admin {

struct Backend {
    enum class Kind { Maildir, Cyrus } kind = Kind::Maildir;
    std::string name;  // as the host part of maildrop: md01.example.com
    std::string root;  // Maildir: the store root as seen from this host
    std::string imap_host;
    std::uint16_t imap_port = 143;
    double weight = 1.0;
    std::uint64_t capacity = 0;  // bytes; 0 = unknown

    bool named(std::string_view n) const;  // the full name or its first label
    const char* kind_name() const { return kind == Kind::Maildir ? "maildir" : "cyrus"; }
};

// admin_backends, admin_backend_weights, admin_backend_capacity.
// Throws ConfigError.
std::vector<Backend> parse_backends(const SuiteConfig& c);

struct MailboxStats {
    std::uint64_t messages = 0;
    std::uint64_t bytes = 0;
    std::uint64_t files = 0;  // every file copied in a move, messages or not
};

// Maildirs at <root>/<domain>/<hash>/<user>/ as maildir_deliver lays them out.
class MaildirLayout {
public:
    MaildirLayout(maildir::Layout layout, bool fold_case) : layout_(layout), fold_case_(fold_case) {}
    // Components below the root for a mailbox address; nullopt and *why
    // when the address cannot name a path safely.
    std::optional<std::vector<std::string>> components(std::string_view address, std::string* why) const;
    std::string path(const Backend& b, std::string_view address) const;  // "" if unusable

private:
    maildir::Layout layout_;
    bool fold_case_;
};

// Makes the Maildir (and maildirsize with the limit), owned like the
// store root. Existing Maildirs are left as they are (ok).
bool create_maildir(const Backend& b, const std::vector<std::string>& components, const maildirsize::Limit& limit,
                    std::string* why);
bool maildir_exists(const Backend& b, const std::vector<std::string>& components);
MailboxStats maildir_stats(const std::string& path);

// One file of a Maildir tree, by its path relative to the Maildir.
struct TreeFile {
    std::string relative;
    std::uint64_t size = 0;
};
// Every file below path, tmp/ directories excepted.
std::vector<TreeFile> list_tree(const std::string& path, std::string* why);
// Is this file a message (in cur/ or new/)?
bool is_message(std::string_view relative);
// The message's unique part (before ":2,"), by which copies are matched
// whatever their flags or whether they are in new/ or cur/.
std::string message_key(std::string_view relative);

// Copies one file to a temporary name and renames it into place (never
// over an existing file), making missing directories on the way; owner,
// mode and modification time follow the source. *sha256 is the digest of
// what was read.
bool copy_file(const std::string& from, const std::string& to, std::string* sha256, std::string* why);
bool file_sha256(const std::string& path, std::string* sha256, std::string* why);
// Everything written to the file system holding path reaches the disk
// (syncfs), and clean cached pages of files are dropped so that a
// verification reads them back from the disk.
bool sync_filesystem(const std::string& path, std::string* why);
// rm -r that does not follow symbolic links.
bool remove_tree(const std::string& path, std::string* why);

}  // namespace mailgrid::admin
