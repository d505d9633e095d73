#!/usr/bin/env python3
"""mupdate_bridge as the MUPDATE master of a real Cyrus 3.6 Murder: backends
push to it and frontends follow it; the list survives restarts and kill -9,
is shared through Redis, mirrors a Cyrus master with --follow, and is
published to the rest of the suite. Also the protocol edges a sysadmin
would probe by hand (mupdatetest-style sessions)."""

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import LabTestCase, Redis, binary, free_port, http_get, mailgrid_cf, need, read_netstring, netstring, \
    start_tablemap, tcp_lookup, wait_for, wait_port  # noqa: E402
from mupdate_peers import (ADMIN_PW, MUPDATE_PW, MUPDATE_USER, Backend, CyrusMaster, Frontend, Mupdate, SaslDb,  # noqa: E402
                           bridge_tool, lit, parse_entries, start_bridge)

ACL = "alice\tlrswipkxtecdan\t"


def activate(name, location, acl=ACL):
    return "ACTIVATE " + lit(name) + " " + lit(location) + " " + lit(acl)


def names(lines):
    return [e[1] for e in parse_entries(lines)]


def status(lines):
    """'OK "done"' of the last line."""
    return lines[-1].split(b" ", 1)[1].decode("latin-1")


def listing(proc, *args):
    r = bridge_tool(proc, "list", *args)
    return [l.split("\t") for l in r.stdout.splitlines()]


class Protocol(LabTestCase):
    """The bridge alone, probed as a sysadmin would with mupdatetest."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.db = SaslDb(lab)
        cls.db.realm_users("mupdate-bridge", [("reader", "readerpw"), ("stranger", "strangerpw"),
                                              ("mail9", "mail9pw")])
        cls.metrics_port = free_port()
        cls.socketmap_port = free_port()
        cls.ldif = lab.path("published.ldif")
        cls.bridge = start_bridge(lab, {"mupdate_readers": "reader", "mupdate_writers": "mupdate, mail9=srv9",
                                        "mupdate_metrics": f"127.0.0.1:{cls.metrics_port}",
                                        "mupdate_socketmap": f"127.0.0.1:{cls.socketmap_port}",
                                        "mupdate_publish_ldif": cls.ldif,
                                        "mupdate_publish_interval": "200ms",
                                        "mupdate_push_max_delete": "10%",
                                        "mupdate_push_delete_floor": "2"}, sasldb=cls.db)

    def client(self, **kw):
        c = Mupdate(self.bridge.port, **kw)
        self.addCleanup(c.close)
        return c

    def test_banner_and_login_rules(self):
        c = self.client(login=False)
        self.assertEqual(c.banner[0], b'* AUTH "PLAIN"')
        self.assertIn(b"* PARTIAL-UPDATE", c.banner)
        self.assertTrue(c.banner[-1].startswith(b'* OK MUPDATE "mupdate-bridge" "mailgrid mupdate_bridge"'))
        self.assertTrue(c.banner[-1].endswith(b' "(master)"'))
        self.assertEqual(c.command("F1", 'FIND "user.alice"'), [b'F1 BAD "Please login first"'])
        self.assertEqual(c.command("Q01", "LOGOUT"), [b'Q01 OK "bye-bye"'])
        bad = base64.b64encode(b"\0mupdate\0wrong").decode()
        c = self.client(login=False)
        self.assertEqual(status(c.command("A01", f'AUTHENTICATE "PLAIN" {bad}')), 'NO "authentication failed"')
        c = self.client(login=False)
        ok = base64.b64encode(b"\0stranger\0strangerpw").decode()
        self.assertEqual(status(c.command("A01", f'AUTHENTICATE "PLAIN" {ok}')), 'NO "not authorized"')
        wait_for(lambda: "stranger authenticated but is in neither" in self.bridge.stderr(), 5,
                 what="the log line about an unknown identity")
        # PLAIN without an initial response: an empty challenge line first.
        c = self.client(login=False)
        c.send('A01 AUTHENTICATE "PLAIN"\r\n')
        self.assertEqual(c.line(), b"")
        c.send(base64.b64encode(b"\0mupdate\0" + MUPDATE_PW.encode()) + b"\r\n")
        self.assertEqual(c.line(), b'A01 OK "Authenticated"')
        self.assertEqual(c.command("A02", f'AUTHENTICATE "PLAIN" {ok}'), [b'A02 BAD "already authenticated"'])

    def test_reader_may_only_read(self):
        w = self.client()
        w.command("X1", activate("user.readtest", "srv1!default"))
        r = self.client(user="reader", password="readerpw")
        self.assertEqual(names(r.command("F1", 'FIND "user.readtest"')), ["user.readtest"])
        self.assertEqual(status(r.command("X1", activate("user.readtest2", "srv1!default"))), 'NO "read-only session"')
        self.assertEqual(status(r.command("X2", "DELETE " + lit("user.readtest"))), 'NO "read-only session"')
        self.assertEqual(names(w.command("F2", 'FIND "user.readtest"')), ["user.readtest"])

    def test_writes_as_cyrus_sends_them(self):
        c = self.client()
        # Create: RESERVE then ACTIVATE, literals everywhere.
        self.assertEqual(c.command("X0", "RESERVE " + lit("user.w1") + " " + lit("srv1!default")), [b'X0 OK "done"'])
        self.assertEqual(parse_entries(c.command("F0", "FIND " + lit("user.w1"))), [("RESERVE", "user.w1", "srv1!default", "")])
        self.assertEqual(c.command("X1", activate("user.w1", "srv1!default")), [b'X1 OK "done"'])
        self.assertEqual(parse_entries(c.command("F1", "FIND " + lit("user.w1"))),
                         [("MAILBOX", "user.w1", "srv1!default", ACL)])
        # Repeated ACTIVATEs are fine; DELETE of an unknown name is OK.
        self.assertEqual(status(c.command("X2", activate("user.w1", "srv1!default"))), 'OK "done"')
        self.assertEqual(status(c.command("X3", "DELETE " + lit("user.nosuch.w1"))), 'OK "done"')
        # Rename: DELETE old, RESERVE new with an empty partition.
        self.assertEqual(status(c.command("X4", "DELETE " + lit("user.w1"))), 'OK "done"')
        self.assertEqual(status(c.command("X5", "RESERVE " + lit("user.w2") + " " + lit("srv1!"))), 'OK "done"')
        self.assertEqual(status(c.command("X6", activate("user.w2", "srv1!"))), 'OK "done"')
        self.assertEqual(c.command("F2", "FIND " + lit("user.w1")), [b'F2 OK "Search completed"'])
        # DEACTIVATE makes it a reservation again.
        self.assertEqual(status(c.command("X7", "DEACTIVATE " + lit("user.w2") + " " + lit("srv1!default"))), 'OK "done"')
        self.assertEqual(parse_entries(c.command("F3", "FIND " + lit("user.w2")))[0][0], "RESERVE")
        self.assertEqual(status(c.command("X8", "DEACTIVATE " + lit("user.w2") + " " + lit("srv1!default"))),
                         'NO "mailbox not currently active"')

    def test_another_server_cannot_take_a_mailbox(self):
        c = self.client()
        c.command("X1", activate("user.held", "srv1!default"))
        self.assertEqual(status(c.command("X2", "RESERVE " + lit("user.held") + " " + lit("srv2!default"))),
                         'NO "mailbox already exists"')
        self.assertEqual(status(c.command("X3", activate("user.held", "srv2!default", "x\tlrs\t"))),
                         'NO "mailbox is held by srv1"')
        self.assertEqual(parse_entries(c.command("F1", "FIND " + lit("user.held"))),
                         [("MAILBOX", "user.held", "srv1!default", ACL)])
        wait_for(lambda: "tried to ACTIVATE user.held on srv2, held by srv1" in self.bridge.stderr(), 5,
                 what="the conflict in the log")
        # A writer bound to srv9 writes only for srv9.
        b = self.client(user="mail9", password="mail9pw")
        self.assertEqual(status(b.command("X4", activate("user.nine", "srv1!default"))), 'NO "not allowed to write for srv1"')
        self.assertEqual(status(b.command("X5", activate("user.nine", "srv9!default"))), 'OK "done"')
        self.assertEqual(status(b.command("X6", "DELETE " + lit("user.held"))), 'NO "mailbox is held by srv1"')

    def test_list_order_and_server_prefix(self):
        c = self.client()
        for n in ["user.ord.alice-x", "user.ord.alice.Sent", "user.ord.alice", "user.ord.alice.My Stuff",
                  "user.ord.alice.Entw&APw-rfe"]:
            c.command("X", activate(n, "ordsrv!default"))
        c.command("X", activate("user.ord.bob", "othersrv!default"))
        got = [n for n in names(c.command("L1", "LIST")) if n.startswith("user.ord.")]
        self.assertEqual(got, ["user.ord.alice", "user.ord.alice.Entw&APw-rfe", "user.ord.alice.My Stuff",
                               "user.ord.alice.Sent", "user.ord.alice-x", "user.ord.bob"])
        self.assertEqual(names(c.command("L2", "LIST " + lit("ordsrv!"))),
                         ["user.ord.alice", "user.ord.alice.Entw&APw-rfe", "user.ord.alice.My Stuff",
                          "user.ord.alice.Sent", "user.ord.alice-x"])
        self.assertEqual(names(c.command("L3", 'LIST "othersrv!"')), ["user.ord.bob"])
        self.assertEqual(c.command("L4", 'LIST "nosuch!"'), [b'L4 OK "list complete"'])

    def test_malformed_input_gets_bad_and_a_log_line(self):
        c = self.client()
        self.assertEqual(c.command("A1", "FROBNICATE"), [b'A1 BAD "Unrecognized command"'])
        self.assertEqual(c.command("A2", "FIND"), [b'A2 BAD "Missing arguments"'])
        self.assertEqual(c.command("A3", 'FIND "a" "b"'), [b'A3 BAD "Extra arguments"'])
        self.assertEqual(c.command("A4", 'FIND "unterminated'), [b'A4 BAD "Badly formed arguments"'])
        self.assertEqual(c.command("A5", "FIND " + lit("user.a\x01b")), [b'A5 OK "Search completed"'])
        self.assertEqual(status(c.command("A6", activate("user.a\x01b", "s!p"))), 'NO "invalid mailbox name, location or ACL"')
        self.assertEqual(status(c.command("A7", activate("user.x", "a!b!c"))), 'NO "invalid mailbox name, location or ACL"')
        # A huge synchronising literal: refused, no go-ahead, session goes on.
        self.assertEqual(c.command("A8", "FIND {900000000}"), [b'A8 BAD "Literal too large"'])
        # A synchronising literal of sane size gets its go-ahead.
        c.send("A9 FIND {9}\r\n")
        self.assertEqual(c.line(), b"+ go ahead")
        c.send("user.nope\r\n")
        self.assertEqual(c.until("A9"), [b'A9 OK "Search completed"'])
        self.assertEqual(c.command("A10", "NOOP"), [b'A10 OK "Noop done"'])
        wait_for(lambda: "A4: Badly formed arguments" in self.bridge.stderr(), 5, what="the BAD in the log")
        # A huge non-synchronising literal cannot be followed: BAD, then BYE.
        d = self.client()
        d.send("B1 FIND {900000000+}\r\n" + "x" * 1000)
        self.assertEqual(d.line(), b'B1 BAD "Literal too large"')
        self.assertTrue(d.line().startswith(b"* BYE"))
        # Garbage without end: dropped after 20 errors.
        e = self.client()
        e.send("\r\n".join(f"G{i} ?" for i in range(30)) + "\r\n")
        lines = [e.line() for _ in range(22)]
        self.assertEqual(lines[0], b'G0 BAD "Unrecognized command"')
        self.assertTrue(lines[21].startswith(b'* BYE "too many errors"'))
        # The bridge is fine.
        self.assertEqual(self.client().command("N1", "NOOP"), [b'N1 OK "Noop done"'])

    def test_client_that_sends_without_reading(self):
        """A client that floods FINDs and never reads: the bridge stops
        reading it (its replies back up), holds bounded memory, and
        serves everyone else."""
        pid = self.bridge.pid
        def rss():
            with open(f"/proc/{pid}/status") as f:
                return int(f.read().split("VmRSS:")[1].split()[0])
        before = rss()
        flood = socket.create_connection(("127.0.0.1", self.bridge.port))
        self.addCleanup(flood.close)
        b64 = base64.b64encode(b"\0mupdate\0" + MUPDATE_PW.encode())
        flood.sendall(b'A01 AUTHENTICATE "PLAIN" {%d+}\r\n%s\r\n' % (len(b64), b64))
        flood.setblocking(False)
        chunk = b"".join(b"F%d FIND {10+}\r\nuser.flood\r\n" % i for i in range(2000))
        sent = 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                sent += flood.send(chunk)
            except BlockingIOError:
                time.sleep(0.05)
        c = self.client()
        t0 = time.monotonic()
        self.assertEqual(c.command("N1", "NOOP"), [b'N1 OK "Noop done"'])
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertLess(rss() - before, 64 * 1024, "the bridge buffered a client's flood")
        self.assertGreater(sent, 1 << 20)

    def test_pipelined_writes_are_grouped_and_all_answered(self):
        c = self.client()
        n = 2000
        c.send("".join(f"P{i} " + activate(f"user.pipe{i:05d}", "pipesrv!default") + "\r\n" for i in range(n)))
        for i in range(n):
            self.assertEqual(c.line(), f'P{i} OK "done"'.encode())
        self.assertEqual(len(names(c.command("L1", 'LIST "pipesrv!"'))), n)
        _, _, body = http_get(self.metrics_port, "/metrics")
        commits = float([l for l in body.splitlines() if l.startswith("mupdate_commits_total ")][0].split()[1])
        self.assertLess(commits, n / 2, "pipelined writes were not grouped into commits")

    def test_push_that_would_empty_a_server_is_refused(self):
        c = self.client()
        c.send("".join(f"S{i} " + activate(f"user.push{i:03d}", "pushsrv!default") + "\r\n" for i in range(50)))
        for i in range(50):
            c.line()
        # What a backend that lost its mailboxes.db would do on -m: LIST,
        # then DELETE every listed mailbox. 10% of 50 = 5 are allowed.
        p = self.client()
        listed = names(p.command("X0", "LIST " + lit("pushsrv!")))
        self.assertEqual(len(listed), 50)
        answers = [status(p.command(f"X{i + 1}", "DELETE " + lit(n))) for i, n in enumerate(listed[:7])]
        self.assertEqual(answers[:5], ['OK "done"'] * 5)
        self.assertTrue(answers[5].startswith('NO "refusing to delete'), answers[5])
        self.assertTrue(answers[6].startswith("NO"))
        # Nothing was lost: the five already deleted were put back.
        self.assertEqual(len(names(c.command("L1", 'LIST "pushsrv!"'))), 50)
        wait_for(lambda: "a push for pushsrv would delete more than 5 of its 50 mailboxes" in self.bridge.stderr(), 5,
                 what="the refusal in the log")
        # A live delete (no push in the session) is not limited.
        self.assertEqual(status(c.command("D1", "DELETE " + lit("user.push000"))), 'OK "done"')

    def test_update_streams_changes_without_noop(self):
        f = self.client()
        f.send("U01 UPDATE\r\n")
        dump = f.until("U01")
        self.assertEqual(dump[-1], b'U01 OK "streaming starts"')
        w = self.client()
        f.s.settimeout(2)
        t0 = time.monotonic()
        w.command("X1", activate("user.streamed", "srv1!default"))
        line = f.line()
        delay = time.monotonic() - t0
        self.assertEqual(parse_entries([line]), [("MAILBOX", "user.streamed", "srv1!default", ACL)])
        self.assertLess(delay, 0.5, "a change took too long to reach a follower")
        w.command("X2", "DELETE " + lit("user.streamed"))
        self.assertEqual(parse_entries([f.line()]), [("DELETE", "user.streamed", "", "")])
        # NOOP is a barrier; other commands are refused while streaming.
        f.send("N1 NOOP\r\nF1 FIND " + lit("user.streamed") + "\r\n")
        self.assertEqual(f.line(), b'N1 OK "Noop done"')
        self.assertEqual(f.line(), b'F1 BAD "not legal when streaming"')
        # A partial UPDATE follows only the servers it names.
        p = self.client()
        p.send("U02 UPDATE " + lit("srv9") + "\r\n")
        self.assertEqual(p.until("U02")[-1], b'U02 OK "streaming starts"')
        p.s.settimeout(2)
        w.command("X3", activate("user.elsewhere", "srv1!default"))
        w.command("X4", activate("user.on9", "srv9!default"))
        self.assertEqual(names([p.line()]), ["user.on9"])
        f.send("Q01 LOGOUT\r\n")
        rest = []
        while True:
            l = f.line()
            rest.append(l)
            if l.startswith(b"Q01"):
                break
        self.assertEqual(rest[-1], b'Q01 OK "bye-bye"')

    def test_published_map(self):
        c = self.client()
        c.command("X1", activate("user.pubuser", "pubsrv:2143!default"))
        c.command("X2", activate("user.pubuser.Sent", "pubsrv:2143!default"))
        c.command("X3", activate("example.com!user.john^doe", "pubsrv2!default"))
        self.assertEqual(bridge_tool(self.bridge, "user", "pubuser").stdout, "pubsrv:2143\n")
        self.assertEqual(bridge_tool(self.bridge, "user", "john.doe@example.com").stdout, "pubsrv2\n")
        self.assertEqual(bridge_tool(self.bridge, "user", "nobody").returncode, 1)
        # webmail_locator reads the same store as a source of its own.
        backends = self.lab.write("backends", "pubsrv 127.0.0.5 imap=2143 pop3=2110\npubsrv2 127.0.0.6\n")
        for user, expect in [("pubuser", "pubsrv 127.0.0.5 imap=2143 pop3=2110"),
                             ("john.doe@example.com", "pubsrv2 127.0.0.6 imap=143")]:
            r = subprocess.run([binary("webmail_locator"), "-c", "/dev/null", "-o", "locator_mech=ldif:/dev/null",
                                "-o", "locator_sources=murder=mupdate:" + self.bridge.params["mupdate_store"],
                                "-o", f"locator_backend_map={backends}", "locate", user],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.startswith(expect), r.stdout)
            self.assertIn("source=murder", r.stdout)
        with socket.create_connection(("127.0.0.1", self.socketmap_port), 5) as s:
            s.sendall(netstring("mailbox pubuser"))
            self.assertEqual(read_netstring(s), "OK pubsrv:2143")
            s.sendall(netstring("mailbox nobody"))
            self.assertEqual(read_netstring(s), "NOTFOUND ")
        # The LDIF, read through an unchanged ldap_table(5) file.
        def published():
            if not os.path.exists(self.ldif):
                return False
            with open(self.ldif) as f:
                return "uid=john.doe@example.com" in f.read()
        wait_for(published, 5, what="the published LDIF")
        table = self.lab.write("mailbox.cf", f"server_host = ldif:{self.ldif}\nsearch_base = ou=mailboxes,dc=mupdate\n"
                                             "query_filter = (uid=%s)\nresult_attribute = host\n")
        port = free_port()
        start_tablemap(self.lab, ["--table", f"mailbox={table}", "--tcp", f"mailbox=127.0.0.1:{port}",
                                  "-o", "ldif_reload_interval=100ms", "-o", "cache_size=0"], ports=[port])
        self.assertEqual(tcp_lookup(port, "pubuser"), (200, "pubsrv:2143"))
        c.command("X4", "DELETE " + lit("user.pubuser"))
        c.command("X4", activate("user.pubuser", "moved:2143!default"))
        wait_for(lambda: tcp_lookup(port, "pubuser") == (200, "moved:2143"), 10, what="ldap_tablemap to see the move")
        c.command("X5", "DELETE " + lit("user.pubuser"))
        wait_for(lambda: tcp_lookup(port, "pubuser")[0] == 500, 10, what="the user to disappear")

    def test_metrics_and_tools(self):
        c = self.client()
        c.command("X1", activate("user.tools", "toolsrv!default"))
        status_, _, body = http_get(self.metrics_port, "/metrics")
        self.assertEqual(status_, 200)
        for series in ["mupdate_mailboxes ", "mupdate_followers ", "mupdate_connections ", "mupdate_updates_total{",
                       'mupdate_command_seconds_bucket{command="find"', "mupdate_commit_seconds_bucket"]:
            self.assertIn(series, body)
        self.assertEqual(listing(self.bridge, "user.tools*"), [["user.tools", "active", "toolsrv!default", "alice lrswipkxtecdan"]])
        r = bridge_tool(self.bridge, "find", "user.tools")
        self.assertEqual((r.returncode, r.stdout), (0, "user.tools\tactive\ttoolsrv!default\talice lrswipkxtecdan\n"))
        self.assertEqual(bridge_tool(self.bridge, "find", "user.nosuch").returncode, 1)
        stats = bridge_tool(self.bridge, "stats").stdout
        self.assertIn("server toolsrv: 1\n", stats)
        self.assertIn("users: ", stats)
        # --check names the file and line of a bad parameter.
        bad = mailgrid_cf(self.lab, {"mupdate_push_max_delete": "lots", "mupdate_store": "nosuch:x"}, name="bad.cf")
        r = subprocess.run([binary("mupdate_bridge"), "-c", bad, "--check"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 78)
        self.assertIn("bad.cf", r.stderr)


class CyrusMurder(LabTestCase):
    """Unmodified Cyrus 3.6: two backends push to the bridge, a frontend
    follows it and routes logins through it."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.db = SaslDb(lab)
        cls.bridge = start_bridge(lab, {}, sasldb=cls.db)
        cls.b1 = Backend(lab, "backend1", cls.db, cls.bridge.port)
        cls.b2 = Backend(lab, "backend2", cls.db, cls.bridge.port)
        cls.fe = Frontend(lab, "frontend1", cls.db, cls.bridge.port, [cls.b1, cls.b2])
        wait_for(lambda: "UPDATE: sent" in cls.bridge.stderr(), 20, what="the frontend's mupdate slave to follow")

    def on_bridge(self, name):
        r = bridge_tool(self.bridge, "find", name)
        return r.stdout.split("\t")[2] if r.returncode == 0 else None

    def test_live_create_rename_setacl_delete(self):
        b1 = self.b1.servername
        self.b1.admin(("create", "user.alice"), ("create", "user.alice.Sent"), ("create", "user.alice.My Stuff"),
                      ("create", "user.alice.Projects"), ("create", "user.alice-x"))
        self.assertEqual(self.on_bridge("user.alice.My Stuff"), f"{b1}!default")
        # The frontend's copy follows without NOOP: no 5 s batching.
        t0 = time.monotonic()
        wait_for(lambda: "user.alice-x" in self.fe.mailboxes(), 5, interval=0.05, what="the frontend to see user.alice-x")
        self.assertLess(time.monotonic() - t0, 2.0)
        # Rename: Cyrus sends the new name with an empty partition.
        self.b1.admin(("rename", "user.alice.Projects", "user.alice.Archive"))
        self.assertIsNone(self.on_bridge("user.alice.Projects"))
        self.assertEqual(self.on_bridge("user.alice.Archive"), f"{b1}!")
        self.b1.admin(("setacl", "user.alice.Archive", "bob", "lrs"))
        r = bridge_tool(self.bridge, "find", "user.alice.Archive")
        self.assertIn("bob lrs", r.stdout)
        self.assertEqual(self.on_bridge("user.alice.Archive"), f"{b1}!default")
        # Delayed delete renames into DELETED.*, which stays listed.
        self.b1.admin(("delete", "user.alice.Archive"))
        self.assertIsNone(self.on_bridge("user.alice.Archive"))
        deleted = [l[0] for l in listing(self.bridge, "DELETED.user.alice.Archive.*")]
        self.assertEqual(len(deleted), 1)
        # The bridge's LIST of backend1 is exactly backend1's own list.
        wait_for(lambda: set(self.fe.mailboxes()) >= set(self.b1.local_mailboxes()), 5,
                 what="the frontend to hold every mailbox of backend1")
        ours = {l[0] for l in listing(self.bridge) if l[2].startswith(b1 + "!")}
        self.assertEqual(ours, self.b1.local_mailboxes())

    def test_frontend_routes_a_login_to_its_backend(self):
        import imaplib
        self.b2.admin(("create", "user.bob"))
        wait_for(lambda: "user.bob" in self.fe.mailboxes(), 5, what="the frontend to know user.bob")
        self.b2.deliver_lmtp = None
        import smtplib
        with smtplib.LMTP("127.0.0.1", self.b2.lmtp_port, timeout=30) as l:
            l.sendmail("sender@test.example", ["bob"], b"Subject: via murder\r\n\r\nhello bob\r\n")
        m = imaplib.IMAP4("127.0.0.1", self.fe.imap_port)
        try:
            m.login("bob", "bobpw")
            typ, data = m.select("INBOX")
            self.assertEqual(typ, "OK")
            self.assertEqual(data, [b"1"])
            typ, msg = m.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
            self.assertIn(b"via murder", msg[0][1])
            m.logout()
        finally:
            with contextlib.suppress(OSError):
                m.shutdown()

    def test_second_backend_cannot_take_a_mailbox(self):
        self.b1.admin(("create", "user.carol"))
        with self.assertRaises(RuntimeError):
            self.b2.admin(("create", "user.carol"))
        self.assertEqual(self.on_bridge("user.carol"), f"{self.b1.servername}!default")
        self.assertNotIn("user.carol", self.b2.local_mailboxes())
        wait_for(lambda: "tried to RESERVE user.carol on " + self.b2.servername in self.bridge.stderr(), 5,
                 what="the refusal in the log")

    def test_push_brings_the_list_in_step(self):
        # A stale entry for backend2 (as after an outage) and one for
        # another server; backend2 has mailboxes the bridge does not know.
        self.b2.admin(("create", "user.dave"), ("create", "user.dave.Drafts"))
        c = Mupdate(self.bridge.port)
        c.command("X1", activate("user.ghost", self.b2.servername + "!default"))
        c.command("X2", "DELETE " + lit("user.dave.Drafts"))
        c.command("X3", activate("user.elsewhere", "otherserver!default"))
        c.close()
        r = self.b2.push()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNone(self.on_bridge("user.ghost"))
        self.assertEqual(self.on_bridge("user.dave.Drafts"), f"{self.b2.servername}!default")
        self.assertEqual(self.on_bridge("user.elsewhere"), "otherserver!default")
        # A second push changes nothing.
        before = bridge_tool(self.bridge, "list").stdout
        r = self.b2.push()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(bridge_tool(self.bridge, "list").stdout, before)

    def test_restart_keeps_the_list_and_the_frontend_resyncs(self):
        self.b1.admin(("create", "user.erin"))
        before = bridge_tool(self.bridge, "list").stdout
        self.bridge.kill()
        # While the bridge is down, backends cannot create mailboxes.
        with self.assertRaises(RuntimeError):
            self.b1.admin(("create", "user.erin.Down"))
        CyrusMurder.bridge = start_bridge(self.lab, {}, sasldb=self.db, port=self.bridge.port)
        self.assertEqual(bridge_tool(self.bridge, "list").stdout, before)
        self.b1.admin(("create", "user.erin.Up"))
        wait_for(lambda: "user.erin.Up" in self.fe.mailboxes(), 40, interval=0.5,
                 what="the frontend's slave to reconnect and follow again")


class LoggingRelay:
    """A TCP relay that keeps what each side sent, to know afterwards what
    the master had acknowledged."""

    def __init__(self, lab, target_port):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.client = bytearray()
        self.server = bytearray()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()
        lab.on_close(self.sock.close)

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target), 5)
            except OSError:
                c.close()
                continue
            threading.Thread(target=self._pump, args=(c, s, self.client), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, self.server), daemon=True).start()

    def _pump(self, a, b, log):
        while True:
            try:
                data = a.recv(65536)
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(OSError):
                    b.shutdown(socket.SHUT_WR)
                return
            with self.lock:
                log += data
            with contextlib.suppress(OSError):
                b.sendall(data)

    def acknowledged_activates(self):
        """Names whose ACTIVATE got a tagged OK from the master."""
        with self.lock:
            client, server = bytes(self.client), bytes(self.server)
        tags = {}
        i = 0
        while True:
            j = client.find(b" ACTIVATE {", i)
            if j < 0:
                break
            tag = client[client.rfind(b"\n", 0, j) + 1:j].decode()
            k = client.index(b"+}\r\n", j)
            n = int(client[j + 11:k])
            tags[tag] = client[k + 4:k + 4 + n].decode()
            i = k
        ok = set()
        for line in server.split(b"\r\n"):
            parts = line.split(b" ", 2)
            if len(parts) >= 2 and parts[1] == b"OK" and parts[0].decode() in tags:
                ok.add(tags[parts[0].decode()])
        return ok


def bulk_backend(backend, n, prefix="u"):
    """Gives a stopped backend n mailboxes at once (its mailboxes.db written
    with cvt_cyrusdb from Cyrus's flat format), then starts it."""
    backend.stop()
    lines = []
    for i in range(n):
        u = f"{prefix}{i:06d}"
        lines.append(b"Nuser\x1f" + u.encode() + b"\t%(A %(" + u.encode() + b" lrswipkxtecdan) I " + u.encode() +
                     b"x P default T e V 1 F 1 M 1)\n")
    flat = backend.lab.path(backend.name + ".flat")
    with open(flat, "wb") as f:
        f.write(b"".join(sorted(lines)))
    subprocess.run(["chown", "cyrus:mail", flat], check=True)
    db = os.path.join(backend.dir, "config", "mailboxes.db")
    os.unlink(db)
    r = backend.tool("cvt_cyrusdb", flat, "flat", db, "twoskip")
    assert r.returncode == 0, r.stderr
    backend.start()


class Durability(LabTestCase):
    """kill -9 during a backend's full push loses nothing acknowledged."""

    N = int(os.environ.get("MUPDATE_TEST_PUSH", "3000"))

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.db = SaslDb(lab)
        cls.bridge = start_bridge(lab, {}, sasldb=cls.db)
        cls.relay = LoggingRelay(lab, cls.bridge.port)
        cls.backend = Backend(lab, "backend", cls.db, cls.relay.port)
        bulk_backend(cls.backend, cls.N)

    def test_kill_during_push(self):
        push = subprocess.Popen(["runuser", "-u", "cyrus", "--", "/usr/lib/cyrus/bin/ctl_mboxlist", "-C",
                                 self.backend.conf, "-m"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: push.poll() is None and push.kill())
        wait_for(lambda: len(self.relay.acknowledged_activates()) >= self.N // 2, 600, interval=0.02,
                 what="half of the push")
        os.kill(self.bridge.pid, signal.SIGKILL)
        self.bridge.proc.wait(10)
        push.wait(60)
        acked = self.relay.acknowledged_activates()
        self.assertGreaterEqual(len(acked), self.N // 2)
        Durability.bridge = start_bridge(self.lab, {}, sasldb=self.db, port=self.bridge.port)
        have = {l[0]: l[2] for l in listing(self.bridge)}
        missing = sorted(n for n in acked if n not in have)
        self.assertEqual(missing, [], f"{len(missing)} acknowledged mailboxes lost")
        for n in acked:
            self.assertEqual(have[n], self.backend.servername + "!default")
        # The next push completes the list.
        r = self.backend.push()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(listing(self.bridge)), self.N)


class SaslauthdAuth(LabTestCase):
    """pwcheck_method saslauthd: passwords checked by sasl_ldap_auth against
    the directory (an LDIF file here)."""

    @classmethod
    def setUpLab(cls):
        import hashlib
        lab = cls.lab
        salt = b"s4lt"
        ssha = base64.b64encode(hashlib.sha1(b"backendpw" + salt).digest() + salt).decode()
        users = lab.write("users.ldif", "dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\n"
                                        "dc: example\no: Example\n\n"
                                        "dn: uid=mupdate-b1,dc=example,dc=com\nobjectClass: account\n"
                                        "objectClass: simpleSecurityObject\nuid: mupdate-b1\n"
                                        f"userPassword: {{SSHA}}{ssha}\n")
        run = lab.path("run")
        os.makedirs(run)
        cls.sasl = lab.spawn("sasl", [binary("sasl_ldap_auth"), "-a", f"ldif:{users}", "-m", run, "-d"])
        wait_for(lambda: os.path.exists(run + "/mux"), 10, what="the mux socket")
        cls.bridge = start_bridge(lab, {"mupdate_sasl_pwcheck_method": "saslauthd",
                                        "mupdate_sasl_saslauthd_path": run + "/mux",
                                        "mupdate_writers": "mupdate-b1"})
        cls.db = SaslDb(lab)
        cls.backend = Backend(lab, "backend", cls.db, cls.bridge.port,
                              extra={"mupdate_authname": "mupdate-b1", "mupdate_password": "backendpw"})

    def test_backend_logs_in_through_sasl_ldap_auth(self):
        self.backend.admin(("create", "user.alice"))
        self.assertEqual(listing(self.bridge, "user.alice"),
                         [["user.alice", "active", self.backend.servername + "!default", "alice lrswipkxtecdan"]])
        self.assertIn("mupdate-b1 authenticated (PLAIN)", self.bridge.stderr())

    def test_wrong_password_is_refused(self):
        with self.assertRaises(RuntimeError):
            Mupdate(self.bridge.port, user="mupdate-b1", password="wrong")
        wait_for(lambda: "authentication failed (PLAIN)" in self.bridge.stderr(), 5, what="the failure in the log")


class StartTls(LabTestCase):
    """No plaintext password without TLS: Cyrus's client sees no usable
    mechanism, does STARTTLS, then PLAIN inside TLS."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        need("openssl")
        key, cert = lab.path("tls.key"), lab.path("tls.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=mupdate-bridge", "-keyout", key, "-out", cert], check=True, capture_output=True)
        cls.db = SaslDb(lab)
        cls.bridge = start_bridge(lab, {"mupdate_plaintext_auth": "no", "mupdate_tls_cert_file": cert,
                                        "mupdate_tls_key_file": key}, sasldb=cls.db)
        cls.backend = Backend(lab, "backend", cls.db, cls.bridge.port)

    def test_cyrus_uses_starttls(self):
        c = Mupdate(self.bridge.port, login=False)
        self.assertEqual(c.banner[:2], [b"* AUTH", b"* STARTTLS"])
        ok = base64.b64encode(b"\0mupdate\0" + MUPDATE_PW.encode()).decode()
        self.assertTrue(status(c.command("A01", f'AUTHENTICATE "PLAIN" {ok}')).startswith("NO"))
        c.close()
        self.backend.admin(("create", "user.tls"))
        self.assertEqual(len(listing(self.bridge, "user.tls")), 1)
        self.assertIn("mupdate authenticated (PLAIN+TLS)", self.bridge.stderr())


class SharedRedis(LabTestCase):
    """Two bridges on one Redis: either serves the same list, a change on
    one reaches the other's followers, either can die."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.redis = Redis(lab)
        cls.db = SaslDb(lab)
        cls.url = f"redis://127.0.0.1:{cls.redis.port}/0"
        cls.a = start_bridge(lab, {"mupdate_store": cls.url}, name="bridge-a", sasldb=cls.db)
        cls.b = start_bridge(lab, {"mupdate_store": cls.url}, name="bridge-b", sasldb=cls.db)

    def test_change_on_one_reaches_the_other_followers(self):
        f = Mupdate(self.b.port)
        self.addCleanup(f.close)
        f.send("U01 UPDATE\r\n")
        f.until("U01")
        w = Mupdate(self.a.port)
        self.addCleanup(w.close)
        f.s.settimeout(5)
        t0 = time.monotonic()
        self.assertEqual(status(w.command("X1", activate("user.shared", "srv1!default"))), 'OK "done"')
        self.assertEqual(names([f.line()]), ["user.shared"])
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(names(Mupdate(self.b.port).command("F1", "FIND " + lit("user.shared"))), ["user.shared"])
        self.assertEqual(bridge_tool(self.a, "user", "shared").stdout, "srv1\n")
        self.assertEqual(self.redis.cli("HGET", "mailgrid:mupdate:users", "shared"), "srv1")

    def test_a_write_racing_another_bridge_is_refused(self):
        w = Mupdate(self.a.port)
        self.addCleanup(w.close)
        w.command("X1", activate("user.race", "srv1!default"))
        # Another writer changed it in Redis behind bridge A's back.
        self.redis.cli("HSET", "mailgrid:mupdate:mbox", "user.race", "A12:srv2!default" + "x\tlrs\t")
        self.assertEqual(status(w.command("X2", activate("user.race", "srv1!default", "y\tlrs\t"))),
                         'NO "mailbox changed on another server; try again"')
        self.assertEqual(parse_entries(w.command("F1", "FIND " + lit("user.race"))),
                         [("MAILBOX", "user.race", "srv2!default", "x\tlrs\t")])

    def test_a_bridge_that_dies_comes_back_in_step(self):
        w = Mupdate(self.b.port)
        self.addCleanup(w.close)
        w.command("X1", activate("user.before", "srv1!default"))
        self.a.kill()
        w.command("X2", activate("user.during", "srv1!default"))
        w.command("X3", "DELETE " + lit("user.before"))
        SharedRedis.a = start_bridge(self.lab, {"mupdate_store": self.url}, name="bridge-a", sasldb=self.db,
                                     port=self.a.port)
        f = Mupdate(self.a.port)
        self.addCleanup(f.close)
        f.send("U01 UPDATE\r\n")
        got = names(f.until("U01"))
        self.assertIn("user.during", got)
        self.assertNotIn("user.before", got)
        f.s.settimeout(5)
        w.command("X4", activate("user.after", "srv1!default"))
        self.assertEqual(names([f.line()]), ["user.after"])

    def test_redis_stalled_is_a_temporary_failure(self):
        w = Mupdate(self.a.port)
        self.addCleanup(w.close)
        self.redis.proc.signal(signal.SIGSTOP)
        try:
            w.send("X1 " + activate("user.stalled", "srv1!default") + "\r\n")
            self.assertEqual(w.line(), b'* BYE "mailbox list unavailable; try again"')
        finally:
            self.redis.proc.signal(signal.SIGCONT)
        c = Mupdate(self.a.port)
        self.addCleanup(c.close)
        self.assertEqual(c.command("F1", "FIND " + lit("user.stalled")), [b'F1 OK "Search completed"'])
        def write_works():
            d = Mupdate(self.a.port)
            try:
                return d.command("X2", activate("user.stalled", "srv1!default")) == [b'X2 OK "done"']
            except EOFError:
                return False  # answered * BYE: Redis not back yet
            finally:
                d.close()
        wait_for(write_works, 15, interval=0.5, what="writes to work again")
        self.assertIn("not stored and taken back", self.a.stderr())


class Follow(LabTestCase):
    """--follow: a read-only mirror of Cyrus's own master, for migration."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.db = SaslDb(lab)
        cls.master = CyrusMaster(lab, "cyrus-master", cls.db)
        cls.backend = Backend(lab, "backend", cls.db, cls.master.port)
        cls.backend.admin(("create", "user.alice"), ("create", "user.alice.Sent"))
        cls.bridge = start_bridge(lab, {"mupdate_follow": f"127.0.0.1:{cls.master.port}",
                                        "mupdate_follow_password": MUPDATE_PW, "mupdate_follow_retry": "500ms",
                                        "mupdate_follow_noop_interval": "2s"}, sasldb=cls.db)

    def test_mirror(self):
        wait_for(lambda: len(listing(self.bridge)) == 2, 10, what="the first copy of the list")
        self.backend.admin(("create", "user.bob"))
        # Cyrus's master sends changes in 5 s batches.
        wait_for(lambda: len(listing(self.bridge, "user.bob")) == 1, 15, interval=0.2, what="user.bob on the mirror")
        self.assertEqual(bridge_tool(self.bridge, "user", "bob").stdout, self.backend.servername + "\n")
        c = Mupdate(self.bridge.port)
        self.addCleanup(c.close)
        self.assertTrue(c.banner[-1].endswith(f'"mupdate://127.0.0.1:{self.master.port}/"'.encode()))
        self.assertEqual(status(c.command("X1", activate("user.mine", "srv!default"))),
                         f'NO "read-only: this server follows 127.0.0.1:{self.master.port}"')
        self.assertEqual(names(c.command("F1", "FIND " + lit("user.bob"))), ["user.bob"])

    def test_reconnects_and_resyncs(self):
        wait_for(lambda: len(listing(self.bridge, "user.alice.Sent")) == 1, 10, what="the first copy")
        self.master.stop()
        # While the master is away nothing can change; when it is back the
        # bridge takes the whole list again (a deletion made meanwhile
        # by hand on the master shows up).
        self.master.start()
        c = Mupdate(self.master.port)
        c.command("X1", "DELETE " + lit("user.alice.Sent"))
        c.close()
        wait_for(lambda: listing(self.bridge, "user.alice.Sent") == [], 20, interval=0.3,
                 what="the mirror to drop user.alice.Sent")
        self.assertEqual(len(listing(self.bridge, "user.alice")), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
