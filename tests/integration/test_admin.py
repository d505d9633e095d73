#!/usr/bin/env python3
"""mailgrid, the admin command, against real directories and real Maildir
stores: accounts made, shown, changed and removed with the entry and the
mailbox in step; placement; bulk import; bad input refused with a clear
line and nothing half made; a move killed after each of its steps and
resumed ends exactly where an uninterrupted move does; ldap_tablemap obeys
the hold list a move writes.

The move under a real mail stream through Postfix, and Cyrus moves with
XFER, are in test_farm.py (tests 7 and 8)."""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ADMIN_DN, ADMIN_PW, SUFFIX, LabTestCase, Slapd, binary, free_port,  # noqa: E402
                     socketmap_lookup, start_tablemap, wait_for)

BASE = f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: uid=reader,{SUFFIX}
objectClass: inetOrgPerson
uid: reader
cn: reader
sn: reader
userPassword: readerpw
"""

STEPS = ["hold", "copy", "flip", "sync", "release", "verify", "cleanup"]


def ssha512_ok(stored, password):
    assert stored.startswith("{SSHA512}"), stored
    raw = base64.b64decode(stored[9:])
    digest, salt = raw[:64], raw[64:]
    return hashlib.sha512(password.encode() + salt).digest() == digest


def tree(path):
    """{relative path: sha256} of the files of a Maildir (tmp/ left out)."""
    out = {}
    for dirpath, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != "tmp"]
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = hashlib.sha256(fh.read()).hexdigest()
    return out


class Admin(LabTestCase):
    """The embedded LDIF directory, a hold file, two Maildir backends."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.ldif = lab.write("users.ldif", BASE)
        cls.md = {n: lab.path(n) for n in ("md01", "md02", "md03")}
        for p in cls.md.values():
            os.makedirs(p)
        cls.cf = lab.write("mailgrid.cf", f"""admin_server_host = ldif:{cls.ldif}
admin_search_base = {SUFFIX}
admin_backends = md01.example.com=maildir:{cls.md['md01']},
    md02.example.com=maildir:{cls.md['md02']}, md03.example.com=maildir:{cls.md['md03']}
admin_state_dir = {lab.path('moves')}
hold_file = {lab.path('hold')}
tablemap_hold_poll = 100ms
admin_hold_settle = 0
""")

    def mg(self, *args, stdin=None, env=None, check=None):
        e = dict(os.environ)
        e.update(env or {})
        r = subprocess.run([binary("mailgrid"), "-c", self.cf, *args], input=stdin, capture_output=True, text=True,
                           timeout=120, env=e)
        if check is not None:
            self.assertEqual(r.returncode, check, f"mailgrid {' '.join(args)}: {r.stdout}{r.stderr}")
        return r

    def entry_count(self, address):
        with open(self.ldif) as f:
            return f.read().lower().count(f"\nmail: {address}\n")

    def add(self, address, *extra, backend="md01"):
        return self.mg("user", "add", address, "--backend", backend, "--no-password", *extra, check=0)

    def test_add_show_change_remove(self):
        r = self.mg("user", "add", "carol@example.com", "--backend", "md01", "--quota", "2G", "--alias",
                    "c@example.com", "--name", "Carol Jones", "--password-stdin", stdin="s3cret\n", check=0)
        self.assertEqual(r.stdout, "carol@example.com added on md01.example.com\n")
        show = json.loads(self.mg("--json", "user", "show", "carol@example.com", check=0).stdout)
        self.assertEqual(show["backend"], "md01.example.com")
        self.assertEqual(show["maildrop"], ["carol@md01.example.com"])
        self.assertEqual(show["aliases"], ["c@example.com"])
        self.assertEqual(show["quota"], 2 << 30)
        self.assertEqual(show["password_scheme"], "SSHA512")
        maildir = os.path.join(self.md["md01"], "example.com", "ca", "carol")
        self.assertEqual(show["maildir"], maildir)
        for sub in ("new", "cur", "tmp"):
            self.assertTrue(os.path.isdir(os.path.join(maildir, sub)))
        with open(os.path.join(maildir, "maildirsize")) as f:
            self.assertEqual(f.readline().strip(), f"{2 << 30}S")
        # The password is stored hashed, never as typed.
        with open(self.ldif) as f:
            text = f.read()
        self.assertNotIn("s3cret", text)
        stored = [ln for ln in text.split("dn: uid=carol,")[1].split("\n\n")[0].splitlines()
                  if ln.startswith("userPassword: ")][0].split(": ", 1)[1]
        self.assertTrue(ssha512_ok(stored, "s3cret"))

        self.mg("user", "passwd", "carol@example.com", "--password-stdin", stdin="n3w\n", check=0)
        with open(self.ldif) as f:
            stored = [ln for ln in f.read().split("dn: uid=carol,")[1].split("\n\n")[0].splitlines()
                      if ln.startswith("userPassword: ")][0].split(": ", 1)[1]
        self.assertTrue(ssha512_ok(stored, "n3w"))
        self.mg("user", "quota", "carol@example.com", "500M", check=0)
        self.mg("user", "alias", "carol@example.com", "--add", "cj@example.com", "--remove", "c@example.com", check=0)
        show = json.loads(self.mg("--json", "user", "show", "carol@example.com", check=0).stdout)
        self.assertEqual((show["quota"], show["aliases"]), (500 << 20, ["cj@example.com"]))
        users = json.loads(self.mg("--json", "user", "list", "--backend", "md01", check=0).stdout)
        self.assertIn("carol@example.com", [u["address"] for u in users])

        with open(os.path.join(maildir, "new", "1.M1P1.h,S=5"), "w") as f:
            f.write("mail\n")
        r = self.mg("user", "remove", "carol@example.com", check=0)
        self.assertIn("attic", r.stdout)
        self.assertEqual(self.entry_count("carol@example.com"), 0)
        self.assertFalse(os.path.exists(maildir))
        attic = os.listdir(os.path.join(self.md["md01"], ".attic"))
        kept = [a for a in attic if a.endswith("-carol@example.com")]
        self.assertEqual(len(kept), 1)
        self.assertTrue(os.path.exists(os.path.join(self.md["md01"], ".attic", kept[0], "new", "1.M1P1.h,S=5")))
        self.mg("user", "show", "carol@example.com", check=67)

        self.add("purged@example.com")
        self.mg("user", "remove", "purged@example.com", "--purge", check=0)
        self.assertFalse([a for a in os.listdir(os.path.join(self.md["md01"], ".attic")) if "purged" in a])

    def test_bad_input_is_refused_and_nothing_is_half_made(self):
        self.add("dup@example.com")
        r = self.mg("user", "add", "dup@example.com", "--no-password", check=73)
        self.assertEqual(r.stderr.count("\n"), 1)
        self.assertIn("exists", r.stderr)
        self.assertEqual(self.entry_count("dup@example.com"), 1)
        for bad in ("nodomain", "a@@example.com", "../x@example.com", "a b@example.com", "x@localhost"):
            r = self.mg("user", "add", bad, "--no-password", check=65)
            self.assertIn("invalid address", r.stderr)
        r = self.mg("user", "add", "who@example.com", "--backend", "md99", "--no-password", check=64)
        self.assertIn("unknown backend md99", r.stderr)
        r = self.mg("user", "add", "pw@example.com", "--password", "hunter2", check=64)
        self.assertIn("--password-stdin", r.stderr)
        self.assertEqual(self.entry_count("pw@example.com"), 0)
        # A backend that is down: nothing written anywhere.
        r = self.mg("-o", f"admin_backends=md01.example.com=maildir:{self.lab.path('gone')}", "user", "add",
                    "down@example.com", "--backend", "md01", "--no-password", check=69)
        self.assertIn("is down", r.stderr)
        self.assertEqual(self.entry_count("down@example.com"), 0)
        # The mailbox cannot be made (a file where the domain directory
        # goes): the entry made before it is taken back.
        odd = self.lab.path("odd")
        os.makedirs(odd)
        with open(os.path.join(odd, "example.org"), "w") as f:
            f.write("in the way\n")
        r = self.mg("-o", f"admin_backends=odd.example.com=maildir:{odd}", "user", "add", "half@example.org",
                    "--no-password", check=73)
        self.assertIn("taken back", r.stderr)
        self.assertEqual(self.entry_count("half@example.org"), 0)

    def test_placement_and_dry_run(self):
        cf_extra = ["-o", f"admin_backends=p1.example.com=maildir:{self.md['md01']}, p2.example.com=maildir:{self.md['md02']}"]
        r = self.mg(*cf_extra, "--json", "user", "add", "plan@example.com", "--dry-run", check=0)
        plan = json.loads(r.stdout)
        self.assertTrue(plan["dry_run"])
        self.assertIn(plan["backend"], ("p1.example.com", "p2.example.com"))
        self.assertIn("fewest users", plan["why"])
        self.assertEqual(self.entry_count("plan@example.com"), 0)
        placed = []
        for n in range(6):
            r = self.mg(*cf_extra, "user", "add", f"p{n}@example.com", "--no-password", check=0)
            placed.append(r.stdout.split()[-1])
        self.assertEqual(sorted(placed), ["p1.example.com"] * 3 + ["p2.example.com"] * 3)
        # Weighted: p2 counts three times as much.
        w = cf_extra + ["-o", "admin_placement=weighted", "-o", "admin_backend_weights=p2.example.com=3"]
        more = [self.mg(*w, "user", "add", f"w{n}@example.com", "--no-password", check=0).stdout.split()[-1]
                for n in range(4)]
        self.assertEqual(more.count("p2.example.com"), 4)
        backends = {b["backend"]: b for b in json.loads(self.mg(*cf_extra, "--json", "backend", "list", check=0).stdout)}
        self.assertEqual(backends["p2.example.com"]["users"], 7)
        self.assertTrue(backends["p1.example.com"]["up"])

    def test_import_csv_and_ldif(self):
        csv_path = self.lab.write("users.csv", "address,password,quota,backend,name,aliases\n"
                                               "i1@example.net,pw1,1G,md02,Ida One,i.one@example.net\n"
                                               "i2@example.net,pw2,,,,\n"
                                               "not-an-address,pw3,,,,\n"
                                               "\"i3@example.net\",\"p,w\",2M,,\"Three, Ida\",\"x3@example.net;y3@example.net\"\n")
        r = self.mg("--json", "import", csv_path, check=65)
        rep = json.loads(r.stdout)
        self.assertEqual((rep["added"], rep["failed"]), (3, 1))
        self.assertIn("line 4", rep["errors"][0])
        i3 = json.loads(self.mg("--json", "user", "show", "i3@example.net", check=0).stdout)
        self.assertEqual((i3["name"], i3["aliases"], i3["quota"]), ("Three, Ida", ["x3@example.net", "y3@example.net"], 2 << 20))
        self.assertTrue(os.path.isdir(os.path.join(self.md["md02"], "example.net", "i1", "i1", "cur")))
        # Again: every address exists now, nothing is added twice.
        rep = json.loads(self.mg("--json", "import", csv_path, check=65).stdout)
        self.assertEqual(rep["added"], 0)
        self.assertEqual(self.entry_count("i1@example.net"), 1)
        ldif = self.lab.write("more.ldif", f"dn: uid=l1,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\n"
                                           "objectClass: mailSuiteRecipient\nuid: l1\ncn: l1\nsn: l1\n"
                                           "mail: l1@example.net\nmailacceptinggeneralid: l1@example.net\n"
                                           "userPassword: plain-l1\n")
        rep = json.loads(self.mg("--json", "import", ldif, check=0).stdout)
        self.assertEqual(rep["added"], 1)
        l1 = json.loads(self.mg("--json", "user", "show", "l1@example.net", check=0).stdout)
        self.assertEqual(l1["password_scheme"], "SSHA512")  # hashed on the way in
        self.assertTrue(l1["maildrop"][0].startswith("l1@md0"))

    def make_messages(self, address, backend="md01", count=30):
        user, domain = address.split("@")
        base = os.path.join(self.md[backend], domain, user[:2], user)
        for n in range(count):
            sub = "new" if n % 3 else "cur"
            name = f"{1700000000 + n}.M{n}P1.host,S={100 + n}" + (":2,S" if sub == "cur" else "")
            with open(os.path.join(base, sub, name), "w") as f:
                f.write(f"Subject: {n}\n\n" + "x" * (100 + n) + "\n")
        os.makedirs(os.path.join(base, ".lists", "cur"), exist_ok=True)
        with open(os.path.join(base, ".lists", "cur", "1699999999.M0P1.host,S=9:2,"), "w") as f:
            f.write("in lists\n")
        return base

    def held(self):
        with open(self.lab.path("hold")) as f:
            return [ln for ln in f.read().splitlines() if ln and not ln.startswith("#")]

    def test_a_move_killed_after_each_step_resumes_to_the_same_end(self):
        self.add("whole@example.com")
        src = self.make_messages("whole@example.com")
        before = tree(src)
        r = self.mg("user", "move", "whole@example.com", "md02", check=0)
        self.assertIn("moved from md01.example.com to md02.example.com", r.stdout)
        want = json.loads(self.mg("--json", "user", "show", "whole@example.com", check=0).stdout)
        self.assertEqual(tree(want["maildir"]), before)
        self.assertFalse(os.path.exists(src))
        with open(self.ldif) as f:
            self.assertIn("mailacceptinggeneralid: whole@md01.example.com", f.read())
        for step in STEPS:
            address = f"crash-{step}@example.com"
            self.add(address)
            src = self.make_messages(address)
            before = tree(src)
            r = self.mg("user", "move", address, "md02", env={"MAILGRID_MOVE_CRASH_AFTER": step})
            self.assertEqual(r.returncode, -9, f"{step}: {r.stderr}")
            self.assertIn(address, self.mg("user", "moves", check=0).stdout)
            if STEPS.index(step) < STEPS.index("release"):
                self.assertIn(f"crash-{step}@md01.example.com", self.held())
            r = self.mg("user", "move", address, check=0)
            self.assertIn(f"(resumed after {step})", r.stdout)
            got = json.loads(self.mg("--json", "user", "show", address, check=0).stdout)
            self.assertEqual(got["backend"], "md02.example.com", step)
            self.assertEqual(got["maildrop"], [f"crash-{step}@md02.example.com"], step)
            self.assertEqual(tree(got["maildir"]), before, step)
            self.assertFalse(os.path.exists(src), step)
            self.assertEqual(self.held(), [], step)
            self.assertNotIn(address, self.mg("user", "moves", check=0).stdout)

    def test_abort_before_the_directory_switches(self):
        self.add("undo@example.com")
        src = self.make_messages("undo@example.com", count=5)
        before = tree(src)
        r = self.mg("user", "move", "undo@example.com", "md03", env={"MAILGRID_MOVE_CRASH_AFTER": "copy"})
        self.assertEqual(r.returncode, -9)
        self.mg("user", "move", "undo@example.com", "md02", check=64)  # another target: refused
        self.mg("user", "move", "undo@example.com", "--abort", check=0)
        self.assertEqual(tree(src), before)
        self.assertFalse(os.path.exists(os.path.join(self.md["md03"], "example.com", "un", "undo")))
        self.assertEqual(self.held(), [])
        got = json.loads(self.mg("--json", "user", "show", "undo@example.com", check=0).stdout)
        self.assertEqual(got["backend"], "md01.example.com")
        # Past the flip an abort is refused: the move can only be finished.
        self.mg("user", "move", "undo@example.com", "md03", env={"MAILGRID_MOVE_CRASH_AFTER": "flip"})
        r = self.mg("user", "move", "undo@example.com", "--abort", check=64)
        self.assertIn("only be finished", r.stderr)
        self.mg("user", "move", "undo@example.com", check=0)

    def test_drain_moves_everyone_off_a_backend(self):
        for n in range(3):
            self.add(f"dr{n}@example.org", backend="md03")
            self.make_messages(f"dr{n}@example.org", backend="md03", count=4)
        plan = json.loads(self.mg("--json", "backend", "drain", "md03", "--dry-run", check=0).stdout)
        # (other tests may have left users on md03 too)
        self.assertEqual(sorted(p["address"] for p in plan if p["address"].startswith("dr")),
                         [f"dr{n}@example.org" for n in range(3)])
        self.assertFalse({p["to"] for p in plan} & {"md03.example.com"})
        r = self.mg("backend", "drain", "md03", "--parallel", "2", check=0)
        self.assertRegex(r.stdout, r"drained md03.example.com: \d+ users moved, 0 failed")
        users = json.loads(self.mg("--json", "user", "list", "--backend", "md03", check=0).stdout)
        self.assertEqual(users, [])
        for n in range(3):
            got = json.loads(self.mg("--json", "user", "show", f"dr{n}@example.org", check=0).stdout)
            self.assertNotEqual(got["backend"], "md03.example.com")
            self.assertEqual(len([f for f in tree(got["maildir"]) if "/cur/" in "/" + f or "/new/" in "/" + f]), 5)

    def test_ldap_tablemap_defers_held_addresses(self):
        """The frontends' side of a hold: transport lookups of a held
        address answer retry:, and a new hold generation empties the
        in-process cache (a changed maildrop shows at once)."""
        self.add("tm@example.com", backend="md01")
        table = self.lab.write("transport.cf", f"server_host = ldif:{self.ldif}\nsearch_base = {SUFFIX}\n"
                                               "query_filter = (|(maildrop=%s)(mailacceptinggeneralid=%s))\n"
                                               "result_attribute = maildrop\nresult_format = lmtp:[%d]:24\n")
        port = free_port()
        start_tablemap(self.lab, ["-c", self.cf, "--table", f"transport={table}", "--socketmap", f"127.0.0.1:{port}",
                                  "-o", "cache_ttl=1h", "-o", "ldif_reload_interval=200ms"], ports=[port])
        self.assertEqual(socketmap_lookup(port, "transport", "tm@md01.example.com"), "OK lmtp:[md01.example.com]:24")
        self.mg("user", "move", "tm@example.com", "md02", env={"MAILGRID_MOVE_CRASH_AFTER": "hold"})
        wait_for(lambda: socketmap_lookup(port, "transport", "tm@md01.example.com").startswith("OK retry:4.2.0"), 5,
                 what="the hold")
        self.assertTrue(socketmap_lookup(port, "transport", "tm+ext@md01.example.com").startswith("OK retry:4.2.0"))
        self.assertTrue(socketmap_lookup(port, "transport", "tm@md02.example.com").startswith("OK retry:4.2.0"))
        self.mg("user", "move", "tm@example.com", check=0)
        # Released; the answer cached for the old maildrop is gone although
        # cache_ttl is an hour: mail queued under it goes to the new backend.
        wait_for(lambda: socketmap_lookup(port, "transport", "tm@md01.example.com") == "OK lmtp:[md02.example.com]:24",
                 5, what="the release and the new route")


class AdminLdap(LabTestCase):
    """A real slapd: writes, a write that the directory refuses, an outage."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.slapd = Slapd(lab, [lab.write("base.ldif", BASE)])
        cls.store = lab.path("md01")
        os.makedirs(cls.store)
        cls.cf = lab.write("mailgrid.cf", f"""admin_server_host = ldap://127.0.0.1:{cls.slapd.port}/
admin_search_base = {SUFFIX}
admin_bind_dn = {ADMIN_DN}
admin_bind_pw = {ADMIN_PW}
admin_backends = md01.example.com=maildir:{cls.store}
admin_state_dir = {lab.path('moves')}
""")

    def mg(self, *args, check=None):
        r = subprocess.run([binary("mailgrid"), "-c", self.cf, *args], capture_output=True, text=True, timeout=60)
        if check is not None:
            self.assertEqual(r.returncode, check, f"mailgrid {' '.join(args)}: {r.stdout}{r.stderr}")
        return r

    def test_add_through_ldap(self):
        self.mg("user", "add", "eve@example.com", "--no-password", "--quota", "1G", check=0)
        found = self.slapd.search(SUFFIX, "sub", "(mail=eve@example.com)", "maildrop", "mailQuotaBytes")
        self.assertIn("maildrop: eve@md01.example.com", found)
        self.assertIn("mailQuotaBytes: 1073741824", found)
        self.assertTrue(os.path.isdir(os.path.join(self.store, "example.com", "ev", "eve", "new")))
        self.mg("user", "add", "eve@example.com", "--no-password", check=73)

    def test_write_denied_is_a_clear_error(self):
        r = self.mg("-o", f"admin_bind_dn=uid=reader,{SUFFIX}", "-o", "admin_bind_pw=readerpw", "user", "add",
                    "mallory@example.com", "--no-password", check=77)
        self.assertIn("directory write denied", r.stderr)
        self.assertEqual(r.stderr.count("\n"), 1)
        self.assertFalse(os.path.exists(os.path.join(self.store, "example.com", "ma", "mallory")))

    def test_directory_down_is_a_temporary_failure(self):
        self.slapd.stop()
        try:
            r = self.mg("user", "add", "late@example.com", "--no-password", check=75)
            self.assertIn("directory unavailable", r.stderr)
            self.mg("user", "show", "late@example.com", check=75)
        finally:
            self.slapd.start()
        self.assertFalse(os.path.exists(os.path.join(self.store, "example.com", "la", "late")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
