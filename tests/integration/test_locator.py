#!/usr/bin/env python3
"""webmail_locator behind a real nginx mail proxy in front of two real Cyrus
backends: each user logs in through nginx with IMAP and POP3, sees their own
mail and never the other backend's; wrong passwords wait; a backend that is
down is a temporary error, not another backend."""

import imaplib
import os
import poplib
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BUILD, DATA, SUFFIX, Cyrus, LabTestCase, NginxMail, Redis, Roundcube, Slapd, WebDriver,
                     binary, free_port, http_get, need, wait_for, wait_port)

USERS = os.path.join(DATA, "users.ldif")

# dave's password has every character nginx escapes in Auth-Pass.
DAVE = f"""dn: uid=dave,ou=people,{SUFFIX}
objectClass: inetOrgPerson
objectClass: mailSuiteRecipient
uid: dave
cn: Dave
sn: Dave
mail: dave@example.com
mailacceptinggeneralid: dave@example.com
maildrop: dave@mail02.example.com
userPassword: p%ss w"d 100%

dn: uid=cyrus,ou=people,{SUFFIX}
objectClass: inetOrgPerson
uid: cyrus
cn: Cyrus admin
sn: admin
userPassword: cyrusadminpw

dn: uid=erin,ou=people,{SUFFIX}
objectClass: inetOrgPerson
objectClass: mailSuiteRecipient
uid: erin
cn: Erin
sn: Erin
mail: erin@example.com
mailacceptinggeneralid: erin@example.com
maildrop: erin@nowhere.invalid
userPassword: erinpw
"""


class Locator(LabTestCase):
    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        need("testsaslauthd")
        extra = lab.write("extra.ldif", DAVE)
        cls.slapd = Slapd(lab, [USERS, extra])
        conf = lab.write("saslauthd.conf", f"ldap_servers: {cls.slapd.uri}\nldap_search_base: {SUFFIX}\n"
                                           "ldap_filter: (|(uid=%u)(mail=%u))\nldap_timeout: 2\n")
        # The backends check passwords through sasl_ldap_auth too.
        run = lab.path("run")
        os.makedirs(run)
        cls.sasl = lab.spawn("sasl", [binary("sasl_ldap_auth"), "-a", "ldap", "-O", conf, "-m", run, "-d"])
        wait_for(lambda: os.path.exists(run + "/mux"), 10, what="the mux socket")
        cls.mail01 = Cyrus(lab, "mail01", saslauthd_path=run + "/mux", servername="mail01.example.com")
        cls.mail02 = Cyrus(lab, "mail02", saslauthd_path=run + "/mux", servername="mail02.example.com")
        backends = lab.write("backends", f"""# name  address  ports
mail01.example.com 127.0.0.1 imap={cls.mail01.imap_port} pop3={cls.mail01.pop3_port}
mail02.example.com 127.0.0.1 imap={cls.mail02.imap_port} pop3={cls.mail02.pop3_port}
""")
        source = lab.write("locate.cf", f"""server_host = {cls.slapd.uri}
version = 3
bind = no
timeout = 2
search_base = {SUFFIX}
query_filter = (|(uid=%s)(mail=%s))
result_attribute = maildrop
""")
        cls.port = free_port()
        cls.locator = lab.spawn("locator", [
            binary("webmail_locator"), "-f", "-c", "/dev/null", "--listen", f"127.0.0.1:{cls.port}",
            "-o", "locator_mech=ldap", "-o", f"locator_saslauthd_conf={conf}",
            "-o", f"locator_sources=maildrop={source}", "-o", f"locator_backend_map={backends}",
            "-o", "locator_auth_wait=1", "-o", "locator_shared_secret=s3cret", "-o", "locator_health_ttl=200ms",
            "-o", "locator_max_account_failures=5", "-o", "ldap_reconnect_delay=200ms",
            "-o", "cache_ttl=1s", "-o", "cache_negative_ttl=1s"])
        wait_port(cls.port)
        cls.nginx = NginxMail(lab, f"127.0.0.1:{cls.port}/auth", secret="s3cret")
        # Each user's mailbox on their own backend, with one message in it.
        for cyrus, user in [(cls.mail01, "alice"), (cls.mail02, "bob"), (cls.mail02, "dave")]:
            cyrus.create_mailbox(f"user.{user}", "cyrusadminpw")
            cyrus.deliver(user, f"From: x@test.example\r\nTo: {user}@example.com\r\n"
                                f"Subject: for {user} on {cyrus.servername}\r\n\r\nhello {user}\r\n")

    def imap_subjects(self, user, pw):
        m = imaplib.IMAP4("127.0.0.1", self.nginx.imap_port)
        try:
            m.login(user, pw)
            m.select("INBOX")
            _, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            m.logout()
        finally:
            try:
                m.shutdown()
            except OSError:
                pass
        return sorted(part[1].decode().strip() for part in data if isinstance(part, tuple))

    def test_imap_each_user_sees_their_own_backend(self):
        self.assertEqual(self.imap_subjects("alice", "alicepw"), ["Subject: for alice on mail01.example.com"])
        self.assertEqual(self.imap_subjects("bob", "bobpw"), ["Subject: for bob on mail02.example.com"])
        # the address works as a login for the locator too (the backend
        # then needs virtdomains to accept it: see webmail_locator(8))
        ok = self.auth(Auth_User="alice@example.com", Auth_Pass="alicepw")
        self.assertEqual((ok["auth-status"], ok["auth-port"]), ("OK", str(self.mail01.imap_port)))

    def test_pop3_each_user_sees_their_own_backend(self):
        for user, pw, backend in [("alice", "alicepw", "mail01"), ("bob", "bobpw", "mail02")]:
            p = poplib.POP3("127.0.0.1", self.nginx.pop3_port, timeout=30)
            p.user(user)
            p.pass_(pw)
            count, _ = p.stat()
            self.assertEqual(count, 1)
            text = b"\n".join(p.retr(1)[1]).decode()
            self.assertIn(f"for {user} on {backend}.example.com", text)
            p.quit()

    def test_password_escaped_by_nginx(self):
        self.assertEqual(self.imap_subjects("dave", 'p%ss w"d 100%'), ["Subject: for dave on mail02.example.com"])

    def test_wrong_password_waits_and_is_refused(self):
        m = imaplib.IMAP4("127.0.0.1", self.nginx.imap_port)
        t0 = time.monotonic()
        with self.assertRaises(imaplib.IMAP4.error) as e:
            m.login("carol", "wrong")
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertIn("Invalid login or password", str(e.exception))
        m.shutdown()

    def test_zz_backend_down_is_temporary_not_another_backend(self):
        self.mail02.stop()
        try:
            time.sleep(0.5)  # past locator_health_ttl
            m = imaplib.IMAP4("127.0.0.1", self.nginx.imap_port)
            with self.assertRaises(imaplib.IMAP4.error) as e:
                m.login("bob", "bobpw")
            self.assertIn("Temporary", str(e.exception))
            m.shutdown()
            # alice's backend is fine
            self.assertEqual(len(self.imap_subjects("alice", "alicepw")), 1)
        finally:
            self.mail02.start()
        wait_for(lambda: self.try_login("bob", "bobpw"), 10, what="bob's backend back")

    def try_login(self, user, pw):
        try:
            self.imap_subjects(user, pw)
            return True
        except imaplib.IMAP4.error:
            return False

    def auth(self, **headers):
        h = {"Auth-Method": "plain", "Auth-Protocol": "imap", "Auth-Login-Attempt": "1", "Client-IP": "192.0.2.9",
             "X-Auth-Key": "s3cret"}
        h.update({k.replace("_", "-"): v for k, v in headers.items()})
        return http_get(self.port, "/auth", h)[1]

    def test_auth_http_answers(self):
        ok = self.auth(Auth_User="alice", Auth_Pass="alicepw")
        self.assertEqual((ok["auth-status"], ok["auth-server"], ok["auth-port"]),
                         ("OK", "127.0.0.1", str(self.mail01.imap_port)))
        pop = self.auth(Auth_User="bob", Auth_Pass="bobpw", Auth_Protocol="pop3")
        self.assertEqual(pop["auth-port"], str(self.mail02.pop3_port))
        bad = self.auth(Auth_User="alice", Auth_Pass="nope")
        self.assertEqual((bad["auth-status"], bad["auth-wait"]), ("Invalid login or password", "1"))
        last = self.auth(Auth_User="alice", Auth_Pass="nope", Auth_Login_Attempt="10")
        self.assertNotIn("auth-wait", last)  # nginx closes instead of another round
        self.assertEqual(self.auth(Auth_User="alice", Auth_Pass="alicepw", X_Auth_Key="wrong")["auth-status"],
                         "Invalid login or password")
        self.assertEqual(self.auth(Auth_User="alice", Auth_Pass="alicepw", Auth_Method="cram-md5")["auth-status"],
                         "Unsupported authentication method")
        self.assertEqual(self.auth(Auth_User="", Auth_Pass="")["auth-status"], "Invalid login or password")
        # a user the directory places on a host that does not resolve
        self.assertIn("Temporary", self.auth(Auth_User="erin", Auth_Pass="erinpw")["auth-status"])

    def test_hostile_requests(self):
        def raw(data):
            with socket.create_connection(("127.0.0.1", self.port), 10) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                out = b""
                while True:
                    c = s.recv(65536)
                    if not c:
                        return out
                    out += c
        self.assertTrue(raw(b"GET /auth HTTP/1.0\r\nAuth-User: a\r\n b\r\n\r\n").startswith(b"HTTP/1.1 400"))
        self.assertTrue(raw(b"GET /auth HTTP/1.0\r\nAuth-User: " + b"x" * 20000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431"))
        self.assertTrue(raw(b"GET /auth HTTP/1.0\r\nAuth-User: a\rb\r\n\r\n").startswith(b"HTTP/1.1 400"))
        self.assertTrue(raw(b"POST /auth HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello").startswith(b"HTTP/1.1 413"))
        self.assertEqual(raw(b"GET /auth HTTP/1.0\r\n"), b"")  # never finished: no answer, no crash
        self.assertTrue(self.locator.alive())

    def test_locate_api(self):
        status, _, body = http_get(self.port, "/v1/locate/alice")
        self.assertEqual(status, 200)
        self.assertIn('"backend":"mail01.example.com"', body)
        self.assertIn('"source":"maildrop"', body)
        self.assertIn(f'"imap":{self.mail01.imap_port}', body)
        self.assertEqual(http_get(self.port, "/v1/locate/nobody%40example.com")[0], 404)
        r = subprocess.run([binary("webmail_locator"), "-c", "/dev/null", "-o", "locator_mech=ldif:" + USERS,
                            "-o", f"locator_sources=maildrop={self.lab.path('locate.cf')}",
                            "-o", f"locator_backend_map={self.lab.path('backends')}", "locate", "bob"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(f"mail02.example.com 127.0.0.1 imap={self.mail02.imap_port}"))

    def test_zz_directory_down(self):
        self.slapd.stop()
        try:
            time.sleep(1.2)  # cached locations expire (cache_ttl = 1s)
            self.assertIn("Temporary", self.auth(Auth_User="carol", Auth_Pass="carolpw")["auth-status"])
            self.assertEqual(http_get(self.port, "/v1/locate/carol")[0], 503)
            # From the shell too: a temporary failure every time, never a
            # crash (LDAP connects still in flight at exit once were).
            for _ in range(20):
                r = subprocess.run([binary("webmail_locator"), "-c", "/dev/null", "-o", "locator_mech=ldif:" + USERS,
                                    "-o", f"locator_sources=maildrop={self.lab.path('locate.cf')}",
                                    "-o", f"locator_backend_map={self.lab.path('backends')}", "locate", "carol"],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 75, r.stderr)
                self.assertIn("LDAP server unavailable", r.stderr)
        finally:
            self.slapd.start()
        time.sleep(0.5)
        wait_for(lambda: self.auth(Auth_User="carol", Auth_Pass="carolpw")["auth-status"] == "OK", 10,
                 what="recovery")


class Webmail(LabTestCase):
    """Roundcube, unchanged, with nginx as its only IMAP server: headless
    Chromium logs in as two users on two backends and each sees their own
    inbox. Screenshots go to <build>/test-artifacts/."""

    @classmethod
    def setUpLab(cls):
        need("chromedriver", "php")
        Locator.setUpLab.__func__(cls)
        cls.roundcube = Roundcube(cls.lab, f"127.0.0.1:{cls.nginx.imap_port}")
        cls.browser = WebDriver(cls.lab)
        cls.artifacts = os.path.join(BUILD, "test-artifacts")
        os.makedirs(cls.artifacts, exist_ok=True)

    def login_and_read_inbox(self, user, pw):
        b = self.browser
        b.delete_cookies()
        b.get(self.roundcube.url)
        b.type("#rcmloginuser", user)
        b.type("#rcmloginpwd", pw)
        b.click("#rcmloginsubmit")
        b.find("#messagelist tbody tr", timeout=30)
        wait_for(lambda: "for " + user in b.page_text(), 20, what=f"{user}'s message in the list")
        shot = b.screenshot(os.path.join(self.artifacts, f"webmail-{user}.png"))
        print(f"screenshot: {shot}", file=sys.stderr)
        return b.page_text()

    def test_two_users_two_backends(self):
        alice = self.login_and_read_inbox("alice", "alicepw")
        self.assertIn("for alice on mail01.example.com", alice)
        self.assertNotIn("for bob", alice)
        bob = self.login_and_read_inbox("bob", "bobpw")
        self.assertIn("for bob on mail02.example.com", bob)
        self.assertNotIn("for alice", bob)

    def test_wrong_password_in_the_browser(self):
        b = self.browser
        b.delete_cookies()
        b.get(self.roundcube.url)
        b.type("#rcmloginuser", "alice")
        b.type("#rcmloginpwd", "not-her-password")
        b.click("#rcmloginsubmit")
        wait_for(lambda: "Login failed" in b.page_text(), 30, what="Roundcube's login error")
        b.screenshot(os.path.join(self.artifacts, "webmail-wrong-password.png"))


class SharedThrottle(LabTestCase):
    """Failures counted by sasl_ldap_auth (IMAP/SMTP logins) and by
    webmail_locator (nginx logins) add up, through Redis."""

    @classmethod
    def setUpLab(cls):
        need("testsaslauthd")
        lab = cls.lab
        cls.redis = Redis(lab)
        redis = f"redis_server=redis://127.0.0.1:{cls.redis.port}/0"
        limits = ["-o", redis, "-o", "saslauth_max_account_failures=3", "-o", "locator_max_account_failures=3"]
        run = lab.path("run")
        os.makedirs(run)
        cls.mux = run + "/mux"
        cls.sasl = lab.spawn("sasl", [binary("sasl_ldap_auth"), "-a", "ldif:" + USERS, "-m", run, "-d", *limits])
        source = lab.write("locate.cf", f"server_host = ldif:{USERS}\nsearch_base = {SUFFIX}\n"
                                        "query_filter = (uid=%s)\nresult_attribute = maildrop\n")
        cls.port = free_port()
        cls.locator = lab.spawn("locator", [
            binary("webmail_locator"), "-f", "-c", "/dev/null", "--listen", f"127.0.0.1:{cls.port}",
            "-o", "locator_mech=ldif:" + USERS, "-o", f"locator_sources=maildrop={source}", *limits])
        wait_port(cls.port)
        wait_for(lambda: os.path.exists(cls.mux), 10, what="the mux socket")

    def nginx_login(self, pw):
        h = {"Auth-Method": "plain", "Auth-Protocol": "imap", "Auth-User": "bob", "Auth-Pass": pw}
        return http_get(self.port, "/auth", h)[1]["auth-status"]

    def test_failures_add_up_across_programs(self):
        for _ in range(2):
            r = subprocess.run(["testsaslauthd", "-u", "bob", "-p", "guess", "-f", self.mux], capture_output=True)
            self.assertIn(b": NO ", r.stdout)
        self.assertEqual(self.nginx_login("guess"), "Invalid login or password")
        # the count travels to Redis asynchronously
        wait_for(lambda: self.redis.cli("GET", "mailgrid:fail:a:bob") == "3", 10, what="three failures in Redis")
        # the right password, but three failures are on record
        self.assertEqual(self.nginx_login("bobpw"), "Invalid login or password")
        r = subprocess.run(["testsaslauthd", "-u", "bob", "-p", "bobpw", "-f", self.mux], capture_output=True)
        self.assertIn(b": NO ", r.stdout)
        self.assertIn("login refused without checking: user=bob", self.locator.stderr())
        self.assertEqual(self.redis.cli("GET", "mailgrid:fail:a:bob"), "3")


if __name__ == "__main__":
    unittest.main(verbosity=2)
