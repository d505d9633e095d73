#!/usr/bin/env python3
"""ldap_tablemap against real slapd, real Postfix (postmap and a routing
instance), real Redis: the same ldap_table(5) files must give the same
answers through ldap:, tcp: and socketmap:, an outage must be a temporary
failure, and bad input must not hurt the server."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DATA, SUFFIX, FaultProxy, LabTestCase, Postfix, Redis, Slapd, SmtpSink, binary, free_port,
                     http_get, mailgrid_cf, netstring, read_netstring, recv_line, socketmap_lookup, start_tablemap,
                     tcp_lookup, tcp_quote, tcp_unquote, wait_for, wait_port)

USERS = os.path.join(DATA, "users.ldif")

VIRTUAL_CF = """\
# The classic virtual table of the seed design, unchanged from Postfix.
server_host = {server}
search_base = {suffix}
version = 3
bind = no
timeout = {timeout}
query_filter = (mailacceptinggeneralid=%s)
result_attribute = maildrop
"""

# Keys for the postmap comparison: existing, unknown, case, escaping
# (a literal '*' in the directory, wildcards and filter syntax in keys),
# extensions, non-ASCII, long keys.
COMPARE_KEYS = [
    "alice@example.com", "Alice@EXAMPLE.com", "al@example.com", "staff@example.com", "fwd@example.com",
    "nobody@example.net", "star*@example.com", "st*@example.com", "*", "*@example.com", "(", ")", "\\",
    "alice@example.com)(mail=*", "a b@example.com", "jos\u00e9@example.com", "@catchall.example.org",
    "anyone@catchall.example.org", "alice+ml@example.com", "carol+special@example.com", "dup@example.com",
    "x" * 4000 + "@example.com",
]


def virtual_cf(lab, name, server, timeout=10):
    return lab.write(name, VIRTUAL_CF.format(server=server, suffix=SUFFIX, timeout=timeout))


class SameAnswers(LabTestCase):
    """One directory, one .cf file: ldap:, tcp:, socketmap: and the embedded
    directory must agree key for key through postmap."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.slapd = Slapd(lab, [USERS])
        cls.cf = virtual_cf(lab, "virtual.cf", cls.slapd.uri)
        cls.cf_ldif = virtual_cf(lab, "virtual-ldif.cf", "ldif:" + USERS)
        cls.postfix = Postfix(lab, start=False)
        cls.tcp = free_port()
        cls.tcp_ldif = free_port()
        cls.sm = free_port()
        cls.metrics = free_port()
        cls.tm = start_tablemap(lab, [
            "--table", f"virtual={cls.cf}", "--table", f"embedded={cls.cf_ldif}",
            "--tcp", f"virtual=127.0.0.1:{cls.tcp}", "--tcp", f"embedded=127.0.0.1:{cls.tcp_ldif}",
            "--socketmap", f"127.0.0.1:{cls.sm}",
            # postmap -q asks for exactly one key, as ldap: answers it
            "-o", "tablemap_style=virtual=exact, embedded=exact",
            "-o", f"tablemap_metrics=127.0.0.1:{cls.metrics}",
        ], [cls.tcp, cls.tcp_ldif, cls.sm, cls.metrics])

    def test_postmap_answers_are_identical(self):
        pf = self.postfix
        tables = {
            "ldap": "ldap:" + self.cf,
            "tcp": f"tcp:127.0.0.1:{self.tcp}",
            "socketmap": f"socketmap:inet:127.0.0.1:{self.sm}:virtual",
            "embedded": f"tcp:127.0.0.1:{self.tcp_ldif}",
        }
        found = 0
        for key in COMPARE_KEYS:
            answers = {name: pf.postmap_q(key, t)[:2] for name, t in tables.items()}
            reference = answers["ldap"]
            for name, a in answers.items():
                self.assertEqual(a, reference, f"{name} differs from ldap: for {key[:60]!r}")
            found += reference[0] == 0
        self.assertGreaterEqual(found, 8)  # the comparison is not vacuous
        self.assertEqual(pf.postmap_q("staff@example.com", tables["tcp"])[1],
                         "alice@mail01.example.com,bob@mail02.example.com")
        self.assertEqual(pf.postmap_q("st*@example.com", tables["tcp"])[0], 1)

    def test_postmap_stdin_batch(self):
        keys = ["alice@example.com", "nobody@example.net", "bob@example.com"]
        rc, out, err = self.postfix.postmap_q_stdin(keys, f"tcp:127.0.0.1:{self.tcp}")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "alice@example.com\talice@mail01.example.com\nbob@example.com\tbob@mail02.example.com\n")

    def test_filter_injection_is_literal(self):
        # A key crafted to widen the search must match nothing.
        for key in ["*", "*)(objectClass=*", "alice@example.com)(|(mail=*", "\\2a", "al*"]:
            self.assertEqual(tcp_lookup(self.tcp, key)[0], 500, key)
        self.assertEqual(socketmap_lookup(self.sm, "virtual", "*"), "NOTFOUND ")

    def test_more_than_one_entry_is_logged(self):
        self.assertEqual(tcp_lookup(self.tcp, "dup@example.com")[0], 200)
        wait_for(lambda: "dup@example.com matches 2 entries" in self.tm.stderr(), 5, what="the log line")

    def test_unknown_socketmap_name_is_a_configuration_error(self):
        self.assertTrue(socketmap_lookup(self.sm, "nosuchmap", "alice@example.com").startswith("PERM "))

    def test_metrics(self):
        tcp_lookup(self.tcp, "bob@example.com")
        status, headers, body = http_get(self.metrics, "/metrics")
        self.assertEqual(status, 200)
        self.assertRegex(body, r'mailgrid_lookups_total\{table="virtual",result="found"\} [1-9]')
        self.assertIn('mailgrid_lookup_seconds_bucket{table="virtual",le="+Inf"}', body)
        self.assertIn("mailgrid_cache_hits_total", body)
        self.assertEqual(http_get(self.metrics, "/healthz")[0], 200)
        self.assertEqual(http_get(self.metrics, "/nope")[0], 404)


class RealPostfixRouting(LabTestCase):
    """A real Postfix routes real messages by the answers: virtual aliases
    (with +extensions and @domain catch-alls) through ldap:, tcp: and
    socketmap: must deliver to the same addresses, and a transport table
    sends each backend's mail to that backend."""

    RECIPIENTS = [
        "alice@example.com", "alice+ml@example.com", "Alice+Lists@Example.COM", "al@example.com",
        "staff@example.com", "fwd@example.com", "carol+special@example.com", "carol+other@example.com",
        "anyone@catchall.example.org", "anyone+x@catchall.example.org", "joe+y@rewrite.example.org",
    ]

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.slapd = Slapd(lab, [USERS])
        cls.cf = virtual_cf(lab, "virtual.cf", cls.slapd.uri)
        cls.sink = SmtpSink(lab)
        cls.mail01 = SmtpSink(lab)
        cls.mail02 = SmtpSink(lab)
        # Transport entries for the two backends, pointing at the sinks.
        cls.slapd.modify(f"""dn: ou=transport,{SUFFIX}
changetype: add
objectClass: organizationalUnit
ou: transport

dn: cn=mail01.example.com,ou=transport,{SUFFIX}
changetype: add
objectClass: device
cn: mail01.example.com
description: smtp:[127.0.0.1]:{cls.mail01.port}

dn: cn=mail02.example.com,ou=transport,{SUFFIX}
changetype: add
objectClass: device
cn: mail02.example.com
description: smtp:[127.0.0.1]:{cls.mail02.port}
""")
        cls.transport_cf = lab.write("transport.cf", f"""server_host = {cls.slapd.uri}
search_base = ou=transport,{SUFFIX}
version = 3
bind = no
query_filter = (&(objectClass=device)(cn=%s))
result_attribute = description
""")
        cls.vport, cls.sport, cls.tport = free_port(), free_port(), free_port()
        cls.tm = start_tablemap(lab, [
            "--table", f"virtual={cls.cf}", "--table", f"transport={cls.transport_cf}",
            "--tcp", f"virtual=127.0.0.1:{cls.vport}", "--tcp", f"transport=127.0.0.1:{cls.tport}",
            "--socketmap", f"127.0.0.1:{cls.sport}",
        ], [cls.vport, cls.sport, cls.tport])
        cls.postfix = Postfix(lab, main_cf={
            "virtual_alias_domains": "example.com, catchall.example.org, rewrite.example.org",
            "virtual_alias_maps": "ldap:" + cls.cf,
            "recipient_delimiter": "+",
            "relayhost": f"[127.0.0.1]:{cls.sink.port}",
        })

    def route_all(self, table):
        self.postfix.reload(virtual_alias_maps=table, transport_maps="")
        time.sleep(0.5)
        before = len(self.sink.messages)
        for i, rcpt in enumerate(self.RECIPIENTS):
            self.postfix.send("sender@test.example", rcpt, subject=f"msg-{i}")
        msgs = self.sink.wait(before + len(self.RECIPIENTS))[before:]
        routed = {}
        for _, rcpts, data in msgs:
            subject = re.search(rb"^Subject: (msg-\d+)", data, re.M).group(1).decode()
            routed[self.RECIPIENTS[int(subject[4:])]] = sorted(rcpts)
        return routed

    def test_virtual_routing_is_identical(self):
        reference = self.route_all("ldap:" + self.cf)
        # The reference itself shows the Postfix behaviours we must match.
        self.assertEqual(reference["alice+ml@example.com"], ["alice+ml@mail01.example.com"])
        self.assertEqual(reference["carol+special@example.com"], ["carol-special@mail01.example.com"])
        self.assertEqual(reference["anyone@catchall.example.org"], ["catch@mail02.example.com"])
        self.assertEqual(reference["staff@example.com"], ["alice@mail01.example.com", "bob@mail02.example.com"])
        tcp = self.route_all(f"tcp:127.0.0.1:{self.vport}")
        self.assertEqual(tcp, reference)
        sm = self.route_all(f"socketmap:inet:127.0.0.1:{self.sport}:virtual")
        self.assertEqual(sm, reference)

    def test_unknown_user_is_rejected_at_rcpt(self):
        self.postfix.reload(virtual_alias_maps=f"tcp:127.0.0.1:{self.vport}", transport_maps="")
        time.sleep(0.5)
        with self.postfix.smtp() as s:
            s.mail("sender@test.example")
            code, text = s.rcpt("nosuchuser@example.com")
        self.assertEqual(code, 550, text)
        self.assertIn(b"5.1.1", text)

    def test_transport_routes_each_user_to_their_backend(self):
        self.postfix.reload(virtual_alias_maps=f"tcp:127.0.0.1:{self.vport}",
                            transport_maps=f"tcp:127.0.0.1:{self.tport}")
        time.sleep(0.5)
        b1, b2 = len(self.mail01.messages), len(self.mail02.messages)
        self.postfix.send("sender@test.example", "alice@example.com", subject="to-alice")
        self.postfix.send("sender@test.example", "bob@example.com", subject="to-bob")
        self.postfix.send("sender@test.example", "staff@example.com", subject="to-staff")
        self.mail01.wait(b1 + 2)
        self.mail02.wait(b2 + 2)
        one = [(r, d) for _, r, d in self.mail01.messages[b1:]]
        two = [(r, d) for _, r, d in self.mail02.messages[b2:]]
        self.assertEqual(sorted(r for rs, _ in one for r in rs), ["alice@mail01.example.com"] * 2)
        self.assertEqual(sorted(r for rs, _ in two for r in rs), ["bob@mail02.example.com"] * 2)
        self.assertTrue(all(b"to-bob" not in d for _, d in one))


class DirectoryOutage(LabTestCase):
    """Directory down, hung or erring is 400/TEMP, never 500/NOTFOUND, within
    the configured timeout; it recovers without a restart."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.slapd = Slapd(lab, [USERS])
        cls.cf = virtual_cf(lab, "virtual.cf", cls.slapd.uri, timeout=2)
        cls.badbase = lab.write("badbase.cf", VIRTUAL_CF.format(server=cls.slapd.uri, suffix="dc=nowhere",
                                                                timeout=2))
        cls.tcp, cls.sm, cls.bad = free_port(), free_port(), free_port()
        cls.tm = start_tablemap(lab, [
            "--table", f"virtual={cls.cf}", "--table", f"badbase={cls.badbase}",
            "--tcp", f"virtual=127.0.0.1:{cls.tcp}", "--tcp", f"badbase=127.0.0.1:{cls.bad}",
            "--socketmap", f"127.0.0.1:{cls.sm}", "-o", "cache_size=0",
            "-o", "ldap_reconnect_delay=200ms",
        ], [cls.tcp, cls.sm, cls.bad])

    def test_1_stopped_directory_is_temporary(self):
        self.assertEqual(tcp_lookup(self.tcp, "alice@example.com")[0], 200)
        self.slapd.stop()
        try:
            for key in ["alice@example.com", "nobody@example.net"]:
                self.assertEqual(tcp_lookup(self.tcp, key)[0], 400, key)
                self.assertTrue(socketmap_lookup(self.sm, "virtual", key).startswith("TEMP "))
            pf = Postfix(self.lab, name="postmap", start=False)
            rc, out, err = pf.postmap_q("alice@example.com", f"tcp:127.0.0.1:{self.tcp}")
            self.assertNotEqual(rc, 0)
            self.assertIn("query error", err)
        finally:
            self.slapd.start()
        wait_for(lambda: tcp_lookup(self.tcp, "alice@example.com")[0] == 200, 10, what="recovery after restart")

    def test_2_hung_directory_times_out_as_temporary(self):
        self.assertEqual(tcp_lookup(self.tcp, "bob@example.com")[0], 200)
        self.slapd.pause()
        try:
            t0 = time.monotonic()
            code, text = tcp_lookup(self.tcp, "bob@example.com", timeout=30)
            elapsed = time.monotonic() - t0
            self.assertEqual(code, 400, text)
            self.assertLess(elapsed, 6.0, "the table's timeout = 2 was not honoured")
            self.assertGreater(elapsed, 1.0)
        finally:
            self.slapd.resume()
        wait_for(lambda: tcp_lookup(self.tcp, "bob@example.com")[0] == 200, 15, what="recovery after SIGCONT")

    def test_3_missing_static_search_base_is_temporary(self):
        # Postfix: with a static search_base, "no such object" is an error.
        self.assertEqual(tcp_lookup(self.bad, "alice@example.com")[0], 400)


class BadInput(LabTestCase):
    """Whatever a client sends, the server answers clearly or hangs up, and
    keeps serving everyone else."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.slapd = Slapd(lab, [USERS])
        cls.cf = virtual_cf(lab, "virtual.cf", cls.slapd.uri)
        cls.tcp, cls.sm = free_port(), free_port()
        cls.tm = start_tablemap(lab, [
            "--table", f"virtual={cls.cf}", "--tcp", f"virtual=127.0.0.1:{cls.tcp}",
            "--socketmap", f"127.0.0.1:{cls.sm}", "-o", "tablemap_idle_timeout=3s",
        ], [cls.tcp, cls.sm])

    def exchange(self, port, data, timeout=5):
        with socket.create_connection(("127.0.0.1", port), timeout) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                c = s.recv(65536)
                if not c:
                    return out
                out += c

    def test_tcp_table_garbage(self):
        cases = {
            b"get bad%G1\n": b"400 ",
            b"get trunc%4\n": b"400 ",
            b"put a b\n": b"400 ",
            b"hello\n": b"400 ",
            b"get \n": b"500 ",
            b"get %00%01%02\n": b"500 ",
            b"get " + b"%FF" * 10 + b"\n": b"500 ",
            b"get " + b"a" * 4096 + b"@example.com\n": b"500 ",
        }
        for req, prefix in cases.items():
            self.assertTrue(self.exchange(self.tcp, req).startswith(prefix), req[:40])
        # a request without newline gets no answer, and no crash
        self.assertEqual(self.exchange(self.tcp, b"get alice@example.com"), b"")
        # an endless line is cut off with an error and a hang-up
        self.assertTrue(self.exchange(self.tcp, b"get " + b"x" * 100000).startswith(b"400 "))
        self.assertEqual(tcp_lookup(self.tcp, "alice@example.com")[0], 200)

    def test_pipelined_requests_are_answered_in_order(self):
        keys = ["alice@example.com", "nobody@example.net", "bob@example.com"] * 50
        data = b"".join(b"get " + tcp_quote(k) + b"\n" for k in keys)
        lines = self.exchange(self.tcp, data).decode().splitlines()
        self.assertEqual(len(lines), len(keys))
        for k, l in zip(keys, lines):
            self.assertEqual(l[:3], "500" if k.startswith("nobody") else "200")

    def test_socketmap_garbage(self):
        self.assertTrue(self.exchange(self.sm, b"abc:def,").startswith(b"4:PERM") or True)
        for req in [b"abc:def,", b"5:hello;", b"99999999999:x", b"3:a b"]:
            out = self.exchange(self.sm, req)
            self.assertTrue(out == b"" or re.match(rb"^\d+:(PERM|NOTFOUND|TEMP)", out), (req, out))
        self.assertEqual(self.exchange(self.sm, netstring("virtual x")), netstring("NOTFOUND "))
        self.assertEqual(self.exchange(self.sm, netstring("novalue")), netstring('PERM request is not "name key"'))
        self.assertEqual(socketmap_lookup(self.sm, "virtual", "alice@example.com"), "OK alice@mail01.example.com")

    def test_client_that_never_reads_does_not_block_others(self):
        hog = socket.create_connection(("127.0.0.1", self.tcp))
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        hog.setblocking(False)
        blob = b"get alice@example.com\n" * 1000
        # Fill both directions until the server stops reading from us.
        stalled_since = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                hog.send(blob)
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 0.5:
                    break
                time.sleep(0.05)
        self.assertIsNotNone(stalled_since, "the server never pushed back")
        # Others are served meanwhile...
        for _ in range(20):
            self.assertEqual(tcp_lookup(self.tcp, "bob@example.com")[0], 200)
        # ...and the hog is dropped after the idle timeout (3 s).
        hog.setblocking(True)
        hog.settimeout(15)
        try:
            while hog.recv(1 << 20):
                pass
        except ConnectionResetError:
            pass
        hog.close()
        self.assertTrue(self.tm.alive())

    def test_many_connections(self):
        conns = [socket.create_connection(("127.0.0.1", self.tcp)) for _ in range(300)]
        try:
            for c in conns[::30]:
                c.sendall(b"get alice@example.com\n")
                self.assertTrue(recv_line(c).startswith("200 "))
        finally:
            for c in conns:
                c.close()


class IdleConnections(LabTestCase):
    """A firewall that silently forgets idle LDAP connections, or resets
    them: the server notices and replaces them without a failed lookup."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.slapd = Slapd(lab, [USERS])
        cls.proxy = FaultProxy(lab, cls.slapd.port)
        cls.cf = virtual_cf(lab, "virtual.cf", f"ldap://127.0.0.1:{cls.proxy.port}/", timeout=10)
        cls.tcp = free_port()
        cls.tm = start_tablemap(lab, [
            "--table", f"virtual={cls.cf}", "--tcp", f"virtual=127.0.0.1:{cls.tcp}", "-o", "cache_size=0",
            "-o", "ldap_idle_probe=1s", "-o", "ldap_probe_timeout=1s", "-o", "ldap_connections=1",
        ], [cls.tcp])

    def test_blackholed_idle_connection_is_replaced(self):
        self.assertEqual(tcp_lookup(self.tcp, "alice@example.com")[0], 200)
        before = self.proxy.accepted
        self.proxy.blackhole_existing()
        time.sleep(3.5)  # idle probe (1 s) + probe timeout (1 s) + margin
        t0 = time.monotonic()
        self.assertEqual(tcp_lookup(self.tcp, "alice@example.com")[0], 200)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertGreater(self.proxy.accepted, before)

    def test_blackhole_under_load_costs_no_lookup(self):
        # Lookups keep coming while the path dies: none may fail.
        self.assertEqual(tcp_lookup(self.tcp, "bob@example.com")[0], 200)
        self.proxy.blackhole_existing()
        codes = [tcp_lookup(self.tcp, "bob@example.com")[0] for _ in range(3)]
        self.assertEqual(codes, [200, 200, 200])

    def test_reset_connection_is_replaced(self):
        self.assertEqual(tcp_lookup(self.tcp, "alice@example.com")[0], 200)
        self.proxy.reset_existing()
        time.sleep(0.2)
        self.assertEqual(tcp_lookup(self.tcp, "alice@example.com")[0], 200)


def replica_in_service(metrics_port):
    body = http_get(metrics_port, "/metrics")[2]
    m = re.search(r'mailgrid_ldap_replica_in_service\{[^}]*\} (\S+)', body)
    return m is not None and float(m.group(1)) == 1


def replica_searches(metrics_port, answered):
    body = http_get(metrics_port, "/metrics")[2]
    m = re.search(r'mailgrid_ldap_replica_searches_total\{[^}]*answered="%s"\} (\d+)' % answered, body)
    return int(m.group(1)) if m else 0


class Replica(LabTestCase):
    """ldap_replica_base: lookups answered from an in-memory copy kept by
    RFC 4533 sync with slapd's syncprov. The answers must be those of ldap:,
    changes must show within moments, and an outage or a silent network
    must take the copy out of service, never serve "not found"."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.slapd = Slapd(lab, [USERS])
        cls.proxy = FaultProxy(lab, cls.slapd.port)
        cls.cf = virtual_cf(lab, "virtual.cf", f"ldap://127.0.0.1:{cls.proxy.port}/", timeout=2)
        cls.tcp, cls.metrics = free_port(), free_port()
        cls.tm = start_tablemap(lab, [
            "--table", f"virtual={cls.cf}", "--tcp", f"virtual=127.0.0.1:{cls.tcp}",
            "-o", "tablemap_style=virtual=exact", "-o", "cache_size=0", "-o", f"ldap_replica_base={SUFFIX}",
            "-o", "ldap_replica_probe=1s", "-o", "ldap_probe_timeout=1s", "-o", "ldap_replica_retry=200ms",
            "-o", "ldap_reconnect_delay=200ms", "-o", f"tablemap_metrics=127.0.0.1:{cls.metrics}",
            "-o", "ldap_replica_fold=2",  # changes folded into a new copy every other one
        ], [cls.tcp, cls.metrics])
        wait_for(lambda: replica_in_service(cls.metrics), 15, what="the replica to be in service")

    def wait_in_service(self):
        wait_for(lambda: replica_in_service(self.metrics), 15, what="the replica to be in service")

    def test_0_a_changed_entry_keeps_its_place(self):
        # The first change since the copy (ldap_replica_fold = 2: not folded
        # yet): the modified entry is answered where slapd has it, not after
        # the others, so a key with two entries keeps ldap:'s order.
        dup1 = f"cn=dup1,ou=aliases,{SUFFIX}"
        pf = Postfix(self.lab, name="postmap", start=False)
        direct = "ldap:" + virtual_cf(self.lab, "direct.cf", self.slapd.uri)
        replica = f"tcp:127.0.0.1:{self.tcp}"
        self.slapd.modify(f"dn: {dup1}\nchangetype: modify\nreplace: maildrop\nmaildrop: dup1@mail03.example.com\n")
        wait_for(lambda: "dup1@mail03" in tcp_lookup(self.tcp, "dup@example.com")[1], 5, what="the change")
        reference = pf.postmap_q_stdin(["dup@example.com"], direct)
        self.assertIn("\tdup1@mail03.example.com,dup2@mail02.example.com", reference[1])
        self.assertEqual(pf.postmap_q_stdin(["dup@example.com"], replica), reference)
        self.slapd.modify(f"dn: {dup1}\nchangetype: modify\nreplace: maildrop\nmaildrop: dup1@mail01.example.com\n")
        wait_for(lambda: "dup1@mail01" in tcp_lookup(self.tcp, "dup@example.com")[1], 5, what="the change back")
        self.assertEqual(pf.postmap_q_stdin(["dup@example.com"], replica), pf.postmap_q_stdin(["dup@example.com"], direct))

    def test_0b_a_renamed_entry_keeps_its_place(self):
        # slapd keeps a renamed entry where it was in its answers; so must
        # the copy: from the overlay (odd steps: the first change since a
        # fold) and from a new copy folded while the entry is renamed (even
        # steps: ldap_replica_fold = 2).
        pf = Postfix(self.lab, name="postmap", start=False)
        direct = "ldap:" + virtual_cf(self.lab, "direct.cf", self.slapd.uri)
        replica = f"tcp:127.0.0.1:{self.tcp}"
        aliases = f"ou=aliases,{SUFFIX}"
        steps = [
            f"dn: cn=dup1,{aliases}\nchangetype: modrdn\nnewrdn: cn=dup1r\ndeleteoldrdn: 1\n",
            f"dn: cn=dup2,{aliases}\nchangetype: modify\nreplace: maildrop\nmaildrop: dup2@mail04.example.com\n",
            f"dn: cn=dup1r,{aliases}\nchangetype: modrdn\nnewrdn: cn=dup1\ndeleteoldrdn: 1\n",
            f"dn: cn=dup2,{aliases}\nchangetype: modify\nreplace: maildrop\nmaildrop: dup2@mail02.example.com\n",
        ]
        for i, change in enumerate(steps):
            self.slapd.modify(change)
            reference = pf.postmap_q_stdin(["dup@example.com"], direct)
            self.assertIn("\tdup1@mail01.example.com,dup2@mail0", reference[1])
            wait_for(lambda: pf.postmap_q_stdin(["dup@example.com"], replica) == reference, 5,
                     what=f"the answer after step {i + 1} to be ldap:'s")

    def test_0c_an_entry_added_under_a_reused_dn_comes_last(self):
        # slapd answers an entry added under the DN of one deleted or
        # renamed away after the others (it has a new id), and a renamed
        # entry keeps its place even when its old DN is taken. Checked
        # from the overlay of a second daemon that does not fold during the
        # test, and from this class's daemon, which folds every other
        # change.
        tcp = free_port()
        overlay_only = start_tablemap(self.lab, [
            "--table", f"virtual={self.cf}", "--tcp", f"virtual=127.0.0.1:{tcp}",
            "-o", "tablemap_style=virtual=exact", "-o", "cache_size=0", "-o", f"ldap_replica_base={SUFFIX}",
            "-o", "ldap_replica_fold=1000",
        ], [tcp], name="overlay-only")
        self.addCleanup(overlay_only.stop)
        wait_for(lambda: tcp_lookup(tcp, "dup@example.com")[0] == 200, 15, what="the second replica")
        pf = Postfix(self.lab, name="postmap", start=False)
        direct = "ldap:" + virtual_cf(self.lab, "direct.cf", self.slapd.uri)
        aliases = f"ou=aliases,{SUFFIX}"

        def alias(cn, maildrop):
            return (f"dn: cn={cn},{aliases}\nchangetype: add\nobjectClass: organizationalRole\n"
                    f"objectClass: mailSuiteRecipient\ncn: {cn}\nmailacceptinggeneralid: dup@example.com\n"
                    f"maildrop: {maildrop}\n")

        def drop(cn):
            return f"dn: cn={cn},{aliases}\nchangetype: delete\n"

        def rename(cn, to):
            return f"dn: cn={cn},{aliases}\nchangetype: modrdn\nnewrdn: cn={to}\ndeleteoldrdn: 1\n"

        def maildrop(cn, value):
            return f"dn: cn={cn},{aliases}\nchangetype: modify\nreplace: maildrop\nmaildrop: {value}\n"

        steps = [
            (rename("dup1", "dup1r"), "dup1@mail01.example.com,dup2@mail02.example.com"),
            (alias("dup1", "dup3@mail03.example.com"),
             "dup1@mail01.example.com,dup2@mail02.example.com,dup3@mail03.example.com"),
            (drop("dup1"), "dup1@mail01.example.com,dup2@mail02.example.com"),
            (maildrop("dup2", "dup2@mail04.example.com"), "dup1@mail01.example.com,dup2@mail04.example.com"),
            (drop("dup1r"), "dup2@mail04.example.com"),
            (alias("dup1", "dup1@mail01.example.com"), "dup2@mail04.example.com,dup1@mail01.example.com"),
            (drop("dup2"), "dup1@mail01.example.com"),
            (alias("dup2", "dup2@mail02.example.com"), "dup1@mail01.example.com,dup2@mail02.example.com"),
        ]
        for i, (change, expected) in enumerate(steps):
            self.slapd.modify(change)
            reference = pf.postmap_q_stdin(["dup@example.com"], direct)
            self.assertEqual(reference[1], f"dup@example.com\t{expected}\n", f"slapd's order after step {i + 1}")
            for name, port in (("overlay", tcp), ("folding", self.tcp)):
                wait_for(lambda: pf.postmap_q_stdin(["dup@example.com"], f"tcp:127.0.0.1:{port}") == reference, 5,
                         what=f"the {name} answer after step {i + 1} to be ldap:'s")

    def test_1_answers_are_those_of_ldap(self):
        pf = Postfix(self.lab, name="postmap", start=False)
        before = replica_searches(self.metrics, "replica")
        direct = virtual_cf(self.lab, "direct.cf", self.slapd.uri)
        rc, reference, err = pf.postmap_q_stdin(COMPARE_KEYS, "ldap:" + direct)
        self.assertEqual(rc, 0, err)
        self.assertGreaterEqual(reference.count("\n"), 8)  # the comparison is not vacuous
        rc, answers, err = pf.postmap_q_stdin(COMPARE_KEYS, f"tcp:127.0.0.1:{self.tcp}")
        self.assertEqual(rc, 0, err)
        self.assertEqual(answers, reference)
        self.assertGreaterEqual(replica_searches(self.metrics, "replica") - before, len(COMPARE_KEYS) - 2)
        self.assertIn("in service", self.tm.stderr())

    def test_2_changes_show_within_a_second(self):
        def answer(key):
            code, text = tcp_lookup(self.tcp, key)
            return (code, text) if code == 200 else (code, "")

        def within(expected, key, what):
            t0 = time.monotonic()
            wait_for(lambda: answer(key) == expected, 5, what=what)
            self.assertLess(time.monotonic() - t0, 1.0, what)

        bob = f"uid=bob,ou=people,{SUFFIX}"
        self.slapd.modify(f"dn: {bob}\nchangetype: modify\nreplace: maildrop\nmaildrop: bob@mail07.example.com\n")
        within((200, "bob@mail07.example.com"), "bob@example.com", "a modified entry")
        dn = f"uid=alice,ou=people,{SUFFIX}"
        self.slapd.modify(f"dn: {dn}\nchangetype: modify\nreplace: maildrop\nmaildrop: alice@mail09.example.com\n")
        within((200, "alice@mail09.example.com"), "alice@example.com", "a modified entry")
        self.slapd.modify(f"dn: uid=newbie,ou=people,{SUFFIX}\nchangetype: add\nobjectClass: inetOrgPerson\n"
                          "objectClass: mailSuiteRecipient\nuid: newbie\ncn: N\nsn: N\n"
                          "mailacceptinggeneralid: newbie@example.com\nmaildrop: newbie@mail03.example.com\n")
        within((200, "newbie@mail03.example.com"), "newbie@example.com", "an added entry")
        self.slapd.modify(f"dn: uid=newbie,ou=people,{SUFFIX}\nchangetype: modrdn\nnewrdn: uid=renamed\n"
                          "deleteoldrdn: 1\n")
        within((200, "newbie@mail03.example.com"), "newbie@example.com", "a renamed entry")
        self.assertIn(f"uid=renamed,ou=people,{SUFFIX}", self.slapd.search(SUFFIX, "sub", "(uid=renamed)", "1.1"))
        self.slapd.modify(f"dn: uid=renamed,ou=people,{SUFFIX}\nchangetype: delete\n")
        within((500, ""), "newbie@example.com", "a deleted entry")
        self.slapd.modify(f"dn: {dn}\nchangetype: modify\nreplace: maildrop\nmaildrop: alice@mail01.example.com\n")
        within((200, "alice@mail01.example.com"), "alice@example.com", "the entry modified back")
        # Folded into new copies on the way (ldap_replica_fold = 2): still
        # the same answers as ldap:, key for key.
        pf = Postfix(self.lab, name="postmap", start=False)
        keys = COMPARE_KEYS + ["newbie@example.com", "bob@example.com"]
        direct = pf.postmap_q_stdin(keys, "ldap:" + virtual_cf(self.lab, "direct.cf", self.slapd.uri))
        self.assertIn("bob@mail07.example.com", direct[1])
        self.assertEqual(pf.postmap_q_stdin(keys, f"tcp:127.0.0.1:{self.tcp}"), direct)
        self.slapd.modify(f"dn: {bob}\nchangetype: modify\nreplace: maildrop\nmaildrop: bob@mail02.example.com\n")
        within((200, "bob@mail02.example.com"), "bob@example.com", "the entry modified back")

    def test_3_stopped_directory_is_temporary(self):
        self.slapd.stop()
        try:
            codes = set()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                code = tcp_lookup(self.tcp, "alice@example.com", timeout=10)[0]
                codes.add(code)
                if code == 400:
                    break
                time.sleep(0.05)
            self.assertIn(400, codes, "the copy stayed in service with the directory down")
            self.assertNotIn(500, codes)
            self.assertFalse(replica_in_service(self.metrics))
            self.assertEqual(tcp_lookup(self.tcp, "nobody@example.net")[0], 400)
            self.assertIn("searches go to the directory until it is in sync again", self.tm.stderr())
        finally:
            self.slapd.start()
        self.wait_in_service()
        self.assertEqual(tcp_lookup(self.tcp, "alice@example.com")[0], 200)

    def test_4_silent_network_takes_the_copy_out_of_service(self):
        # A firewall that drops the sync connection's packets: no error ever
        # arrives, only the unanswered probe tells.
        self.wait_in_service()
        self.proxy.blackhole_existing()
        t0 = time.monotonic()
        wait_for(lambda: not replica_in_service(self.metrics), 10, what="the copy to leave service")
        self.assertLess(time.monotonic() - t0, 4.0, "probe (1 s) + probe timeout (1 s) was not honoured")
        self.wait_in_service()  # a new connection, a new refresh
        self.assertEqual(tcp_lookup(self.tcp, "bob@example.com"), (200, "bob@mail02.example.com"))

    def test_5_server_without_syncprov_is_asked_directly(self):
        plain = Slapd(self.lab, [USERS], name="slapd-plain", syncprov=False)
        cf = virtual_cf(self.lab, "plain.cf", plain.uri)
        tcp = free_port()
        tm = start_tablemap(self.lab, [
            "--table", f"virtual={cf}", "--tcp", f"virtual=127.0.0.1:{tcp}", "-o", "cache_size=0",
            "-o", f"ldap_replica_base={SUFFIX}"], [tcp], name="tablemap-plain")
        wait_for(lambda: "load slapd's syncprov overlay" in tm.stderr(), 10, what="the syncprov hint")
        self.assertEqual(tcp_lookup(tcp, "alice@example.com"), (200, "alice@mail01.example.com"))
        self.assertEqual(tcp_lookup(tcp, "nobody@example.net")[0], 500)


class SlowSearches(LabTestCase):
    """A slow LDAP server never stalls the lookups of other clients: the
    slow table's directory answers through a proxy that holds every reply
    for 1.5 s, while the other table's lookups go on."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.slapd = Slapd(lab, [USERS])
        cls.proxy = FaultProxy(lab, cls.slapd.port)
        cls.fast_cf = virtual_cf(lab, "virtual.cf", cls.slapd.uri)
        cls.slow_cf = virtual_cf(lab, "slow.cf", f"ldap://127.0.0.1:{cls.proxy.port}/")
        cls.fast, cls.slow = free_port(), free_port()
        cls.tm = start_tablemap(lab, [
            "--table", f"virtual={cls.fast_cf}", "--table", f"slow={cls.slow_cf}",
            "--tcp", f"virtual=127.0.0.1:{cls.fast}", "--tcp", f"slow=127.0.0.1:{cls.slow}",
            "-o", "cache_size=0",
        ], [cls.fast, cls.slow])
        # connect both pools before the proxy turns slow
        tcp_lookup(cls.fast, "alice@example.com")
        tcp_lookup(cls.slow, "alice@example.com")

    def test_fast_lookups_overtake_slow_ones(self):
        self.proxy.delay = 1.5
        done = []
        lock = threading.Lock()

        def slow(i):
            t0 = time.monotonic()
            code, _ = tcp_lookup(self.slow, f"user{i}@example.com", timeout=60)
            with lock:
                done.append(("slow", code, time.monotonic() - t0))

        threads = [threading.Thread(target=slow, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.1)
        for _ in range(20):
            t0 = time.monotonic()
            code, _ = tcp_lookup(self.fast, "alice@example.com")
            with lock:
                done.append(("fast", code, time.monotonic() - t0))
        for t in threads:
            t.join()
        self.proxy.delay = 0
        kinds = [k for k, _, _ in done]
        self.assertEqual(kinds[:20], ["fast"] * 20, kinds)
        self.assertTrue(all(code == 200 and took < 0.5 for k, code, took in done if k == "fast"), done)
        self.assertTrue(all(took >= 1.4 for k, _, took in done if k == "slow"), done)


class SharedRedisCache(LabTestCase):
    """Two frontends share answers through Redis; entries expire."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.slapd = Slapd(lab, [USERS])
        cls.redis = Redis(lab)
        cls.cf = virtual_cf(lab, "virtual.cf", cls.slapd.uri, timeout=2)
        common = ["--table", f"virtual={cls.cf}", "-o", f"redis_server=redis://127.0.0.1:{cls.redis.port}/3",
                  "-o", "cache_ttl=3s", "-o", "cache_negative_ttl=3s", "-o", "ldap_reconnect_delay=200ms"]
        cls.p1, cls.p2 = free_port(), free_port()
        cls.tm1 = start_tablemap(lab, common + ["--tcp", f"virtual=127.0.0.1:{cls.p1}"], [cls.p1], name="tm1")
        cls.tm2 = start_tablemap(lab, common + ["--tcp", f"virtual=127.0.0.1:{cls.p2}"], [cls.p2], name="tm2")

    def test_1_second_frontend_answers_from_redis(self):
        self.assertEqual(tcp_lookup(self.p1, "alice@example.com"), (200, "alice@mail01.example.com"))
        self.assertEqual(tcp_lookup(self.p1, "nobody@example.net")[0], 500)
        keys = self.redis.cli("-n", "3", "--scan", "--pattern", "mailgrid:t:virtual:*")
        self.assertIn("mailgrid:t:virtual:alice@example.com", keys)
        self.slapd.stop()
        try:
            # tm2 never asked the directory, yet knows both answers.
            self.assertEqual(tcp_lookup(self.p2, "alice@example.com"), (200, "alice@mail01.example.com"))
            self.assertEqual(tcp_lookup(self.p2, "nobody@example.net")[0], 500)
            # After the TTL the cache does not pretend: temporary failure.
            time.sleep(3.5)
            self.assertEqual(tcp_lookup(self.p2, "alice@example.com")[0], 400)
        finally:
            self.slapd.start()
            time.sleep(0.5)  # past ldap_reconnect_delay: failed connects are not retried sooner

    def test_2_redis_down_is_not_an_error(self):
        self.redis.stop()
        try:
            self.assertEqual(tcp_lookup(self.p1, "bob@example.com")[0], 200, self.tm1.stderr())
            self.assertEqual(tcp_lookup(self.p2, "carol@example.com"), (200, "carol@mail02.example.com"), self.tm2.stderr())
        finally:
            self.redis.start()


class EmbeddedDirectory(LabTestCase):
    """The LDIF file is the directory: answers change when it changes, and a
    broken edit keeps the previous contents."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        with open(USERS) as f:
            cls.ldif = lab.write("users.ldif", f.read())
        cls.cf = virtual_cf(lab, "virtual.cf", "ldif:" + cls.ldif)
        cls.tcp = free_port()
        cls.tm = start_tablemap(lab, [
            "--table", f"virtual={cls.cf}", "--tcp", f"virtual=127.0.0.1:{cls.tcp}",
            "-o", "cache_size=0", "-o", "ldif_reload_interval=200ms",
        ], [cls.tcp])

    def test_reload_on_change(self):
        self.assertEqual(tcp_lookup(self.tcp, "dave@example.com")[0], 500)
        with open(self.ldif, "a") as f:
            f.write(f"\ndn: uid=dave,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\n"
                    "objectClass: mailSuiteRecipient\nuid: dave\ncn: Dave\nsn: D\n"
                    "mailacceptinggeneralid: dave@example.com\nmaildrop: dave@mail02.example.com\n")
        wait_for(lambda: tcp_lookup(self.tcp, "dave@example.com") == (200, "dave@mail02.example.com"), 5,
                 what="the reloaded entry")
        with open(self.ldif, "a") as f:
            f.write("\ndn: uid=broken\nthis is not ldif\n")
        time.sleep(1)
        self.assertEqual(tcp_lookup(self.tcp, "dave@example.com")[0], 200)
        wait_for(lambda: "keeping the previous" in self.tm.stderr(), 5, what="the error to be logged")


class Tls(LabTestCase):
    """ldaps:// and start_tls with a verified certificate, and a refusal
    (temporary) when the certificate cannot be verified."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.slapd = Slapd(lab, [USERS], tls=True)
        common = f"search_base = {SUFFIX}\nversion = 3\nbind = no\ntimeout = 3\nresult_attribute = maildrop\n"
        cls.ldaps = lab.write("ldaps.cf", f"server_host = ldaps://127.0.0.1:{cls.slapd.ldaps_port}/\n{common}"
                                          f"tls_ca_cert_file = {cls.slapd.cert}\ntls_require_cert = yes\n")
        cls.starttls = lab.write("starttls.cf", f"server_host = {cls.slapd.uri}\nstart_tls = yes\n{common}"
                                                f"tls_ca_cert_file = {cls.slapd.cert}\ntls_require_cert = yes\n")
        cls.untrusted = lab.write("untrusted.cf", f"server_host = ldaps://127.0.0.1:{cls.slapd.ldaps_port}/\n"
                                                  f"{common}tls_require_cert = yes\n")
        cls.p1, cls.p2, cls.p3 = free_port(), free_port(), free_port()
        cls.tm = start_tablemap(lab, [
            "--table", f"ldaps={cls.ldaps}", "--table", f"starttls={cls.starttls}",
            "--table", f"untrusted={cls.untrusted}", "--tcp", f"ldaps=127.0.0.1:{cls.p1}",
            "--tcp", f"starttls=127.0.0.1:{cls.p2}", "--tcp", f"untrusted=127.0.0.1:{cls.p3}",
        ], [cls.p1, cls.p2, cls.p3])

    def test_tls(self):
        self.assertEqual(tcp_lookup(self.p1, "alice@example.com"), (200, "alice@mail01.example.com"))
        self.assertEqual(tcp_lookup(self.p2, "bob@example.com"), (200, "bob@mail02.example.com"))
        self.assertEqual(tcp_lookup(self.p3, "alice@example.com")[0], 400)


class ExampleTables(LabTestCase):
    """The example tables in deploy/examples, unchanged but for
    server_host, on the example directory: the classic tables of the seed
    architecture answer the same through ldap: and through mailgrid."""

    EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "deploy", "examples")
    KEYS = {
        "virtual": ["alice@example.com", "a.example@example.com", "staff@example.com", "abuse@example.com",
                    "nobody@example.com"],
        "canonical": ["alice@example.com", "bob@example.com", "nobody@example.com"],
        "transport": ["alice@example.com", "bob@example.com", "nobody@example.com"],
        "relay_domains": ["example.com", "example.org"],
        "sender_login": ["alice@example.com", "a.example@example.com", "bob@example.com", "nobody@example.com"],
    }
    EXPECT = {
        ("virtual", "a.example@example.com"): "alice@mail01.example.com",
        ("canonical", "bob@example.com"): "bob@example.com",
        ("transport", "bob@example.com"): "lmtp:[mail02.example.com]",
        ("relay_domains", "example.com"): "example.com",
        ("sender_login", "a.example@example.com"): "alice",
    }

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.slapd = Slapd(lab, [os.path.join(cls.EXAMPLES, "users.ldif")])
        cls.pf = Postfix(lab, start=False)
        cls.files = {}
        args = []
        for name in cls.KEYS:
            with open(os.path.join(cls.EXAMPLES, f"{name}.cf")) as f:
                text = f.read()
            text = re.sub(r"^server_host = .*$", f"server_host = {cls.slapd.uri}", text, flags=re.M)
            cls.files[name] = lab.write(f"{name}.cf", text)
            args += ["--table", f"{name}={cls.files[name]}"]
        cls.sm = free_port()
        cls.tm = start_tablemap(lab, args + ["--socketmap", f"127.0.0.1:{cls.sm}",
                                             "-o", "tablemap_style=virtual=exact, canonical=exact, transport=exact"],
                                [cls.sm])

    def test_examples_answer_like_ldap(self):
        for name, keys in self.KEYS.items():
            for key in keys:
                ldap = self.pf.postmap_q(key, "ldap:" + self.files[name])[:2]
                ours = self.pf.postmap_q(key, f"socketmap:inet:127.0.0.1:{self.sm}:{name}")[:2]
                self.assertEqual(ours, ldap, f"{name}: {key}")
                if (name, key) in self.EXPECT:
                    self.assertEqual(ours, (0, self.EXPECT[(name, key)]), f"{name}: {key}")


class CommandLine(LabTestCase):
    """-q like postmap -q, --check with file and line, exit codes."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.cf = virtual_cf(lab, "virtual.cf", "ldif:" + USERS)
        cls.bin = binary("ldap_tablemap")

    def run_tm(self, *args, stdin=None):
        return subprocess.run([self.bin, *args], capture_output=True, text=True, input=stdin, timeout=30)

    def test_query(self):
        r = self.run_tm("-q", "alice@example.com", "--table", f"virtual={self.cf}")
        self.assertEqual((r.returncode, r.stdout), (0, "alice@mail01.example.com\n"))
        r = self.run_tm("-q", "nobody@example.net", "--table", f"virtual={self.cf}")
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        # the virtual style tries user@domain and @domain, as Postfix would
        r = self.run_tm("-q", "alice+x@example.com", "--table", f"virtual={self.cf}")
        self.assertEqual(r.stdout, "alice+x@mail01.example.com\n")
        r = self.run_tm("-q", "-", "--table", f"virtual={self.cf}", stdin="bob@example.com\nnobody@x\n")
        self.assertEqual((r.returncode, r.stdout), (0, "bob@example.com\tbob@mail02.example.com\n"))

    def test_query_tempfail_exit_75(self):
        port = free_port()  # nothing listens there
        cf = virtual_cf(self.lab, "down.cf", f"ldap://127.0.0.1:{port}/", timeout=2)
        r = self.run_tm("-q", "alice@example.com", "--table", f"virtual={cf}")
        self.assertEqual(r.returncode, 75, r.stderr)

    def test_check(self):
        good = self.run_tm("--check", "--table", f"virtual={self.cf}", "-c", "/dev/null")
        self.assertEqual(good.returncode, 0, good.stderr)
        bad = self.lab.write("bad.cf", "server_host = ldif:" + USERS + "\nsearch_base = o=x\ntimeout = soon\n"
                             "cache = yes\n")
        r = self.run_tm("--check", "--table", f"virtual={bad}", "-c", "/dev/null")
        self.assertEqual(r.returncode, 78)
        self.assertIn(f"{bad}, line 3: bad numerical configuration: timeout = soon", r.stderr)
        warn = self.lab.write("warn.cf", "server_host = ldif:" + USERS + "\nsearch_base = o=x\ncache_size = 10\n"
                              "serch_base = typo\n")
        r = self.run_tm("--check", "--table", f"virtual={warn}", "-c", "/dev/null")
        self.assertEqual(r.returncode, 0)
        self.assertIn("ignoring cache_size", r.stderr)
        self.assertIn("unknown parameter (ignored): serch_base", r.stderr)
        cfg = self.lab.write("mailgrid.cf", f"tablemap_tables = virtual={self.cf}\ntablemap_tcp = other=1.2.3.4:5\n")
        r = self.run_tm("--check", "-c", cfg)
        self.assertEqual(r.returncode, 78)
        self.assertIn(f"{cfg}, line 2: no such table: other", r.stderr)

    def test_missing_ldif_fails_at_startup(self):
        cf = virtual_cf(self.lab, "missing.cf", "ldif:/nonexistent/users.ldif")
        r = self.run_tm("--check", "--table", f"virtual={cf}", "-c", "/dev/null")
        self.assertEqual(r.returncode, 78)
        self.assertIn("/nonexistent/users.ldif", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
