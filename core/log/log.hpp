// log - Postfix-style logging to syslog (facility mail) or stderr.
//
//   Nov 23 20:17:42 mx1 mailgrid/ldap_tablemap[123]: warning: ...
//
// Severity words follow Postfix: plain info, "warning:", "error:",
// "fatal:", and "debug:" for -v. Passwords never reach these functions.
#pragma once

#include <string>

namespace mailgrid::log {

enum class Sink { Syslog, Stderr };

// program: "ldap_tablemap"; syslog ident becomes "<syslog_name>/<program>".
void init(const std::string& program, Sink sink, const std::string& syslog_name = "mailgrid",
          const std::string& facility = "mail");
void set_verbose(int level);
int verbose();
const std::string& program();

void info(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void warning(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void debug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Logs "fatal: ..." and exits with the given sysexits code.
[[noreturn]] void fatal(int exit_code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace mailgrid::log
