#!/usr/bin/env python3
"""mailgrid_policy against real peers: two Postfix frontends asking it
through check_policy_service and sharing one Redis, a third Postfix using it
as a milter, miltertest (the MTA side of libmilter's protocol, as Sendmail
speaks it), slapd with the users, and sasl_ldap_auth for SMTP AUTH.

What a sysadmin checks: a full mailbox is refused at RCPT, an unknown user
gets 550 5.1.1, the 101st message in a minute of a user limited to 100 is
deferred whichever frontend it goes through, normal users are untouched,
a login cannot send as someone else, outages of the directory and of Redis
do what the configuration says, garbage on either socket is logged and
survived, and the decisions show up in /metrics."""

import os
import random
import smtplib
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SUFFIX, LabTestCase, Redis, SmtpSink, binary, free_port, http_get, mailgrid_cf, need,  # noqa: E402
                     wait_for)
from mailgrid_policy_peers import (SaslPostfix, policy_ask, policy_exchange, policy_request, policy_slapd,  # noqa: E402
                                   ssha, start_policy)

USERS = {  # login: (quota bytes or None, extra LDIF lines)
    "alice": (10_000_000, ["mailacceptinggeneralid: al@example.com"]),
    "bob": (10_000_000, []),
    "carol": (10_000_000, ["objectClass: mailSuiteSender", "mailSendLimits: messages:100/minute"]),
    "dora": (1_000_000, []),   # her mailbox is full
    "nina": (100_000, []),     # 10 KB left
    "erin": (None, ["objectClass: mailSuiteSender", "mailSendLimits: recipients:3/minute"]),
}
USAGE = {"alice": 1000, "bob": 1000, "carol": 1000, "dora": 1_000_000, "nina": 90_000}


def directory_ldif():
    out = [f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=domains,{SUFFIX}
objectClass: organizationalUnit
ou: domains

dn: dc=example.com,ou=domains,{SUFFIX}
objectClass: domain
objectClass: domainRelatedObject
dc: example.com
associatedDomain: example.com

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: cn=staff,{SUFFIX}
objectClass: organizationalRole
objectClass: mailSuiteRecipient
cn: staff
mailacceptinggeneralid: staff@example.com
maildrop: alice@example.com
maildrop: bob@example.com
"""]
    for login, (quota, extra) in USERS.items():
        lines = [f"dn: uid={login},ou=people,{SUFFIX}", "objectClass: inetOrgPerson", "objectClass: mailSuiteRecipient",
                 f"uid: {login}", f"cn: {login}", f"sn: {login}", f"mail: {login}@example.com",
                 f"mailacceptinggeneralid: {login}@example.com", f"userPassword: {ssha(login + 'pw')}"]
        if quota:
            lines.append(f"mailQuotaBytes: {quota}")
        # objectClass lines first, then the attributes they allow.
        lines[3:3] = [x for x in extra if x.startswith("objectClass")]
        lines += [x for x in extra if not x.startswith("objectClass")]
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def code_of(exc_or_reply):
    if isinstance(exc_or_reply, smtplib.SMTPRecipientsRefused):
        return list(exc_or_reply.recipients.values())[0]
    return exc_or_reply


class Frontends(LabTestCase):
    """slapd, Redis, sasl_ldap_auth, two mailgrid_policy servers (one also a
    milter), Postfix A and B asking the policy servers, Postfix C using the
    milter, and a sink that receives what they relay."""

    @classmethod
    def setUpLab(cls):
        need("redis-server", "testsaslauthd")
        lab = cls.lab
        ldif = lab.write("users.ldif", directory_ldif())
        cls.slapd = policy_slapd(lab, [ldif])
        cls.redis = Redis(lab)
        for login, used in USAGE.items():
            cls.redis.cli("SET", f"mailgrid:usage:{login}@example.com", str(used))
        run_dir = lab.path("sasl")
        os.makedirs(run_dir)
        conf = lab.write("saslauthd.conf", f"ldap_servers: {cls.slapd.uri}\nldap_search_base: {SUFFIX}\n"
                                           "ldap_filter: (uid=%u)\nldap_timeout: 2\n")
        lab.spawn("sasl", [binary("sasl_ldap_auth"), "-a", "ldap", "-O", conf, "-m", run_dir, "-d", "-c"])
        mux = os.path.join(run_dir, "mux")
        wait_for(lambda: os.path.exists(mux), 10, what="the saslauthd socket")
        cls.sink = SmtpSink(lab)

        cls.metrics_port = free_port()
        base = {
            "policy_server_host": cls.slapd.uri,
            "policy_search_base": SUFFIX,
            "policy_bind": "no",
            "policy_timeout": "2",
            "redis_server": f"127.0.0.1:{cls.redis.port}",
            "policy_message_limits": "1000/minute",
            "policy_recipient_limits": "",
            "ldap_reconnect_delay": "200ms",
            "cache_ttl": "2s",
            "cache_negative_ttl": "1s",
            "syslog_name": "mailgrid-test",
        }
        cf_a = mailgrid_cf(lab, dict(base, policy_metrics=f"127.0.0.1:{cls.metrics_port}"), "mailgrid-a.cf")
        cf_b = mailgrid_cf(lab, base, "mailgrid-b.cf")
        cls.port_a, cls.port_b, cls.milter_port = free_port(), free_port(), free_port()
        cls.policy_a = start_policy(lab, cf_a, "policy-a", cls.port_a, cls.milter_port)
        cls.policy_b = start_policy(lab, cf_b, "policy-b", cls.port_b)
        wait_for(lambda: "200" in str(http_get(cls.metrics_port, "/healthz")[0]), 10, what="metrics")

        cls.pf_a = SaslPostfix(lab, "postfix-a", mux, cls.sink.port, policy_port=cls.port_a)
        cls.pf_b = SaslPostfix(lab, "postfix-b", mux, cls.sink.port, policy_port=cls.port_b)
        cls.pf_c = SaslPostfix(lab, "postfix-c", mux, cls.sink.port, milter_port=cls.milter_port)

    # -------------------------------------------------------------- helpers

    def rcpt(self, postfix, rcpt, login=None, sender="someone@example.net", size=None):
        """(code, text) Postfix answers to RCPT TO."""
        with postfix.session(login, f"{login}pw" if login else None) as s:
            code, text = s.mail(sender, [f"SIZE={size}"] if size else [])
            self.assertEqual(code, 250, text)
            code, text = s.rcpt(rcpt)
            return code, text.decode()

    def send_many(self, postfix, login, count, rcpt="friend@elsewhere.example"):
        """Sends count messages in one authenticated session; the codes of
        their RCPT TO."""
        codes = []
        with postfix.session(login, f"{login}pw") as s:
            for i in range(count):
                code, _ = s.mail(f"{login}@example.com")
                self.assertEqual(code, 250)
                code, text = s.rcpt(rcpt)
                codes.append((code, text.decode()))
                if code == 250:
                    code, text = s.data(f"Subject: {i}\r\n\r\nmessage {i}\r\n")
                    self.assertEqual(code, 250, text)
                else:
                    s.rset()
        return codes

    def policy_log(self, proc):
        return proc.stderr()

    # ---------------------------------------------------------------- tests

    def test_1_full_mailbox_refused_at_rcpt(self):
        for pf in (self.pf_a, self.pf_c):  # the policy server and the milter
            code, text = self.rcpt(pf, "dora@example.com")
            self.assertEqual(code, 452, text)
            self.assertIn("4.2.2 <dora@example.com>: Recipient address rejected: Mailbox full", text)
        # Room for a small message, not for one announced with SIZE= 20000.
        self.assertEqual(self.rcpt(self.pf_a, "nina@example.com", size=5000)[0], 250)
        code, text = self.rcpt(self.pf_a, "nina@example.com", size=20000)
        self.assertEqual(code, 452, text)
        self.assertIn("no room for a message of 20000 bytes", text)
        code, text = self.rcpt(self.pf_c, "nina@example.com", size=20000)
        self.assertEqual(code, 452, text)

    def test_1_swaks_sees_what_a_sender_would(self):
        """The same checks from swaks, the SMTP client sysadmins reach for."""
        need("swaks")

        def swaks(pf, *args):
            r = subprocess.run(["swaks", "--server", f"{pf.host.address}:{pf.smtpd_port}", "--from",
                                "someone@example.net", "--timeout", "30", *args],
                               capture_output=True, text=True, timeout=60)
            return r.returncode, r.stdout
        for pf in (self.pf_a, self.pf_c):
            rc, out = swaks(pf, "--to", "dora@example.com", "--quit-after", "RCPT")
            self.assertNotEqual(rc, 0)
            self.assertIn("<** 452 4.2.2 <dora@example.com>: Recipient address rejected: Mailbox full", out)
            rc, out = swaks(pf, "--to", "al@example.com")
            self.assertEqual(rc, 0, out)
            self.assertIn("<-  250 2.0.0 Ok: queued", out)

    def test_2_milter_checks_the_real_size_at_end_of_data(self):
        # No SIZE= at MAIL FROM: only the end of the message tells.
        with self.pf_c.session() as s:
            self.assertEqual(s.mail("someone@example.net")[0], 250)
            self.assertEqual(s.rcpt("nina@example.com")[0], 250)
            code, text = s.data("Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 300)
            self.assertEqual(code, 452, text)
            self.assertIn(b"4.2.2", text)
        with self.pf_c.session() as s:
            s.mail("someone@example.net")
            s.rcpt("nina@example.com")
            self.assertEqual(s.data("Subject: small\r\n\r\nhello\r\n")[0], 250)

    def test_3_unknown_users_550_known_ones_and_aliases_pass(self):
        for pf in (self.pf_a, self.pf_b, self.pf_c):
            code, text = self.rcpt(pf, "nobody@example.com")
            self.assertEqual(code, 550, text)
            self.assertIn("5.1.1 <nobody@example.com>: Recipient address rejected: User unknown", text)
            for ok in ("bob@example.com", "staff@example.com", "al@example.com", "bob+lists@example.com"):
                self.assertEqual(self.rcpt(pf, ok)[0], 250, ok)
        # (Waiting for this message, not for any: another test's may still
        # be on its way to the sink.)
        self.pf_a.send("someone@example.net", "bob@example.com")
        wait_for(lambda: "bob@example.com" in self.sink.recipients(), 30, what="bob's message at the sink")

    def test_4_the_101st_message_in_the_minute_is_deferred_on_both_frontends(self):
        # Fixed windows start on the minute: begin early in one.
        if time.time() % 60 > 30:
            time.sleep(60 - time.time() % 60 + 0.5)
        codes = self.send_many(self.pf_a, "carol", 50) + self.send_many(self.pf_b, "carol", 50)
        self.assertEqual([c for c, _ in codes], [250] * 100)
        for pf in (self.pf_a, self.pf_b):
            code, text = self.send_many(pf, "carol", 1)[0]
            self.assertEqual(code, 450, text)
            self.assertTrue(text.startswith("4.7.1 "), text)
            self.assertIn("Sending limit exceeded: 100 messages per minute for user carol; try again later", text)
        # A normal user on the same frontends is untouched.
        self.assertEqual([c for c, _ in self.send_many(self.pf_a, "bob", 5)], [250] * 5)
        self.assertEqual([c for c, _ in self.send_many(self.pf_b, "bob", 5)], [250] * 5)
        # Logged once per window by each server, however often it is hit.
        self.send_many(self.pf_a, "carol", 2)
        log = self.policy_a.stderr()
        self.assertEqual(log.count("sending limit: user carol reached 100 messages per minute"), 1, log[-3000:])
        # The counters are in the shared Redis.
        keys = self.redis.cli("KEYS", "mailgrid:limit:m:minute:*:carol").split()
        self.assertEqual(len(keys), 1)
        self.assertEqual(self.redis.cli("GET", keys[0]), "100")
        self.assertGreater(int(self.redis.cli("PTTL", keys[0])), 0)

    def test_5_per_user_recipient_limit_from_the_directory(self):
        if time.time() % 60 > 50:
            time.sleep(60 - time.time() % 60 + 0.5)
        with self.pf_a.session("erin", "erinpw") as s:
            s.mail("erin@example.com")
            codes = [s.rcpt(f"r{i}@elsewhere.example")[0] for i in range(4)]
        self.assertEqual(codes, [250, 250, 250, 450])

    def test_6_sender_login_mismatch(self):
        code, text = self.rcpt(self.pf_a, "friend@elsewhere.example", login="alice", sender="bob@example.com")
        self.assertEqual(code, 553, text)
        self.assertIn("Sender address <bob@example.com> is not owned by user alice", text)
        # The milter sees the sender at MAIL FROM and refuses it there.
        with self.pf_c.session("alice", "alicepw") as s:
            code, text = s.mail("bob@example.com")
        self.assertEqual(code, 553, text)
        self.assertEqual(text, b"5.7.1 <bob@example.com>: Sender address rejected: not owned by user alice")
        for own in ("alice@example.com", "al@example.com", ""):
            self.assertEqual(self.rcpt(self.pf_a, "friend@elsewhere.example", login="alice", sender=own)[0], 250)

    def test_7_redis_down_limits_and_quota_fail_open(self):
        self.redis.stop()
        try:
            # dora's usage cannot be read: her mail is accepted (the store's
            # quota decides); limits are counted in process meanwhile.
            self.assertEqual(self.rcpt(self.pf_a, "dora@example.com")[0], 250)
            self.assertEqual([c for c, _ in self.send_many(self.pf_a, "bob", 3)], [250] * 3)
            self.assertIn("Redis", self.policy_a.stderr())
        finally:
            self.redis.start()
        for login, used in USAGE.items():
            self.redis.cli("SET", f"mailgrid:usage:{login}@example.com", str(used))
        wait_for(lambda: self.rcpt(self.pf_a, "dora@example.com")[0] == 452, 15, what="Redis back in use")

    def test_8_directory_down_defers_unknown_user_checks(self):
        self.slapd.stop()
        try:
            for pf in (self.pf_a, self.pf_c):
                code, text = self.rcpt(pf, "never-seen@example.com")
                self.assertTrue(400 <= code < 500, (code, text))
                self.assertIn("4.3.0", text)
                self.assertIn("Temporary lookup failure", text)
        finally:
            self.slapd.start()
        wait_for(lambda: self.rcpt(self.pf_a, "never-seen@example.com")[0] == 550, 20, what="slapd back in use")

    def test_9_malformed_requests_and_milter_garbage(self):
        port = self.port_a
        # No empty line: no answer, and the server says so.
        self.assertEqual(policy_exchange(port, "request=smtpd_access_policy\nrecipient=bob@example.com\n"), "")
        wait_for(lambda: "in the middle of a request" in self.policy_a.stderr(), 5, what="the log line")
        # 100 KB in one attribute: closed without an answer, the reason logged.
        self.assertEqual(policy_exchange(port, policy_request(sender="x" * 100_000)), "")
        wait_for(lambda: "is longer than" in self.policy_a.stderr(), 5, what="the log line")
        self.assertEqual(policy_exchange(port, "request=smtpd_access_policy\ngarbage\n\n"), "")
        wait_for(lambda: "has no '='" in self.policy_a.stderr(), 5, what="the log line")
        # Unknown attributes are ignored, as the protocol asks.
        self.assertEqual(policy_ask(port, recipient="bob@example.com", future_attribute="1", x_y="z"), "DUNNO")
        # Two requests in one write get two answers, in order.
        two = policy_request(recipient="bob@example.com") + policy_request(recipient="nobody@example.com")
        self.assertEqual(policy_exchange(port, two).split("\n\n")[:2],
                         ["action=DUNNO", "action=550 5.1.1 User unknown"])
        # Garbage on the milter socket, then a real MTA is still served.
        for junk in (b"\x00\x00\x00\x05Ojunk", os.urandom(4096), b"\xff\xff\xff\xff" + b"A" * 64):
            with socket.create_connection(("127.0.0.1", self.milter_port), 5) as s:
                s.sendall(junk)
                s.settimeout(5)
                try:
                    while s.recv(4096):
                        pass
                except OSError:
                    pass
        self.assertTrue(self.policy_a.alive())
        self.assertEqual(self.rcpt(self.pf_c, "nobody@example.com")[0], 550)
        self.assertEqual(self.rcpt(self.pf_a, "nobody@example.com")[0], 550)

    def test_12_milter_commands_with_random_arguments(self):
        """Well-framed milter commands (after a proper negotiation) with
        random arguments, macros, headers and bodies, in random order: the
        callbacks see whatever libmilter makes of them. The milter must
        survive every one and still answer a real MTA."""
        rnd = random.Random(1234)

        def packet(cmd, data=b""):
            return struct.pack(">I", len(data) + 1) + cmd + data

        def junk(n):
            alphabet = b"<>@.:=+ \x00\xff\r\nabcdefSIZE0123456789"
            return bytes(rnd.choice(alphabet) for _ in range(rnd.randrange(n)))

        def cstrings(k):
            return b"".join(junk(40).replace(b"\x00", b"") + b"\x00" for _ in range(k))

        steps = [
            lambda: packet(b"C", junk(20).replace(b"\x00", b"") + b"\x004" + struct.pack(">H", 25) + b"192.0.2.1\x00"),
            lambda: packet(b"D", rnd.choice([b"C", b"M", b"R", b"T", b"E"]) + cstrings(rnd.randrange(0, 6))),
            lambda: packet(b"M", cstrings(rnd.randrange(0, 4))),
            lambda: packet(b"R", cstrings(rnd.randrange(0, 4))),
            lambda: packet(b"L", cstrings(rnd.randrange(0, 3))),
            lambda: packet(b"N"),
            lambda: packet(b"B", junk(300)),
            lambda: packet(b"E"),
            lambda: packet(b"A"),
            lambda: packet(rnd.choice([b"H", b"T", b"U", b"Z", b"\x00"]), junk(30)),
        ]
        negotiate = packet(b"O", struct.pack(">III", 6, 0x1FF, 0))
        for _ in range(60):
            with socket.create_connection(("127.0.0.1", self.milter_port), 5) as s:
                s.settimeout(5)
                try:
                    s.sendall(negotiate + b"".join(rnd.choice(steps)() for _ in range(rnd.randrange(1, 12))))
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(65536):
                        pass
                except OSError:
                    pass  # libmilter hung up on it
        self.assertTrue(self.policy_a.alive(), self.policy_a.stderr()[-2000:])
        self.assertEqual(self.rcpt(self.pf_c, "nobody@example.com")[0], 550)
        self.assertEqual(self.rcpt(self.pf_c, "bob@example.com")[0], 250)

    def test_10_miltertest_speaks_sendmails_side(self):
        need("miltertest")
        script = self.lab.write("milter.lua", f"""
local conn = mt.connect("inet:{self.milter_port}@127.0.0.1", 20, 0.25)
assert(conn, "connect")
assert(mt.conninfo(conn, "client.example.net", "192.0.2.9") == nil)
assert(mt.getreply(conn) == SMFIR_CONTINUE)
mt.macro(conn, SMFIC_MAIL, "{{mail_addr}}", "someone@example.net")
assert(mt.mailfrom(conn, "<someone@example.net>", "SIZE=20000") == nil)
assert(mt.getreply(conn) == SMFIR_CONTINUE)
local function rcpt(addr, want)
  mt.macro(conn, SMFIC_RCPT, "{{rcpt_addr}}", addr)
  assert(mt.rcptto(conn, "<" .. addr .. ">") == nil)
  local got = mt.getreply(conn)
  if got ~= want then error(addr .. ": reply " .. tostring(got)) end
end
rcpt("nobody@example.com", SMFIR_REPLYCODE)
rcpt("dora@example.com", SMFIR_REPLYCODE)
rcpt("nina@example.com", SMFIR_REPLYCODE)   -- 20000 announced, 10000 left
rcpt("bob@example.com", SMFIR_CONTINUE)
assert(mt.header(conn, "Subject", "hello") == nil)
assert(mt.eoh(conn) == nil)
assert(mt.bodystring(conn, "hello\\r\\n") == nil)
assert(mt.eom(conn) == nil)
assert(mt.getreply(conn) == SMFIR_CONTINUE)
mt.disconnect(conn)
print("milter ok")
""")
        r = subprocess.run(["miltertest", "-s", script], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("milter ok", r.stdout)
        log = self.policy_a.stderr()
        self.assertIn("reject: RCPT from client.example.net[192.0.2.9]: 550 5.1.1 <nobody@example.com>", log)

    def test_11_metrics_count_decisions_by_rule_and_result(self):
        self.rcpt(self.pf_a, "nobody@example.com")
        self.rcpt(self.pf_a, "bob@example.com")
        _, _, body = http_get(self.metrics_port, "/metrics")

        def value(rule, result):
            line = f'mailgrid_policy_decisions_total{{rule="{rule}",result="{result}"}} '
            for l in body.splitlines():
                if l.startswith(line):
                    return int(float(l.split()[-1]))
            self.fail(f"no {line} in /metrics")

        self.assertGreaterEqual(value("recipient", "reject"), 1)
        self.assertGreaterEqual(value("none", "dunno"), 1)
        self.assertIn('mailgrid_policy_requests_total{listener="milter"}', body)
        self.assertIn('mailgrid_policy_request_seconds_bucket{listener="policy"', body)


class Check(LabTestCase):
    def test_check(self):
        good = mailgrid_cf(self.lab, {"policy_server_host": "ldap://127.0.0.1:1/", "policy_search_base": SUFFIX,
                                      "milter_listen": "inet:10041@127.0.0.1"}, "good.cf")
        r = subprocess.run([binary("mailgrid_policy"), "-c", good, "--check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        bad = mailgrid_cf(self.lab, {"policy_server_host": "ldap://127.0.0.1:1/",
                                     "policy_message_limits": "100/fortnight"}, "bad.cf")
        r = subprocess.run([binary("mailgrid_policy"), "-c", bad, "--check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 78)
        self.assertIn(f"{bad}, line 2: policy_message_limits: \"100/fortnight\": the window is not minute, hour or day",
                      r.stderr)
        r = subprocess.run([binary("mailgrid_policy"), "-c", good, "--show"], capture_output=True, text=True)
        self.assertIn("policy_over_quota = defer", r.stdout)
        # A request from the shell, as Postfix would send it.
        ldif = self.lab.write("u.ldif", directory_ldif())
        cf = mailgrid_cf(self.lab, {"policy_server_host": f"ldif:{ldif}", "policy_search_base": SUFFIX}, "q.cf")
        r = subprocess.run([binary("mailgrid_policy"), "-c", cf, "-q"], capture_output=True, text=True,
                           input=policy_request(recipient="nobody@example.com"), timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "action=550 5.1.1 User unknown\n\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
