// mailgrid - the life of an account across the farm's backends.
//
//   mailgrid [-c mailgrid.cf] [-o name=value]... [--json] COMMAND ...
//   mailgrid user add ADDRESS [--backend B] [--quota SIZE] [--password-stdin | --no-password]
//                             [--alias A]... [--name NAME] [--dry-run]
//   mailgrid user show|remove|passwd|quota|alias|list|move|moves ...
//   mailgrid backend list | drain B [--parallel N] [--dry-run]
//   mailgrid import FILE.csv|FILE.ldif [--dry-run]
//   mailgrid attic clean
//
// Exit codes (sysexits): 0 done, 64 usage, 65 bad input, 67 no such user,
// 69 backend down, 73 exists, 75 directory or hold list unavailable,
// 77 directory write denied, 78 configuration error.
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "admin.hpp"
#include "daemon/daemon.hpp"
#include "hold.hpp"
#include "import.hpp"
#include "log/log.hpp"
#include "move.hpp"
#include "util/json.hpp"
#include "util/secure.hpp"
#include "util/strings.hpp"

using namespace mailgrid;
using namespace mailgrid::admin;

namespace {

bool g_json = false;

std::string size_text(std::uint64_t bytes) {
    char buf[32];
    if (bytes >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.1fG", static_cast<double>(bytes) / (1ull << 30));
    else if (bytes >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(bytes) / (1ull << 20));
    else std::snprintf(buf, sizeof buf, "%lluK", static_cast<unsigned long long>((bytes + 1023) / 1024));
    return buf;
}

std::string user_json(const User& u, const Admin& a) {
    JsonObject o;
    o.str("address", u.address).str("dn", u.dn).str("name", u.name);
    o.str("backend", u.backend ? u.backend->name : "");
    o.strings("maildrop", u.maildrops).strings("aliases", u.aliases());
    o.num("quota", u.quota).boolean("password", u.has_password).str("password_scheme", u.password_scheme);
    if (u.backend && u.backend->kind == Backend::Kind::Maildir) o.str("maildir", a.maildir_path(*u.backend, u.address));
    if (u.backend && u.backend->kind == Backend::Kind::Cyrus) o.str("mailbox", a.cyrus_mailbox(u.address));
    return o.text();
}

// A password never comes from the command line (ps shows it to everyone):
// from stdin (one line), or typed twice at a prompt without echo.
std::string read_password(bool from_stdin) {
    std::string pw;
    if (from_stdin) {
        if (!std::getline(std::cin, pw)) throw Failure(EX_NOINPUT, "no password on stdin");
        if (!pw.empty() && pw.back() == '\r') pw.pop_back();
    } else {
        if (!::isatty(0)) throw Failure(EX_USAGE, "no password: use --password-stdin, a terminal, or --no-password");
        auto ask = [](const char* prompt) {
            std::fprintf(stderr, "%s", prompt);
            termios old{};
            ::tcgetattr(0, &old);
            termios quiet = old;
            quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
            ::tcsetattr(0, TCSANOW, &quiet);
            std::string s;
            std::getline(std::cin, s);
            ::tcsetattr(0, TCSANOW, &old);
            std::fprintf(stderr, "\n");
            return s;
        };
        pw = ask("Password: ");
        std::string again = ask("Again: ");
        bool same = pw == again;
        secure_wipe(again);
        if (!same) throw Failure(EX_DATAERR, "the passwords differ");
    }
    if (pw.empty()) throw Failure(EX_DATAERR, "empty password");
    return pw;
}

[[noreturn]] void refuse_cli_password() {
    throw Failure(EX_USAGE, "a password on the command line is visible to every user of this host (ps, shell "
                            "history): use --password-stdin or the prompt");
}

int run_drain(Admin& admin, const CommonOptions& common, const std::string& name, int parallel, bool dry_run) {
    const Backend& from = admin.require_backend(name);
    auto users = admin.list_users(from.name);
    auto use = admin.usage();
    use[from.name].up = false;
    std::string why;
    for (const auto& b : admin.backends())
        if (b.kind != from.kind || (&b != &from && !admin.backend_up(b, &why))) use[b.name].up = false;
    std::vector<std::pair<std::string, std::string>> plan;
    for (const auto& u : users) {
        Placement p = admin.place("", use);
        ++use[p.backend->name].users;
        use[p.backend->name].quota_allocated += u.quota;
        plan.emplace_back(u.address, p.backend->name);
    }
    if (dry_run || g_json) {
        std::vector<std::string> items;
        for (const auto& [a, b] : plan) {
            if (g_json) items.push_back(JsonObject().str("address", a).str("to", b).text());
            else std::printf("%s -> %s\n", a.c_str(), b.c_str());
        }
        if (g_json) std::printf("%s\n", json_array(items).c_str());
        if (dry_run) return 0;
    }
    // Each move is a process of its own (mailgrid user move), N at a time:
    // one failing or crashing leaves the others going and its own state
    // recorded for a rerun.
    std::vector<std::string> base = {"/proc/self/exe", "-c", common.config_path};
    for (const auto& o : common.overrides) base.insert(base.end(), {"-o", o});
    std::size_t next = 0, failed = 0, running = 0;
    while (next < plan.size() || running) {
        while (next < plan.size() && running < static_cast<std::size_t>(std::max(1, parallel))) {
            auto args = base;
            args.insert(args.end(), {"user", "move", plan[next].first, plan[next].second});
            pid_t pid = ::fork();
            if (pid == 0) {
                std::vector<char*> argv;
                for (auto& s : args) argv.push_back(s.data());
                argv.push_back(nullptr);
                ::execv(argv[0], argv.data());
                ::_exit(EX_OSERR);
            }
            if (pid < 0) throw Failure(EX_OSERR, std::string("fork: ") + std::strerror(errno));
            ++running;
            ++next;
        }
        int status = 0;
        if (::wait(&status) > 0) {
            --running;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
        }
    }
    if (!g_json)
        std::printf("drained %s: %zu users moved, %zu failed\n", from.name.c_str(), plan.size() - failed, failed);
    return failed ? EX_TEMPFAIL : 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"mailgrid: add, place, move and remove users across the backends of a mailgrid farm"};
    app.set_version_flag("--version", "mailgrid " MAILGRID_VERSION);
    app.require_subcommand(0, 1);
    CommonOptions common;
    app.add_option("-c,--config", common.config_path, "mailgrid.cf to read")->capture_default_str();
    app.add_option("-o", common.overrides, "override a parameter: -o name=value")->take_all();
    app.add_flag("-v,--verbose", common.verbose, "log to stderr too (repeat for more)");
    app.add_flag("--check", common.check, "validate the configuration and exit");
    app.add_flag("--show", common.show, "print the effective parameters and exit");
    app.add_flag("--json", g_json, "JSON output, for scripts");

    auto* user = app.add_subcommand("user", "one account")->require_subcommand(1);
    std::string address, backend_name, quota_text, name, cli_password;
    std::vector<std::string> aliases, add_aliases, remove_aliases;
    bool password_stdin = false, no_password = false, dry_run = false, purge = false, abort_move_flag = false;
    int parallel = 1;

    auto* add = user->add_subcommand("add", "create the entry and the mailbox");
    add->add_option("address", address, "user@domain")->required();
    add->add_option("--backend", backend_name, "where the mailbox goes (default: placement policy)");
    add->add_option("--quota", quota_text, "mailbox quota: bytes, K, M, G");
    add->add_option("--alias", aliases, "another address of the user (repeatable)")->take_all();
    add->add_option("--name", name, "the user's full name (cn)");
    add->add_flag("--password-stdin", password_stdin, "read the password from stdin");
    add->add_flag("--no-password", no_password, "no password (the account cannot log in)");
    add->add_option("--password", cli_password, "refused: use --password-stdin or the prompt");
    add->add_flag("--dry-run", dry_run, "say where the user would go and why; change nothing");

    auto* show = user->add_subcommand("show", "the entry, its backend and mailbox");
    show->add_option("address", address)->required();
    auto* list = user->add_subcommand("list", "all users (of one backend)");
    list->add_option("--backend", backend_name, "only this backend's users");
    auto* passwd = user->add_subcommand("passwd", "set the password");
    passwd->add_option("address", address)->required();
    passwd->add_flag("--password-stdin", password_stdin, "read the password from stdin");
    passwd->add_option("--password", cli_password, "refused: use --password-stdin or the prompt");
    auto* quota = user->add_subcommand("quota", "set the quota (0 = none)");
    quota->add_option("address", address)->required();
    quota->add_option("size", quota_text)->required();
    auto* alias = user->add_subcommand("alias", "add or remove addresses of the user");
    alias->add_option("address", address)->required();
    alias->add_option("--add", add_aliases)->take_all();
    alias->add_option("--remove", remove_aliases)->take_all();
    auto* remove = user->add_subcommand("remove", "remove the entry; the mail goes to the attic");
    remove->add_option("address", address)->required();
    remove->add_flag("--purge", purge, "delete the mail instead of keeping it in the attic");
    auto* move = user->add_subcommand("move", "move the mailbox to another backend (run again to resume)");
    move->add_option("address", address)->required();
    move->add_option("backend", backend_name, "the backend to move to (not needed to resume)");
    move->add_flag("--abort", abort_move_flag, "undo an unfinished move that has not switched the directory");
    auto* moves = user->add_subcommand("moves", "unfinished moves");

    auto* backend = app.add_subcommand("backend", "the backends")->require_subcommand(1);
    auto* blist = backend->add_subcommand("list", "users, quota and mail per backend");
    auto* drain = backend->add_subcommand("drain", "move every user off a backend");
    drain->add_option("backend", backend_name)->required();
    drain->add_option("--parallel", parallel, "moves at a time")->check(CLI::Range(1, 64));
    drain->add_flag("--dry-run", dry_run, "print where each user would go");

    std::string import_path;
    auto* import = app.add_subcommand("import", "bulk provisioning from CSV or LDIF");
    import->add_option("file", import_path)->required();
    import->add_flag("--dry-run", dry_run, "check and place, change nothing");

    auto* attic = app.add_subcommand("attic", "removed users' mail")->require_subcommand(1);
    auto* attic_clean = attic->add_subcommand("clean", "delete what is older than admin_attic_days");

    CLI11_PARSE(app, argc, argv);

    bool config_given = app.count("-c") > 0;
    log::init("mailgrid", log::Sink::Stderr);
    auto config = load_config(common, admin_params(), config_given);
    init_logging("mailgrid", config, common.verbose > 0, common.verbose);
    if (common.show) {
        std::cout << config.show(false);
        return 0;
    }
    if (!common.check && app.get_subcommands().empty()) {
        std::fprintf(stderr, "%s", app.help().c_str());
        return EX_USAGE;
    }
    std::unique_ptr<Admin> admin;
    auto settled = settle_config("mailgrid", config, common.check, [&](Findings&, Findings&) {
        admin = std::make_unique<Admin>(config);
    });
    if (settled) return *settled;

    bool tty = ::isatty(2);
    try {
        if (!cli_password.empty()) refuse_cli_password();
        if (*add) {
            NewUser u;
            u.address = address;
            u.name = name;
            u.aliases = aliases;
            u.backend = backend_name;
            if (!quota_text.empty()) {
                auto q = parse_size(quota_text);
                if (!q) throw Failure(EX_USAGE, "bad quota \"" + quota_text + "\": bytes, or a number with K, M, G");
                u.quota = *q;
            }
            if (!dry_run && !no_password) u.password = read_password(password_stdin);
            Placement where;
            User made = admin->add_user(u, dry_run, &where);
            if (u.password) secure_wipe(*u.password);
            if (g_json) {
                std::printf("%s\n", JsonObject()
                                        .raw("user", user_json(made, *admin))
                                        .str("backend", where.backend->name)
                                        .str("why", where.why)
                                        .boolean("dry_run", dry_run)
                                        .text()
                                        .c_str());
            } else if (dry_run) {
                std::printf("%s would go to %s (%s)\n", made.address.c_str(), where.backend->name.c_str(),
                            where.why.c_str());
            } else {
                std::printf("%s added on %s\n", made.address.c_str(), where.backend->name.c_str());
            }
        } else if (*show) {
            User u = admin->require_user(address);
            if (g_json) {
                std::printf("%s\n", user_json(u, *admin).c_str());
            } else {
                std::printf("address:  %s\ndn:       %s\nbackend:  %s\nmaildrop: %s\n", u.address.c_str(), u.dn.c_str(),
                            u.backend ? u.backend->name.c_str() : "(none configured)",
                            u.maildrops.empty() ? "" : u.maildrops.front().c_str());
                auto al = u.aliases();
                if (!al.empty()) std::printf("aliases:  %s\n", [&] {
                    std::string s;
                    for (const auto& a : al) s += (s.empty() ? "" : ", ") + a;
                    return s;
                }().c_str());
                std::printf("quota:    %s\npassword: %s\n", u.quota ? size_text(u.quota).c_str() : "none",
                            u.has_password ? u.password_scheme.c_str() : "none");
                if (u.backend && u.backend->kind == Backend::Kind::Maildir) {
                    auto path = admin->maildir_path(*u.backend, u.address);
                    auto s = maildir_stats(path);
                    std::printf("maildir:  %s (%llu messages, %s)\n", path.c_str(),
                                static_cast<unsigned long long>(s.messages), size_text(s.bytes).c_str());
                } else if (u.backend) {
                    std::printf("mailbox:  %s on %s\n", admin->cyrus_mailbox(u.address).c_str(), u.backend->name.c_str());
                }
            }
        } else if (*list) {
            auto users = admin->list_users(backend_name);
            if (g_json) {
                std::vector<std::string> items;
                for (const auto& u : users) items.push_back(user_json(u, *admin));
                std::printf("%s\n", json_array(items).c_str());
            } else {
                for (const auto& u : users)
                    std::printf("%-40s %-24s %s\n", u.address.c_str(), u.backend ? u.backend->name.c_str() : "-",
                                u.quota ? size_text(u.quota).c_str() : "-");
            }
        } else if (*passwd) {
            std::string pw = read_password(password_stdin);
            admin->set_password(address, pw);
            secure_wipe(pw);
            if (!g_json) std::printf("password of %s changed\n", admin->check_address(address).c_str());
        } else if (*quota) {
            auto q = parse_size(quota_text);
            if (!q) throw Failure(EX_USAGE, "bad quota \"" + quota_text + "\"");
            admin->set_quota(address, *q);
            if (!g_json) std::printf("quota of %s: %s\n", admin->check_address(address).c_str(), *q ? size_text(*q).c_str() : "none");
        } else if (*alias) {
            admin->change_aliases(address, add_aliases, remove_aliases);
            User u = admin->require_user(address);
            if (g_json) std::printf("%s\n", JsonObject().str("address", u.address).strings("aliases", u.aliases()).text().c_str());
            else for (const auto& a : u.aliases()) std::printf("%s\n", a.c_str());
        } else if (*remove) {
            auto where = admin->remove_user(address, purge);
            if (!g_json) std::printf("%s removed; %s\n", admin->check_address(address).c_str(), where.c_str());
        } else if (*move) {
            if (abort_move_flag) {
                abort_move(*admin, address);
                if (!g_json) std::printf("move of %s aborted\n", admin->check_address(address).c_str());
            } else {
                auto r = move_user(*admin, address, backend_name, tty && !g_json);
                double mbps = r.seconds > 0 ? static_cast<double>(r.bytes) / 1e6 / r.seconds : 0;
                if (g_json)
                    std::printf("%s\n", JsonObject()
                                            .str("address", r.address).str("from", r.from).str("to", r.to)
                                            .num("messages", r.messages).num("bytes", r.bytes)
                                            .num("seconds", r.seconds).boolean("resumed", r.resumed)
                                            .text().c_str());
                else
                    std::printf("%s moved from %s to %s%s: %llu messages, %s in %.1f s (%.1f MB/s)\n",
                                r.address.c_str(), r.from.c_str(), r.to.c_str(),
                                r.resumed ? (" (resumed after " + r.resumed_at + ")").c_str() : "",
                                static_cast<unsigned long long>(r.messages), size_text(r.bytes).c_str(), r.seconds, mbps);
            }
        } else if (*moves) {
            auto p = pending_moves(*admin);
            if (g_json) std::printf("%s\n", JsonObject().strings("unfinished", p).text().c_str());
            else for (const auto& a : p) std::printf("%s\n", a.c_str());
        } else if (*blist) {
            auto use = admin->usage();
            std::vector<std::string> items;
            std::map<std::string, MailboxStats> mail;
            for (const auto& b : admin->backends()) {
                std::string why;
                use[b.name].up = admin->backend_up(b, &why);
                use[b.name].why_down = why;
            }
            if (!g_json) std::printf("%-24s %-8s %-5s %8s %10s %10s\n", "backend", "kind", "state", "users", "quota", "capacity");
            for (const auto& b : admin->backends()) {
                const auto& u = use[b.name];
                if (g_json) {
                    JsonObject o;
                    o.str("backend", b.name).str("kind", b.kind_name()).boolean("up", u.up);
                    if (!u.up) o.str("why", u.why_down);
                    o.num("users", u.users).num("quota_allocated", u.quota_allocated).num("capacity", u.capacity);
                    o.num("weight", b.weight);
                    items.push_back(o.text());
                } else {
                    std::printf("%-24s %-8s %-5s %8llu %10s %10s\n", b.name.c_str(), b.kind_name(), u.up ? "up" : "down",
                                static_cast<unsigned long long>(u.users), size_text(u.quota_allocated).c_str(),
                                u.capacity ? size_text(u.capacity).c_str() : "-");
                }
            }
            if (g_json) std::printf("%s\n", json_array(items).c_str());
        } else if (*drain) {
            return run_drain(*admin, common, backend_name, parallel, dry_run);
        } else if (*import) {
            auto r = import_users(*admin, import_path, dry_run, tty && !g_json);
            if (g_json) {
                JsonObject per;
                for (const auto& [b, n] : r.per_backend) per.num(b, static_cast<std::uint64_t>(n));
                std::printf("%s\n", JsonObject()
                                        .num("records", static_cast<std::uint64_t>(r.records))
                                        .num("added", static_cast<std::uint64_t>(r.added))
                                        .num("failed", static_cast<std::uint64_t>(r.failed))
                                        .num("skipped", static_cast<std::uint64_t>(r.skipped))
                                        .num("seconds", r.seconds)
                                        .raw("per_backend", per.text())
                                        .strings("errors", r.errors)
                                        .boolean("dry_run", dry_run)
                                        .text()
                                        .c_str());
            } else {
                for (const auto& e : r.errors) std::fprintf(stderr, "mailgrid: %s\n", e.c_str());
                std::printf("%s %zu of %zu users in %.1f s (%.0f users/s), %zu failed", dry_run ? "would import" : "imported",
                            r.added, r.records - r.skipped, r.seconds, r.seconds > 0 ? static_cast<double>(r.added) / r.seconds : 0.0,
                            r.failed);
                std::string per;
                for (const auto& [b, n] : r.per_backend) per += (per.empty() ? "" : ", ") + b + " " + std::to_string(n);
                std::printf("%s%s\n", per.empty() ? "" : "; ", per.c_str());
            }
            return r.failed ? EX_DATAERR : 0;
        } else if (*attic_clean) {
            std::size_t n = 0;
            for (const auto& b : admin->backends()) n += admin->clean_attic(b);
            if (!g_json) std::printf("%zu attic entries removed\n", n);
        }
    } catch (const Failure& f) {
        if (g_json) std::printf("%s\n", JsonObject().str("error", f.what()).num("exit", static_cast<std::uint64_t>(f.code())).text().c_str());
        std::fprintf(stderr, "mailgrid: %s\n", f.what());
        return f.code();
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "mailgrid: fatal: %s\n", e.what());
        return EX_CONFIG;
    }
    return 0;
}
