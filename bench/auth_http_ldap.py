#!/usr/bin/python3
"""auth_http_ldap - what a sysadmin would otherwise write for nginx's mail
auth_http: a small threaded HTTP server with python-ldap (Debian package
python3-ldap) that, for every login, searches the user, binds as the user
to check the password, and answers the host of the user's maildrop,
translated to an address and port by a backends file. For the benchmark
only (bench/locator_bench.py): nothing here is part of mailgrid.

    /usr/bin/python3 bench/auth_http_ldap.py --port 10081 --ldap ldap://127.0.0.1:389/ \\
        --base dc=example,dc=com --backends backends [--auth-wait 0]

The backends file has lines "name address imap=port [pop3=port]", as
webmail_locator's locator_backend_map.
"""

import argparse
import http.server
import urllib.parse

import ldap
import ldap.filter


def load_backends(path):
    backends = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            ports = dict(p.split("=", 1) for p in fields[2:])
            backends[fields[0].lower()] = (fields[1], ports)
    return backends


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ldap", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--backends", required=True)
    ap.add_argument("--auth-wait", type=int, default=3)
    a = ap.parse_args()
    backends = load_backends(a.backends)

    def check(user, password, protocol):
        """(Auth-Status, server, port)."""
        if not user or not password:  # an empty password would be an anonymous bind
            return "Invalid login or password", None, None
        conn = ldap.initialize(a.ldap)
        try:
            conn.protocol_version = 3
            conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
            conn.set_option(ldap.OPT_TIMEOUT, 5)
            found = conn.search_s(a.base, ldap.SCOPE_SUBTREE, ldap.filter.filter_format("(uid=%s)", [user]),
                                  ["maildrop"])
            if len(found) != 1:
                return "Invalid login or password", None, None
            dn, attrs = found[0]
            try:
                conn.simple_bind_s(dn, password)
            except ldap.INVALID_CREDENTIALS:
                return "Invalid login or password", None, None
            maildrop = attrs.get("maildrop", [b""])[0].decode()
            backend = backends.get(maildrop.rpartition("@")[2].lower())
            if not backend or protocol not in backend[1]:
                return "Temporary server problem, try again later", None, None
            return "OK", backend[0], backend[1][protocol]
        except ldap.LDAPError:
            return "Temporary server problem, try again later", None, None
        finally:
            conn.unbind_s()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            # http.server reads headers as Latin-1; nginx sends the bytes
            # of the login, %-escaped (UTF-8 for any sane client).
            def header(name):
                raw = self.headers.get(name, "").encode("latin-1")
                return urllib.parse.unquote_to_bytes(raw).decode("utf-8", "replace")
            user = header("Auth-User")
            password = header("Auth-Pass")
            protocol = self.headers.get("Auth-Protocol", "imap").lower()
            status, server, port = check(user, password, protocol)
            self.send_response(200)
            self.send_header("Auth-Status", status)
            if status == "OK":
                self.send_header("Auth-Server", server)
                self.send_header("Auth-Port", port)
            elif a.auth_wait > 0:
                self.send_header("Auth-Wait", str(a.auth_wait))
            self.end_headers()

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 128  # the default of 5 drops nginx's connections under load
        daemon_threads = True

    Server(("127.0.0.1", a.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
