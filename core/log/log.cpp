#include "log/log.hpp"

#include <syslog.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "util/strings.hpp"

namespace mailgrid::log {

namespace {
std::string g_program = "mailgrid";
std::string g_ident;
Sink g_sink = Sink::Stderr;
int g_verbose = 0;
std::mutex g_mutex;

int facility_code(const std::string& f) {
    auto l = to_lower(f);
    if (l == "mail") return LOG_MAIL;
    if (l == "daemon") return LOG_DAEMON;
    if (l == "auth") return LOG_AUTH;
    if (l == "user") return LOG_USER;
    if (l.size() == 6 && l.rfind("local", 0) == 0 && l[5] >= '0' && l[5] <= '7')
        return LOG_LOCAL0 + (l[5] - '0') * (LOG_LOCAL1 - LOG_LOCAL0);
    return LOG_MAIL;
}

void emit(int prio, const char* prefix, const char* fmt, va_list ap) {
    char buf[4096];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    std::lock_guard lock(g_mutex);
    if (g_sink == Sink::Syslog) {
        ::syslog(prio, "%s%s", prefix, buf);
    } else {
        std::fprintf(stderr, "%s: %s%s\n", g_program.c_str(), prefix, buf);
        std::fflush(stderr);
    }
}
}  // namespace

void init(const std::string& program, Sink sink, const std::string& syslog_name, const std::string& facility) {
    g_program = program;
    g_sink = sink;
    if (sink == Sink::Syslog) {
        g_ident = syslog_name.empty() ? program : syslog_name + "/" + program;
        // Connected at the first message (no LOG_NDELAY): a process that
        // logs one line (maildir_deliver) then connects once, not twice
        // when /dev/log is missing. No program here chroots.
        ::openlog(g_ident.c_str(), LOG_PID, facility_code(facility));
    }
}

void set_verbose(int level) { g_verbose = level; }
int verbose() { return g_verbose; }
const std::string& program() { return g_program; }

#define MAILGRID_LOG_BODY(prio, prefix) \
    va_list ap;                        \
    va_start(ap, fmt);                 \
    emit(prio, prefix, fmt, ap);       \
    va_end(ap)

void info(const char* fmt, ...) { MAILGRID_LOG_BODY(LOG_INFO, ""); }
void warning(const char* fmt, ...) { MAILGRID_LOG_BODY(LOG_WARNING, "warning: "); }
void error(const char* fmt, ...) { MAILGRID_LOG_BODY(LOG_ERR, "error: "); }
void debug(const char* fmt, ...) {
    if (g_verbose <= 0) return;
    MAILGRID_LOG_BODY(LOG_DEBUG, "debug: ");
}
void fatal(int code, const char* fmt, ...) {
    MAILGRID_LOG_BODY(LOG_CRIT, "fatal: ");
    std::exit(code);
}

}  // namespace mailgrid::log
