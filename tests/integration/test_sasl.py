#!/usr/bin/env python3
"""sasl_ldap_auth against real slapd, testsaslauthd, Cyrus imapd and
Postfix smtpd with Cyrus SASL: right answers for every password scheme,
temporary failures that are not wrong passwords, throttling, caching that
never confirms a password the directory no longer has."""

import imaplib
import os
import re
import smtplib
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ADMIN_DN, ADMIN_PW, DATA, SUFFIX, Cyrus, LabTestCase, Postfix, Slapd, binary, free_port, http_get,
                     need, wait_for)


USERS = os.path.join(DATA, "users.ldif")
SCHEMES = os.path.join(DATA, "schemes.ldif")
PW = "Sesame 0pen!"
SCHEME_USERS = ["ssha", "ssha256", "ssha512", "sha", "crypt-md5", "crypt-sha256", "crypt-sha512",
                "crypt-yescrypt", "argon2", "pbkdf2", "cleartext"]
ALLBYTES = bytes(range(1, 256))


def counted(*fields):
    out = b""
    for f in fields:
        if isinstance(f, str):
            f = f.encode()
        out += struct.pack(">H", len(f)) + f
    return out


class SaslLab(LabTestCase):
    """A slapd and one sasl_ldap_auth; subclasses say how it checks."""

    conf_lines = ""
    args = []
    ldif = (USERS, SCHEMES)

    @classmethod
    def setUpLab(cls):
        need("testsaslauthd")
        lab = cls.lab
        cls.slapd = Slapd(lab, list(cls.ldif))
        cls.conf = lab.write("saslauthd.conf", f"ldap_servers: {cls.slapd.uri}\nldap_search_base: {SUFFIX}\n"
                                               f"ldap_timeout: 2\n{cls.conf_lines}")
        cls.run_dir = lab.path("run")
        os.makedirs(cls.run_dir, exist_ok=True)
        cls.mux = os.path.join(cls.run_dir, "mux")
        cls.proc = lab.spawn("sasl", [binary("sasl_ldap_auth"), "-a", "ldap", "-O", cls.conf, "-m", cls.run_dir,
                                      "-d", "-o", "ldap_reconnect_delay=200ms", *cls.args])
        wait_for(lambda: os.path.exists(cls.mux), 10, what="the mux socket")

    def auth(self, user, password, service="imap", realm=None):
        """testsaslauthd's verdict: 'OK', 'NO', or 'FAIL' (no answer)."""
        args = ["testsaslauthd", "-u", user, "-p", password, "-s", service, "-f", self.mux]
        if realm:
            args += ["-r", realm]
        r = subprocess.run(args, capture_output=True, timeout=30)
        out = r.stdout.decode("latin-1")
        if ": OK " in out:
            return "OK"
        if ": NO " in out:
            return "NO"
        return "FAIL"

    def raw(self, data, timeout=10):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(self.mux)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while True:
                c = s.recv(4096)
                if not c:
                    break
                out += c
        finally:
            s.close()
        return out


class BindMode(SaslLab):
    """saslauthd's default: search the user's DN, bind as the user."""

    args = ["-n", "1"]  # one bind connection: every check reuses it

    def test_answers(self):
        self.assertEqual(self.auth("alice", "alicepw"), "OK")
        self.assertEqual(self.auth("alice", "alicepw", service="smtp"), "OK")
        self.assertEqual(self.auth("alice", "wrong"), "NO")
        self.assertEqual(self.auth("alice", "alicepw "), "NO")
        self.assertEqual(self.auth("nobody", "x"), "NO")
        self.assertEqual(self.auth("*", "alicepw"), "NO")
        self.assertEqual(self.auth("alice)(uid=*", "alicepw"), "NO")
        for uid in ["ssha", "sha", "crypt-md5", "crypt-sha256", "crypt-sha512", "crypt-yescrypt", "cleartext"]:
            self.assertEqual(self.auth(uid, PW), "OK", uid)
            self.assertEqual(self.auth(uid, PW + "x"), "NO", uid)
        self.assertEqual(self.auth("locked", PW), "NO")

    def test_empty_password_is_never_an_anonymous_bind(self):
        self.assertEqual(self.raw(counted("alice", "", "imap", "")), counted("NO authentication failed"))
        self.assertEqual(self.raw(counted("", "x", "imap", "")), counted("NO authentication failed"))

    def test_every_byte_in_a_password(self):
        r = subprocess.run(["testsaslauthd", "-u", "allbytes", "-p", ALLBYTES, "-f", self.mux], capture_output=True)
        self.assertIn(b": OK ", r.stdout)
        self.assertEqual(self.raw(counted("allbytes", b"\0" + ALLBYTES[:254], "imap", "")), counted("NO authentication failed"))

    def test_protocol_garbage(self):
        self.assertEqual(self.raw(counted("a" * 1024, "x", "imap", "")), counted("NO request too long"))
        self.assertEqual(self.raw(b"\xff\xff" + b"x" * 100), counted("NO request too long"))
        self.assertEqual(self.raw(b"\x00\x05ali"), b"")         # truncated, client gives up
        self.assertEqual(self.raw(b""), b"")
        # the 5-field request of newer libsasl2 (client address)
        self.assertEqual(self.raw(counted("alice", "alicepw", "imap", "", "192.0.2.1;1234")), counted("OK"))
        # a client that disconnects mid-request does not hurt the server
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.mux)
            s.sendall(counted("alice", "alicepw")[:7])
            s.close()
        self.assertEqual(self.auth("alice", "alicepw"), "OK")
        self.assertTrue(self.proc.alive())

    def test_no_answer_from_a_stale_bind(self):
        # Right and wrong passwords of two users, interleaved from many
        # clients over one bind connection: every verdict must be its own.
        results = []
        lock = threading.Lock()

        def worker(i):
            for j in range(10):
                user, pw, want = [("alice", "alicepw", "OK"), ("bob", "wrongpw", "NO"),
                                  ("bob", "bobpw", "OK"), ("alice", "bobpw", "NO")][(i + j) % 4]
                got = self.auth(user, pw)
                with lock:
                    results.append((user, pw, want, got))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wrong = [r for r in results if r[2] != r[3]]
        self.assertEqual(wrong, [])
        self.assertEqual(len(results), 80)

    def test_password_change_takes_effect(self):
        self.assertEqual(self.auth("carol", "carolpw"), "OK")
        self.slapd.modify(f"dn: uid=carol,ou=people,{SUFFIX}\nchangetype: modify\nreplace: userPassword\n"
                          "userPassword: newcarolpw\n")
        self.assertEqual(self.auth("carol", "carolpw"), "NO")
        self.assertEqual(self.auth("carol", "newcarolpw"), "OK")

    def test_zz_directory_down_is_not_a_wrong_password(self):
        self.slapd.stop()
        try:
            t0 = time.monotonic()
            self.assertEqual(self.auth("alice", "alicepw"), "FAIL")
            self.assertEqual(self.auth("alice", "wrong"), "FAIL")
            self.assertLess(time.monotonic() - t0, 8)
        finally:
            self.slapd.start()
        wait_for(lambda: self.auth("alice", "alicepw") == "OK", 10, what="recovery")
        self.slapd.pause()
        try:
            t0 = time.monotonic()
            self.assertEqual(self.auth("bob", "bobpw"), "FAIL")
            self.assertLess(time.monotonic() - t0, 6, "ldap_timeout: 2 was not honoured")
        finally:
            self.slapd.resume()
        wait_for(lambda: self.auth("bob", "bobpw") == "OK", 15, what="recovery after SIGCONT")
        self.assertIn("cannot check password", self.proc.stderr())


class Throttling(SaslLab):
    args = ["-o", "saslauth_max_account_failures=3", "-o", "saslauth_failure_window=60s"]

    def test_refused_without_asking_the_directory(self):
        for _ in range(3):
            self.assertEqual(self.auth("bob", "guess"), "NO")
        self.assertEqual(self.auth("bob", "bobpw"), "NO")  # right password, but throttled
        self.assertEqual(self.auth("alice", "alicepw"), "OK")  # others are not affected
        self.slapd.stop()
        try:
            # No directory: a throttled login still gets its NO at once.
            self.assertEqual(self.auth("bob", "bobpw"), "NO")
        finally:
            self.slapd.start()
        self.assertIn("login refused without checking: user=bob", self.proc.stderr())


class CustomMode(SaslLab):
    """ldap_auth_method: custom: read userPassword with the service
    account and compare; every scheme."""

    conf_lines = f"ldap_auth_method: custom\nldap_bind_dn: {ADMIN_DN}\nldap_password: {ADMIN_PW}\n"

    def test_every_scheme(self):
        for uid in SCHEME_USERS:
            self.assertEqual(self.auth(uid, PW), "OK", uid)
            self.assertEqual(self.auth(uid, PW[:-1]), "NO", uid)
        self.assertEqual(self.auth("locked", PW), "NO")
        self.assertEqual(self.auth("nobody", PW), "NO")


class ReplicaCompareMode(SaslLab):
    """Compare mode answered from the in-memory replica (ldap_replica_base):
    no LDAP round trip per login, yet a changed password or a stopped
    directory must count at once, as with every login asking slapd."""

    conf_lines = f"ldap_auth_method: custom\nldap_bind_dn: {ADMIN_DN}\nldap_password: {ADMIN_PW}\n"
    metrics = free_port()
    args = ["-o", f"ldap_replica_base={SUFFIX}", "-o", "ldap_replica_retry=200ms",
            "-o", f"saslauth_metrics=127.0.0.1:{metrics}"]

    def replica_answers(self):
        body = http_get(self.metrics, "/metrics")[2]
        m = re.search(r'mailgrid_ldap_replica_searches_total\{[^}]*answered="replica"\} (\d+)', body)
        return int(m.group(1)) if m else 0

    def setUp(self):
        wait_for(lambda: "in service" in self.proc.stderr(), 15, what="the replica")

    def test_1_every_scheme_from_the_copy(self):
        before = self.replica_answers()
        for uid in SCHEME_USERS:
            self.assertEqual(self.auth(uid, PW), "OK", uid)
            self.assertEqual(self.auth(uid, PW[:-1]), "NO", uid)
        self.assertEqual(self.auth("locked", PW), "NO")
        self.assertEqual(self.auth("nobody", PW), "NO")
        self.assertGreaterEqual(self.replica_answers() - before, 2 * len(SCHEME_USERS) + 2)

    def test_2_password_change_counts_within_a_second(self):
        self.assertEqual(self.auth("carol", "carolpw"), "OK")
        self.slapd.modify(f"dn: uid=carol,ou=people,{SUFFIX}\nchangetype: modify\nreplace: userPassword\n"
                          "userPassword: newcarolpw\n")
        t0 = time.monotonic()
        wait_for(lambda: self.auth("carol", "carolpw") == "NO", 5, what="the old password to fail")
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(self.auth("carol", "newcarolpw"), "OK")

    def test_zz_directory_down_is_not_a_wrong_password(self):
        self.slapd.stop()
        try:
            wait_for(lambda: self.auth("alice", "alicepw") == "FAIL", 5, what="the copy to leave service")
            self.assertEqual(self.auth("alice", "wrong"), "FAIL")
        finally:
            self.slapd.start()
        wait_for(lambda: self.auth("alice", "alicepw") == "OK", 15, what="recovery")


class FastBind(SaslLab):
    conf_lines = f"ldap_auth_method: fastbind\nldap_filter: uid=%u,ou=people,{SUFFIX}\n"

    def test_fastbind(self):
        self.assertEqual(self.auth("alice", "alicepw"), "OK")
        self.assertEqual(self.auth("alice", "bobpw"), "NO")
        self.assertEqual(self.auth("bob,ou=people", "bobpw"), "NO")  # escaped, not a DN of its own


class Realms(SaslLab):
    """user@domain logins: libsasl2 splits them into login and realm."""

    conf_lines = "ldap_filter: (mail=%u@%r)\n"

    def test_realm_in_filter(self):
        self.assertEqual(self.auth("alice", "alicepw", realm="example.com"), "OK")
        self.assertEqual(self.auth("alice", "alicepw", realm="other.example"), "NO")
        self.assertEqual(self.auth("alice", "alicepw"), "NO")


GROUPS = f"""dn: ou=groups,{SUFFIX}
objectClass: organizationalUnit
ou: groups

dn: cn=mailusers,ou=groups,{SUFFIX}
objectClass: groupOfUniqueNames
cn: mailusers
uniqueMember: uid=alice,ou=people,{SUFFIX}
uniqueMember: uid=carol,ou=people,{SUFFIX}
"""


class GroupByAttribute(SaslLab):
    """ldap_group_dn: only members of cn=mailusers may log in."""

    conf_lines = f"ldap_group_dn: cn=mailusers,ou=groups,{SUFFIX}\nldap_group_attr: uniqueMember\n"

    @classmethod
    def setUpLab(cls):
        cls.ldif = (USERS, cls.lab.write("groups.ldif", GROUPS))
        super().setUpLab()

    def test_members_only(self):
        self.assertEqual(self.auth("alice", "alicepw"), "OK")
        self.assertEqual(self.auth("bob", "bobpw"), "NO")
        self.assertIn("not a member of the required group", self.proc.stderr())


class GroupByFilter(GroupByAttribute):
    conf_lines = (f"ldap_group_match_method: filter\nldap_group_search_base: ou=groups,{SUFFIX}\n"
                  "ldap_group_filter: (&(cn=mailusers)(uniqueMember=%D))\n")


class EmbeddedAndCache(LabTestCase):
    """-a ldif:FILE, and -c: a cached success never outlives its TTL and a
    failure is never cached."""

    @classmethod
    def setUpLab(cls):
        need("testsaslauthd")
        lab = cls.lab
        text = open(USERS).read() + "\n" + open(SCHEMES).read() + (
            f"\ndn: uid=ppolicy,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: ppolicy\ncn: p\nsn: p\n"
            f"userPassword: {PW}\npwdAccountLockedTime: 20260101000000Z\n")
        cls.ldif = lab.write("users.ldif", text)
        cls.run_dir = lab.path("run")
        os.makedirs(cls.run_dir)
        cls.mux = os.path.join(cls.run_dir, "mux")
        cls.proc = lab.spawn("sasl", [binary("sasl_ldap_auth"), "-a", f"ldif:{cls.ldif}", "-m", cls.run_dir, "-d",
                                      "-c", "-t", "2", "-o", "ldif_reload_interval=200ms"])
        wait_for(lambda: os.path.exists(cls.mux), 10, what="the mux socket")

    auth = SaslLab.auth
    raw = SaslLab.raw

    def test_a_cached_login_however_the_request_arrives(self):
        """A cached login is answered as soon as its request is there;
        a request in pieces or with a client address gets the same answer."""
        req = counted("alice", "alicepw", "imap", "")
        self.assertEqual(self.raw(req), counted("OK"))  # checked, and cached
        self.assertEqual(self.raw(req), counted("OK"))  # answered from the cache
        self.assertEqual(self.raw(counted("alice", "alicepw", "imap", "", "192.0.2.7;143")), counted("OK"))
        self.assertEqual(self.raw(counted("alice", "wrong", "imap", "")), counted("NO authentication failed"))
        self.assertEqual(self.raw(counted("alice", "alicepw", "pop", "")), counted("OK"))  # not cached for pop yet
        for cut in (1, 9, len(req) - 1):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(self.mux)
                s.sendall(req[:cut])
                time.sleep(0.2)  # the server has read the first piece by now
                s.sendall(req[cut:])
                self.assertEqual(s.recv(100), counted("OK"), cut)

    def test_zz_a_cached_login_is_still_throttled(self):
        user = SCHEME_USERS[-1]
        self.assertEqual(self.auth(user, PW), "OK")
        self.assertEqual(self.auth(user, PW), "OK")  # cached
        for _ in range(10):
            self.assertEqual(self.auth(user, "wrong"), "NO")
        self.assertEqual(self.auth(user, PW), "NO")  # refused without checking, cache or not
        self.assertIn("login refused without checking", self.proc.stderr())

    def test_every_scheme_from_the_ldif_file(self):
        for uid in SCHEME_USERS:
            self.assertEqual(self.auth(uid, PW), "OK", uid)
            self.assertEqual(self.auth(uid, "nope"), "NO", uid)
        self.assertEqual(self.auth("locked", PW), "NO")
        self.assertEqual(self.auth("ppolicy", PW), "NO")

    def test_cache_expires_and_failures_are_not_cached(self):
        self.assertEqual(self.auth("bob", "bobpw"), "OK")
        self.assertEqual(self.auth("bob", "bobpw"), "OK")  # now cached
        with open(self.ldif) as f:
            text = f.read()
        text = text.replace(
            "uid: bob\ncn: Bob\nsn: Bob\nmail: bob@example.com\n",
            "uid: bob\ncn: Bob\nsn: Bob\nmail: bob@example.com\ndescription: changed\n")
        text = text.replace("k+rUhnvDKN9ttRLhD2PFCRMv9tJtZ3NhbHQwMQ==", "changed-away")
        with open(self.ldif, "w") as f:
            f.write(text)
        time.sleep(0.6)  # reloaded
        self.assertEqual(self.auth("bob", "bobpw"), "OK")  # still cached: within -t 2
        time.sleep(2.2)
        self.assertEqual(self.auth("bob", "bobpw"), "NO")  # the TTL is over
        self.assertEqual(self.auth("bob", "bobpw"), "NO")  # and a failure is not cached as success


class RealPeers(LabTestCase):
    """Cyrus imapd and Postfix smtpd, unmodified, checking passwords
    through sasl_ldap_auth."""

    @classmethod
    def setUpLab(cls):
        need("testsaslauthd")
        lab = cls.lab
        cls.slapd = Slapd(lab, [USERS])
        cls.conf = lab.write("saslauthd.conf", f"ldap_servers: {cls.slapd.uri}\nldap_search_base: {SUFFIX}\n"
                                               "ldap_timeout: 2\n")
        cls.run_dir = lab.path("run")
        os.makedirs(cls.run_dir)
        cls.mux = os.path.join(cls.run_dir, "mux")
        cls.proc = lab.spawn("sasl", [binary("sasl_ldap_auth"), "-a", "ldap", "-O", cls.conf, "-m", cls.run_dir,
                                      "-d", "-o", "ldap_reconnect_delay=200ms"])
        wait_for(lambda: os.path.exists(cls.mux), 10, what="the mux socket")
        cls.cyrus = Cyrus(lab, saslauthd_path=cls.mux)
        cls.postfix = Postfix(lab, start=False, main_cf={
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "cyrus",
            "smtpd_sasl_path": "smtpd",
            "smtpd_sasl_security_options": "noanonymous",
        })
        # Debian's Postfix reads $config_directory/sasl/smtpd.conf
        lab.write(os.path.relpath(os.path.join(cls.postfix.etc, "sasl", "smtpd.conf"), lab.dir),
                  f"pwcheck_method: saslauthd\nsaslauthd_path: {cls.mux}\nmech_list: PLAIN LOGIN\n")
        cls.postfix.start()

    def imap_login(self, user, pw):
        m = imaplib.IMAP4("127.0.0.1", self.cyrus.imap_port)
        try:
            m.login(user, pw)
            m.logout()
            return "OK"
        except imaplib.IMAP4.error as e:
            return "NO: " + str(e)
        except (OSError, EOFError) as e:
            return "FAIL: " + str(e)

    def smtp_auth(self, user, pw):
        with smtplib.SMTP("127.0.0.1", self.postfix.smtpd_port, timeout=30) as s:
            s.ehlo("client.test.example")
            try:
                code, _ = s.docmd("AUTH", "PLAIN " + __import__("base64").b64encode(
                    f"\0{user}\0{pw}".encode()).decode())
            except smtplib.SMTPServerDisconnected:
                return 0
            return code

    def test_1_cyrus_imap_login(self):
        self.assertEqual(self.imap_login("alice", "alicepw"), "OK")
        self.assertTrue(self.imap_login("alice", "wrongpw").startswith("NO"))
        self.assertTrue(self.imap_login("nobody", "x").startswith("NO"))

    def test_2_postfix_smtp_auth(self):
        self.assertEqual(self.smtp_auth("alice", "alicepw"), 235)
        self.assertEqual(self.smtp_auth("alice", "wrongpw"), 535)

    def test_3_directory_down_is_454_not_535(self):
        self.slapd.stop()
        try:
            self.assertEqual(self.smtp_auth("bob", "bobpw"), 454)
            self.assertFalse(self.imap_login("bob", "bobpw") == "OK")
        finally:
            self.slapd.start()
        wait_for(lambda: self.smtp_auth("bob", "bobpw") == 235, 10, what="recovery")


class Check(LabTestCase):
    def test_check(self):
        good = self.lab.write("good.conf", "ldap_servers: ldap://127.0.0.1:1/\nldap_search_base: dc=x\n")
        r = subprocess.run([binary("sasl_ldap_auth"), "--check", "-a", "ldap", "-O", good], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        bad = self.lab.write("bad.conf", "ldap_servers: ldap://127.0.0.1:1/\nldap_frobnicate: yes\n")
        r = subprocess.run([binary("sasl_ldap_auth"), "--check", "-a", "ldap", "-O", bad], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 78)
        self.assertIn(f"{bad}, line 2: unknown key ldap_frobnicate", r.stderr)
        r = subprocess.run([binary("sasl_ldap_auth"), "-v"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("sasl_ldap_auth", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
