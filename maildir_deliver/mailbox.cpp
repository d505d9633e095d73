// mailbox - one recipient from address to Maildir, without the directory
// (see mailbox.hpp).
#include "mailbox.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sysexits.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "log/log.hpp"
#include "mail/address.hpp"
#include "util/strings.hpp"

namespace mailgrid {

const std::vector<ParamSpec>& deliver_params() {
    static const std::vector<ParamSpec> specs = {
        {"deliver_root", "/var/mail/vhosts", "the mail store: Maildirs live at <root>/<domain>/<hash>/<user>/"},
        {"deliver_root_marker", "",
         "a file that must be in deliver_root (one on the mounted file system): without it the store counts as "
         "not mounted and mail is deferred; empty: no check"},
        {"deliver_hash", "classic",
         "directories between domain and user: none, classic (first two characters, _-padded) or stable:N"},
        {"deliver_fold_case", "yes", "lower-case the user part before it names a mailbox (domains always are)"},
        {"recipient_delimiter", "+", "characters that separate a user from an address extension"},
        {"deliver_extension_folders", "create",
         "user+ext@domain goes to folder .ext: create (make it on first use), existing (else INBOX), no (always INBOX)"},
        {"deliver_create_mailbox", "yes", "make the Maildir of a user the directory knows when it is not there yet"},
        {"deliver_directory_lookup", "missing",
         "ask the directory only for Maildirs not there yet and for quota refreshes (missing), or for every message (always)"},
        {"deliver_server_host", "",
         "the directory: ldif:/path/users.ldif or LDAP servers as in ldap_table(5); empty: existing Maildirs only"},
        {"deliver_server_port", "389", "as server_port in ldap_table(5)"},
        {"deliver_search_base", "", "as search_base in ldap_table(5)"},
        {"deliver_query_filter", "(mail=%s)", "finds a user's entry; %s is user@domain (%u, %d as in ldap_table(5))"},
        {"deliver_scope", "sub", "as scope in ldap_table(5)"},
        {"deliver_bind", "yes", "as bind in ldap_table(5)"},
        {"deliver_bind_dn", "", "as bind_dn in ldap_table(5)"},
        {"deliver_bind_pw", "", "as bind_pw in ldap_table(5)"},
        {"deliver_version", "3", "LDAP protocol version"},
        {"deliver_timeout", "10", "seconds an LDAP search may take"},
        {"deliver_start_tls", "no", "as start_tls in ldap_table(5)"},
        {"deliver_tls_ca_cert_file", "", "as tls_ca_cert_file in ldap_table(5)"},
        {"deliver_tls_ca_cert_dir", "", "as tls_ca_cert_dir in ldap_table(5)"},
        {"deliver_tls_cert", "", "as tls_cert in ldap_table(5)"},
        {"deliver_tls_key", "", "as tls_key in ldap_table(5)"},
        {"deliver_tls_require_cert", "no", "as tls_require_cert in ldap_table(5)"},
        {"deliver_tls_cipher_suite", "", "as tls_cipher_suite in ldap_table(5)"},
        {"deliver_sasl_mechs", "", "as sasl_mechs in ldap_table(5)"},
        {"deliver_sasl_realm", "", "as sasl_realm in ldap_table(5)"},
        {"deliver_sasl_authz_id", "", "as sasl_authz_id in ldap_table(5)"},
        {"deliver_sasl_minssf", "", "as sasl_minssf in ldap_table(5)"},
        {"deliver_dereference", "", "as dereference in ldap_table(5)"},
        {"deliver_chase_referrals", "", "as chase_referrals in ldap_table(5)"},
        {"deliver_domain", "", "as domain in ldap_table(5): only these domains are looked up"},
        {"deliver_quota_attribute", "mailQuotaBytes", "attribute with the quota: bytes, or <bytes>S,<messages>C"},
        {"deliver_default_quota", "0", "quota of users without the attribute: bytes (K/M/G), <bytes>S,<messages>C, 0 = none"},
        {"deliver_path_attribute", "", "attribute with the Maildir path (relative to deliver_root, or inside it); empty: computed"},
        {"deliver_address_attribute", "mail", "attribute whose address names the mailbox (aliases share it); empty: the recipient"},
        {"deliver_user_filter", "(mail=*)", "the users purge and reconcile go through"},
        {"deliver_purge_attribute", "purgemail", "purge skips users whose entry has this attribute set to no"},
        {"deliver_purge_days", "30", "purge removes unflagged messages in cur/ older than this many days"},
        {"deliver_over_quota", "defer", "mail over quota: defer (4.2.2, exit 75) or bounce (5.2.2, exit 77)"},
        {"deliver_quota_trash", "no", "count .Trash in the quota (Courier: no, Dovecot: yes)"},
        {"deliver_message_size_limit", "52428800", "largest message accepted, in bytes"},
        {"deliver_time_limit", "600s", "one delivery process gives up (exit 75) after this; below Postfix's command_time_limit"},
        {"deliver_lmtp_listen", "", "LMTP server: unix:/path or inet:host:port (empty: deliver one message and exit)"},
        {"deliver_lmtp_threads", "16", "deliveries written and fsync'd at once in LMTP mode"},
        {"deliver_lmtp_max_connections", "200", "LMTP client connections"},
        {"deliver_lmtp_idle_timeout", "300s", "close an LMTP connection idle this long"},
        {"deliver_lmtp_socket_mode", "0666", "permissions of the LMTP unix socket"},
        {"deliver_lmtp_hostname", "", "name in the LMTP greeting (empty: the host name)"},
        {"deliver_lmtp_duplicate_window", "1d", "LMTP: a message sent again within this time after its reply was lost is not stored twice (0: off)"},
        {"deliver_lmtp_duplicate_db", "$deliver_root/.delivered", "LMTP: where the messages delivered within the window are remembered (LMDB)"},
        {"deliver_metrics", "", "Prometheus /metrics listener in LMTP mode: host:port"},
        {"deliver_attic", "$deliver_root/.attic", "where reconcile --remove moves Maildirs without a directory entry"},
    };
    return specs;
}

// ---------------------------------------------------------------- outcomes

Outcome Outcome::temporary(std::string code, std::string text, std::string detail) {
    Outcome o;
    o.kind = Kind::TempFail;
    o.code = std::move(code);
    o.text = std::move(text);
    o.detail = std::move(detail);
    return o;
}

std::string Outcome::enhanced() const {
    switch (kind) {
        case Kind::Delivered: return "2.0.0";
        case Kind::UnknownUser: return "5.1.1";
        case Kind::BadAddress: return "5.1.3";
        case Kind::OverQuota: return permanent ? "5.2.2" : "4.2.2";
        case Kind::TooBig: return "5.3.4";
        case Kind::TempFail: return code.empty() ? "4.3.0" : code;
    }
    return "4.3.0";
}

int Outcome::exit_code() const {
    switch (kind) {
        case Kind::Delivered: return EX_OK;
        case Kind::UnknownUser:
        case Kind::BadAddress: return EX_NOUSER;
        case Kind::OverQuota: return permanent ? EX_NOPERM : EX_TEMPFAIL;
        case Kind::TooBig: return EX_DATAERR;
        case Kind::TempFail: return EX_TEMPFAIL;
    }
    return EX_TEMPFAIL;
}

const char* Outcome::status() const {
    if (kind == Kind::Delivered) return "sent";
    bool temporary = kind == Kind::TempFail || (kind == Kind::OverQuota && !permanent);
    return temporary ? "deferred" : "bounced";
}

std::string Outcome::lmtp_reply(const std::string& address) const {
    std::string who = "<" + address + "> ";
    switch (kind) {
        case Kind::Delivered: return lmtp_line(250, who + (duplicate ? "already delivered" : "delivered"));
        case Kind::UnknownUser: return lmtp_line(550, who + "user unknown");
        case Kind::BadAddress: return lmtp_line(550, who + text);
        case Kind::OverQuota: return lmtp_line(permanent ? 552 : 452, who + "mailbox full");
        case Kind::TooBig: return lmtp_line(552, "message exceeds size limit");
        case Kind::TempFail: {
            // Storage that ran out (the disk, a file system quota) is 452
            // in RFC 5321, as over quota is; any other trouble 451.
            auto e = enhanced();
            return lmtp_line(e == "4.3.1" || e == "4.2.2" ? 452 : 451, who + text);
        }
    }
    return lmtp_line(451, "temporary failure");
}

std::string Outcome::lmtp_line(int reply_code, const std::string& words) const {
    std::string out = std::to_string(reply_code) + " " + enhanced() + " ";
    for (unsigned char c : words) out += (c < 0x20 || c == 0x7f) ? ' ' : static_cast<char>(c);
    return out + "\r\n";
}

Outcome Outcome::io_failure(int error, const std::string& detail) {
    switch (error) {
        case ENOSPC: return Outcome::temporary("4.3.1", "mail system full", detail);
        case EDQUOT: return Outcome::temporary("4.2.2", "mailbox full (file system quota)", detail);
        case EFBIG: return Outcome::temporary("4.3.1", "file size limit reached", detail);
        case EROFS: return Outcome::temporary("4.3.0", "mail store is read-only", detail);
        case ENOMEM: return Outcome::temporary("4.3.0", "insufficient system resources", detail);
        default:
            return Outcome::temporary("4.3.0", std::string("cannot write the mailbox: ") + std::strerror(error), detail);
    }
}

// ---------------------------------------------------------------- set-up

MailboxStore::MailboxStore(const SuiteConfig& config) {
    root_ = config.get("deliver_root");
    if (root_.empty() || root_.front() != '/') config.fail("deliver_root", "must be an absolute path");
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
    root_marker_ = config.get("deliver_root_marker");
    if (!root_marker_.empty() && (root_marker_.find('/') != std::string::npos || root_marker_ == "." ||
                                  root_marker_ == ".."))
        config.fail("deliver_root_marker", "must be a file name in deliver_root, without '/'");
    std::string why;
    auto layout = maildir::Layout::parse(config.get("deliver_hash"), &why);
    if (!layout) config.fail("deliver_hash", why);
    layout_ = *layout;
    fold_case_ = config.get_bool("deliver_fold_case");
    delimiters_ = config.get("recipient_delimiter");
    auto folders = to_lower(config.get("deliver_extension_folders"));
    if (folders == "create") folders_ = Folders::Create;
    else if (folders == "existing") folders_ = Folders::Existing;
    else if (folders == "no") folders_ = Folders::Ignore;
    else config.fail("deliver_extension_folders", "expected create, existing or no");
    create_mailbox_ = config.get_bool("deliver_create_mailbox");
    auto when = to_lower(config.get("deliver_directory_lookup"));
    if (when != "missing" && when != "always") config.fail("deliver_directory_lookup", "expected missing or always");
    lookup_always_ = when == "always";
    auto over = to_lower(config.get("deliver_over_quota"));
    if (over != "defer" && over != "bounce") config.fail("deliver_over_quota", "expected defer or bounce");
    over_quota_bounce_ = over == "bounce";
    count_trash_ = config.get_bool("deliver_quota_trash");
    size_limit_ = static_cast<std::size_t>(config.get_size("deliver_message_size_limit"));
    auto dq = config.get("deliver_default_quota");
    if (auto q = maildirsize::parse_limit(dq)) default_quota_ = *q;
    else if (auto s = parse_size(dq)) default_quota_.bytes = *s;
    else config.fail("deliver_default_quota", "expected bytes (with K, M, G) or <bytes>S,<messages>C");
    quota_attribute_ = config.get("deliver_quota_attribute");
    path_attribute_ = config.get("deliver_path_attribute");
    address_attribute_ = config.get("deliver_address_attribute");
    purge_attribute_ = config.get("deliver_purge_attribute");
    user_filter_ = config.get("deliver_user_filter");
    directory_configured_ = !config.get("deliver_server_host").empty();
    (void)config.get_int("deliver_purge_days", 0, 100000);
    (void)config.get_duration("deliver_time_limit");
}

void MailboxStore::use_metrics(MetricsRegistry& metrics) {
    const std::string help = "Deliveries by result";
    m_sent_ = &metrics.counter("mailgrid_deliver_total", help, {{"status", "sent"}});
    m_bounced_ = &metrics.counter("mailgrid_deliver_total", help, {{"status", "bounced"}});
    m_deferred_ = &metrics.counter("mailgrid_deliver_total", help, {{"status", "deferred"}});
    m_bytes_ = &metrics.counter("mailgrid_deliver_bytes_total", "Bytes delivered into Maildirs");
    m_duplicates_ = &metrics.counter("mailgrid_deliver_duplicates_total",
                                     "Messages sent again after a lost reply, answered without a second copy");
    m_seconds_ = &metrics.histogram("mailgrid_deliver_seconds", "Time from message to Maildir, per recipient");
}

void MailboxStore::set_explicit_maildir(std::string path, std::optional<maildirsize::Limit> limit) {
    explicit_maildir_ = std::move(path);
    explicit_limit_ = limit;
}

// ---------------------------------------------------------------- addresses

std::optional<Recipient> MailboxStore::parse_address(std::string_view address, std::string* why) const {
    auto split = split_address(address);
    if (!split.has_at || split.domain.empty()) {
        if (why) *why = "address has no domain";
        return std::nullopt;
    }
    std::string_view local = split.local, extension;
    // Postfix splits at the first delimiter, and not at the very start.
    auto at = delimiters_.empty() ? std::string_view::npos : local.find_first_of(delimiters_);
    if (at != std::string_view::npos && at > 0) {
        extension = local.substr(at + 1);
        local = local.substr(0, at);
    }
    auto r = make_recipient(local, split.domain, extension, why);
    if (r) r->address = std::string(address);
    return r;
}

std::optional<Recipient> MailboxStore::make_recipient(std::string_view user, std::string_view domain,
                                                      std::string_view extension, std::string* why) const {
    Recipient r;
    r.user = fold_case_ ? to_lower(user) : std::string(user);
    r.domain = to_lower(domain);
    r.extension = std::string(extension);
    r.address = std::string(user);
    if (!extension.empty()) r.address += delimiters_.substr(0, 1) + std::string(extension);
    r.address += "@" + std::string(domain);
    auto problem = maildir::component_problem(r.user, "user");
    if (!problem) problem = maildir::component_problem(r.domain, "domain");
    if (!problem && r.domain.find("..") != std::string::npos) problem = "domain contains \"..\"";
    if (!problem && !r.extension.empty() && folders_ != Folders::Ignore) {
        std::string w;
        if (!maildir::folder_for_extension(r.extension, &w)) problem = w;
    }
    if (problem) {
        if (why) *why = *problem;
        return std::nullopt;
    }
    return r;
}

std::optional<std::vector<std::string>> MailboxStore::components_for_address(std::string_view address,
                                                                             std::string* why) const {
    auto split = split_address(address);
    if (!split.has_at || split.local.empty() || split.domain.empty()) {
        if (why) *why = "address " + printable(address) + " has no domain";
        return std::nullopt;
    }
    auto r = make_recipient(split.local, split.domain, "", why);
    if (!r) return std::nullopt;
    return maildir::mailbox_components(layout_, r->user, r->domain);
}

// ---------------------------------------------------------------- targets

maildir::Opened MailboxStore::open_store() const {
    auto root = maildir::open_root(root_);
    struct stat st {};
    // An unmounted store is an empty directory: every Maildir would look
    // missing, and be bounced or made again on the wrong disk.
    if (root && !root_marker_.empty() && ::fstatat(root.fd.get(), root_marker_.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        root.error = errno;
        root.why = root_ + ": no " + root_marker_ + " in it (" + std::strerror(root.error) + "): not mounted?";
        root.fd.reset();
    }
    return root;
}

Target MailboxStore::on_disk(const Recipient& r) const {
    Target t;
    t.kind = Target::Kind::Mailbox;
    if (explicit_maildir_) {
        t.mailbox = *explicit_maildir_;
        t.create = true;
        t.limit = explicit_limit_;
        return t;
    }
    t.components = maildir::mailbox_components(layout_, r.user, r.domain);
    t.mailbox = root_ + "/" + maildir::join_components(t.components);
    auto root = open_store();
    if (!root) {
        t.kind = Target::Kind::TempFail;
        t.why = "mail store " + root.why;
        return t;
    }
    auto md = maildir::open_below(root.fd.get(), t.components, false, 0700, t.mailbox);
    if (!md) {
        if (md.error != ENOENT) {
            t.kind = Target::Kind::TempFail;
            t.why = md.why;
            return t;
        }
        if (directory_configured_) {
            t.need_lookup = true;
        } else {
            t.kind = Target::Kind::Unknown;
            t.why = "no Maildir " + t.mailbox + " and no directory to ask";
        }
        return t;
    }
    t.exists = true;
    if (!directory_configured_) return t;
    if (lookup_always_ || !path_attribute_.empty()) {
        t.need_lookup = true;
        return t;
    }
    // The limit is cached in maildirsize; refresh it when the file is
    // missing, its first line unreadable, or it is due for a recount anyway.
    struct stat st {};
    if (::fstatat(md.fd.get(), "maildirsize", &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        static_cast<std::size_t>(st.st_size) >= maildirsize::kRecountSize || !maildir::quota_file_limit(md.fd.get()))
        t.need_lookup = true;
    return t;
}

Target MailboxStore::from_entry(const Recipient& r, const Entry& e, Target base) const {
    Target t = std::move(base);
    t.kind = Target::Kind::Mailbox;
    t.looked_up = true;
    t.need_lookup = false;
    t.create = create_mailbox_;
    std::string why;
    std::optional<std::vector<std::string>> components;
    if (!path_attribute_.empty()) {
        auto path = e.first(path_attribute_);
        if (!path.empty()) {
            components = maildir::components_below(path, root_, &why);
            if (!components) {
                t.kind = Target::Kind::TempFail;
                t.why = "directory entry " + e.dn + ": " + why;
                return t;
            }
        }
    }
    if (!components && !address_attribute_.empty()) {
        auto address = e.first(address_attribute_);
        if (!address.empty()) {
            components = components_for_address(address, &why);
            if (!components) {
                t.kind = Target::Kind::TempFail;
                t.why = "directory entry " + e.dn + ": " + address_attribute_ + ": " + why;
                return t;
            }
        }
    }
    if (!components) components = maildir::mailbox_components(layout_, r.user, r.domain);
    if (*components != t.components) t.exists = false;  // found out when it is opened
    t.components = std::move(*components);
    t.mailbox = root_ + "/" + maildir::join_components(t.components);
    t.limit = default_quota_;
    if (!quota_attribute_.empty()) {
        auto q = e.first(quota_attribute_);
        if (!q.empty()) {
            if (auto l = maildirsize::parse_limit(q, &why)) {
                t.limit = *l;
            } else {
                log::warning("directory entry %s: %s: %s; using deliver_default_quota", e.dn.c_str(),
                             quota_attribute_.c_str(), why.c_str());
            }
        }
    }
    return t;
}

Outcome MailboxStore::refused(const Target& t) const {
    Outcome o;
    switch (t.kind) {
        case Target::Kind::Unknown:
            o.kind = Outcome::Kind::UnknownUser;
            o.text = "user unknown";
            o.detail = t.why;
            break;
        case Target::Kind::Bad:
            o.kind = Outcome::Kind::BadAddress;
            o.text = t.why;
            break;
        default:
            o = Outcome::temporary(t.directory_failure ? "4.4.3" : "4.3.0",
                                   t.directory_failure ? "directory lookup failed" : "mailbox unavailable", t.why);
            break;
    }
    o.mailbox = t.mailbox;
    return o;
}

Outcome MailboxStore::bad_address(const std::string& why) const {
    Outcome o;
    o.kind = Outcome::Kind::BadAddress;
    o.text = "bad address: " + why;
    return o;
}

Outcome MailboxStore::too_big() const {
    Outcome o;
    o.kind = Outcome::Kind::TooBig;
    o.text = "message exceeds size limit";
    o.detail = "message larger than deliver_message_size_limit (" + std::to_string(size_limit_) + " bytes)";
    return o;
}

// ---------------------------------------------------------------- delivering

std::optional<maildir::Fd> MailboxStore::open_mailbox(const Target& t, Outcome& failure) const {
    auto failed = [&](Outcome o) -> std::optional<maildir::Fd> {
        o.mailbox = t.mailbox;
        failure = std::move(o);
        return std::nullopt;
    };
    maildir::Opened md;
    if (explicit_maildir_) {
        md = maildir::open_root(*explicit_maildir_);
        if (!md && md.error == ENOENT && ::mkdir(explicit_maildir_->c_str(), 0700) == 0)
            md = maildir::open_root(*explicit_maildir_);
    } else {
        auto root = open_store();
        if (!root) return failed(Outcome::temporary("4.3.0", "mail store unavailable", "mail store " + root.why));
        md = maildir::open_below(root.fd.get(), t.components, t.create, 0700, t.mailbox);
        if (!md && md.error == ENOENT) {
            if (t.looked_up)
                return failed(Outcome::temporary("4.2.1", "mailbox not created yet", t.mailbox + " does not exist"));
            // There a moment ago (a move, an attic): the sender tries again
            // and the next attempt finds out where it went; never a bounce.
            if (t.exists)
                return failed(Outcome::temporary("4.2.1", "mailbox moved", t.mailbox + " went away during the delivery"));
            Target unknown;
            unknown.kind = Target::Kind::Unknown;
            unknown.why = "no Maildir " + t.mailbox;
            return failed(refused(unknown));
        }
    }
    if (!md) return failed(Outcome::temporary("4.3.0", "mailbox unavailable", md.why));
    if (!maildir::is_maildir(md.fd.get())) {
        int e = 0;
        if (!(t.create || explicit_maildir_))
            return failed(Outcome::temporary("4.3.0", "mailbox unavailable", t.mailbox + " is not a Maildir"));
        if (!maildir::make_maildir(md.fd.get(), false, &e))
            return failed(Outcome::io_failure(e, t.mailbox + ": cannot create the Maildir: " + std::strerror(e)));
    }
    return std::move(md.fd);
}

maildir::DeliveryOptions MailboxStore::options_for(const Recipient& r, const Target& t) const {
    maildir::DeliveryOptions opts;
    if (!r.extension.empty() && folders_ != Folders::Ignore)
        opts.folder = maildir::folder_for_extension(r.extension, nullptr).value_or("");
    opts.create_folder = folders_ == Folders::Create;
    opts.inbox_if_missing = true;
    opts.limit = t.limit;
    opts.count_trash = count_trash_;
    return opts;
}

Outcome MailboxStore::outcome_of(const maildir::DeliveryResult& res, const Target& t) const {
    if (!res.recount.empty()) log::info("%s: quota recounted: %s", t.mailbox.c_str(), res.recount.c_str());
    Outcome o;
    switch (res.status) {
        case maildir::DeliveryResult::Status::Delivered:
            o.kind = Outcome::Kind::Delivered;
            o.text = "delivered";
            o.detail = "delivered to maildir " + t.mailbox + "/" + res.file;
            break;
        case maildir::DeliveryResult::Status::OverQuota:
            o.kind = Outcome::Kind::OverQuota;
            o.permanent = over_quota_bounce_;
            o.text = "mailbox full";
            o.detail = t.mailbox + ": " + res.why;
            o.refresh_quota = !t.limit && directory_configured_ && !explicit_maildir_;
            break;
        default: o = Outcome::io_failure(res.error, t.mailbox + ": " + res.why); break;
    }
    o.folder = res.folder.empty() ? "INBOX" : res.folder;
    o.mailbox = t.mailbox;
    return o;
}

Outcome MailboxStore::deliver(const Recipient& r, const Target& t, std::string_view header,
                              std::string_view message) const {
    if (size_limit_ && header.size() + message.size() > size_limit_) return too_big();
    Outcome failure;
    auto md = open_mailbox(t, failure);
    if (!md) return failure;
    auto opts = options_for(r, t);
    opts.header = header;
    return outcome_of(maildir::deliver(md->get(), message, opts), t);
}

std::vector<Outcome> MailboxStore::deliver_all(const std::vector<std::pair<Recipient, Target>>& to,
                                               std::string_view header, std::string_view message) const {
    std::vector<Outcome> out(to.size());
    if (size_limit_ && header.size() + message.size() > size_limit_) {
        for (auto& o : out) o = too_big();
        return out;
    }
    std::vector<maildir::Fd> fds;
    std::vector<maildir::Delivery> deliveries;
    std::vector<std::size_t> which;
    fds.reserve(to.size());
    const std::string digest = journal_ ? journal_->digest(header, message) : std::string();
    for (std::size_t i = 0; i < to.size(); ++i) {
        const auto& [r, t] = to[i];
        auto md = open_mailbox(t, out[i]);
        if (!md) continue;
        auto options = options_for(r, t);
        if (journal_) {
            // Remembered before it is linked, the message can be looked
            // for when it comes again; only if it is still there (or was
            // moved to cur/) was its reply the one lost.
            std::string id = journal_->id(r.address, digest);
            if (auto seen = journal_->find(id); seen && seen->mailbox == t.mailbox && maildir::holds(md->get(), seen->file)) {
                Outcome& o = out[i];
                o.kind = Outcome::Kind::Delivered;
                o.duplicate = true;
                o.text = "already delivered";
                o.detail = "already delivered to maildir " + t.mailbox + "/" + seen->file + ", not stored again";
                auto slash = seen->file.find("/new/");
                o.folder = slash == std::string::npos ? "INBOX" : seen->file.substr(0, slash);
                o.mailbox = t.mailbox;
                continue;
            }
            options.before_link = [journal = journal_, id, mailbox = t.mailbox](const std::string& file) {
                journal->remember(id, {mailbox, file});
            };
        }
        fds.push_back(std::move(*md));
        deliveries.push_back({fds.back().get(), std::move(options)});
        which.push_back(i);
    }
    auto results = maildir::deliver_all(deliveries, header, message);
    for (std::size_t k = 0; k < which.size(); ++k) out[which[k]] = outcome_of(results[k], to[which[k]].second);
    return out;
}

void MailboxStore::record(const Outcome& o, std::string_view address, std::string_view queue_id, std::uint64_t size,
                          double seconds) const {
    std::string prefix = queue_id.empty() ? std::string() : printable(queue_id, 40) + ": ";
    std::string where = o.folder.empty() ? "" : ", folder=" + o.folder;
    std::string why = o.kind == Outcome::Kind::Delivered
                          ? o.detail
                          : o.enhanced() + " " + o.text + (o.detail.empty() ? "" : ": " + o.detail);
    // Milliseconds in integers: %f would bring glibc's floating-point
    // formatter into every one-message process for this one number.
    const auto ms = static_cast<unsigned long long>(std::max(0.0, seconds) * 1000 + 0.5);
    log::info("%sto=<%s>%s, size=%llu, delay=%llu.%03llu, status=%s (%s)", prefix.c_str(),
              printable(address).c_str(), where.c_str(), static_cast<unsigned long long>(size), ms / 1000, ms % 1000,
              o.status(), printable(why, 500).c_str());
    if (!m_sent_) return;
    if (o.duplicate) {
        m_duplicates_->inc();
    } else if (o.kind == Outcome::Kind::Delivered) {
        m_sent_->inc();
        m_bytes_->inc(size);
    } else if (std::string_view(o.status()) == "bounced") {
        m_bounced_->inc();
    } else {
        m_deferred_->inc();
    }
    m_seconds_->observe(seconds);
}

}  // namespace mailgrid
