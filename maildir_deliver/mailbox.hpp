// mailbox - what maildir_deliver does with one recipient that needs no
// directory: check the address, find the Maildir on disk, deliver into it
// with its quota, and say how it went in the words each caller needs (an
// exit status with an enhanced status code, an LMTP reply, a Postfix-style
// log line). The directory lookups on top of this are in agent.hpp; this
// part is also linked into the lean front binary, which must not load the
// LDAP and TLS libraries.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/suite_config.hpp"
#include "directory/entry.hpp"
#include "mail/maildir.hpp"
#include "mail/maildir_name.hpp"
#include "metrics/metrics.hpp"

namespace mailgrid {

const std::vector<ParamSpec>& deliver_params();

struct Recipient {
    std::string user;       // folded if deliver_fold_case
    std::string domain;     // lower case
    std::string extension;  // "" = none
    std::string address;    // as given, for logs and replies
    std::string key() const { return user + "@" + domain; }
};

// What became of a delivery.
struct Outcome {
    enum class Kind { Delivered, UnknownUser, BadAddress, OverQuota, TooBig, TempFail } kind = Kind::TempFail;
    bool permanent = false;  // OverQuota: bounce rather than defer
    std::string code;        // TempFail: the enhanced code ("" = 4.3.0)
    std::string text;        // what the sender may see: no paths
    std::string detail;      // what the log says: paths, errno text
    std::string folder;      // where it went: "INBOX" or ".name"
    std::string mailbox;     // the Maildir's path
    bool refresh_quota = false;  // over a limit read from maildirsize: ask the directory before refusing
    bool duplicate = false;      // Delivered before (the journal says so): not stored again

    std::string enhanced() const;  // "2.0.0", "5.1.1", "4.2.2" ...
    int exit_code() const;         // sysexits
    std::string lmtp_reply(const std::string& address) const;
    const char* status() const;    // Postfix's words: sent, bounced, deferred

    static Outcome temporary(std::string code, std::string text, std::string detail);
    // A write that failed with `error` (ENOSPC, EDQUOT, EFBIG, EROFS ...).
    static Outcome io_failure(int error, const std::string& detail);

private:
    std::string lmtp_line(int reply_code, const std::string& words) const;
};

// Where a recipient's mail goes.
struct Target {
    enum class Kind { Mailbox, Unknown, Bad, TempFail } kind = Kind::TempFail;
    std::string why;
    std::vector<std::string> components;  // below deliver_root (empty: an explicit Maildir)
    std::string mailbox;                  // full path, for logs
    bool create = false;                  // make the Maildir if it is not there
    std::optional<maildirsize::Limit> limit;  // from the directory or --quota; nullopt: maildirsize's
    bool looked_up = false;               // the directory was asked
    bool exists = false;                  // the Maildir was there when looked at
    bool need_lookup = false;             // the directory must be asked
    bool directory_failure = false;       // TempFail because the directory failed
};

// Which message went into which Maildir, remembered for a while (LMTP
// mode): a sender that lost the connection after the message was stored
// but before it read the reply sends it again, and must get its 250
// without a second copy. The LMDB implementation is delivery_journal.hpp;
// this interface keeps LMDB and OpenSSL out of the lean front binary.
class DeliveryJournal {
public:
    virtual ~DeliveryJournal() = default;
    // A digest of header and message, made once per message ...
    virtual std::string digest(std::string_view header, std::string_view message) const = 0;
    // ... and the name of its delivery to one recipient.
    virtual std::string id(std::string_view recipient, const std::string& digest) const = 0;
    struct Entry {
        std::string mailbox;  // the Maildir's path
        std::string file;     // "new/NAME" or ".folder/new/NAME" in it
    };
    // What was remembered under id within the window, if anything.
    virtual std::optional<Entry> find(const std::string& id) = 0;
    // Called before the link into new/: see maildir::DeliveryOptions::before_link.
    virtual void remember(const std::string& id, const Entry& entry) = 0;
};

class MailboxStore {
public:
    // Reads and checks the deliver_* parameters (not the directory's).
    // Throws ConfigError.
    explicit MailboxStore(const SuiteConfig& config);

    // Deliver every message into this Maildir (like deliverquota), with
    // this quota if given.
    void set_explicit_maildir(std::string path, std::optional<maildirsize::Limit> limit);

    // user[+extension]@domain, split with recipient_delimiter and checked.
    std::optional<Recipient> parse_address(std::string_view address, std::string* why) const;
    // The parts as local(8) or pipe(8) hand them over; extension may be "".
    std::optional<Recipient> make_recipient(std::string_view user, std::string_view domain,
                                            std::string_view extension, std::string* why) const;
    // <domain>/<hash>/<user> of an address (a directory entry's).
    std::optional<std::vector<std::string>> components_for_address(std::string_view address, std::string* why) const;

    // Where the recipient's Maildir is by the layout, whether it is there,
    // and whether the directory must be asked (need_lookup).
    Target on_disk(const Recipient& r) const;
    // The target a directory entry describes (path, address, quota).
    Target from_entry(const Recipient& r, const Entry& e, Target base) const;
    // Writes the message (after header) into the target's Maildir.
    // Blocking.
    Outcome deliver(const Recipient& r, const Target& t, std::string_view header, std::string_view message) const;
    // The same message for several recipients, written once and linked
    // into each Maildir (maildir::deliver_all); with a journal, a
    // recipient whose Maildir already holds this very message (it came
    // again) is answered as delivered without a second copy. Blocking.
    std::vector<Outcome> deliver_all(const std::vector<std::pair<Recipient, Target>>& to, std::string_view header,
                                     std::string_view message) const;

    Outcome refused(const Target& t) const;
    Outcome bad_address(const std::string& why) const;
    Outcome too_big() const;

    // One Postfix-style log line, and the metrics when set up.
    void record(const Outcome& o, std::string_view address, std::string_view queue_id, std::uint64_t size,
                double seconds) const;
    void use_metrics(MetricsRegistry& metrics);
    // Remember deliveries in deliver_all (LMTP mode). Not owned.
    void use_journal(DeliveryJournal* journal) { journal_ = journal; }

    const std::string& root() const { return root_; }
    // The store's root, refused (a temporary failure) when
    // deliver_root_marker is set and not there.
    maildir::Opened open_store() const;
    std::size_t message_size_limit() const { return size_limit_; }
    bool directory_configured() const { return directory_configured_; }
    bool lookup_always() const { return lookup_always_; }
    bool trusts_layout() const { return path_attribute_.empty(); }
    const std::string& quota_attribute() const { return quota_attribute_; }
    const std::string& path_attribute() const { return path_attribute_; }
    const std::string& address_attribute() const { return address_attribute_; }
    const std::string& purge_attribute() const { return purge_attribute_; }
    const std::string& user_filter() const { return user_filter_; }
    bool explicit_maildir() const { return explicit_maildir_.has_value(); }

private:
    std::optional<maildir::Fd> open_mailbox(const Target& t, Outcome& failure) const;
    maildir::DeliveryOptions options_for(const Recipient& r, const Target& t) const;
    Outcome outcome_of(const maildir::DeliveryResult& res, const Target& t) const;

    std::string root_;
    std::string root_marker_;
    maildir::Layout layout_;
    bool fold_case_ = true;
    std::string delimiters_;
    enum class Folders { Create, Existing, Ignore } folders_ = Folders::Create;
    bool create_mailbox_ = true;
    bool lookup_always_ = false;
    bool over_quota_bounce_ = false;
    bool count_trash_ = false;
    bool directory_configured_ = false;
    std::size_t size_limit_ = 0;
    maildirsize::Limit default_quota_;
    std::string quota_attribute_, path_attribute_, address_attribute_, purge_attribute_, user_filter_;
    std::optional<std::string> explicit_maildir_;
    std::optional<maildirsize::Limit> explicit_limit_;

    DeliveryJournal* journal_ = nullptr;
    Counter *m_sent_ = nullptr, *m_bounced_ = nullptr, *m_deferred_ = nullptr, *m_bytes_ = nullptr,
            *m_duplicates_ = nullptr;
    Histogram* m_seconds_ = nullptr;
};

}  // namespace mailgrid
