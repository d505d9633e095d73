#!/usr/bin/env python3
"""maildir_deliver with real peers: a real Postfix delivering through
pipe(8), local(8) with a user's .forward, and lmtp(8) with several
recipients per transaction; slapd as the directory; Courier's deliverquota
and Dovecot (dovecot-lda, doveadm) on the same Maildirs in both directions.
And what must hold whatever happens: kill -9 at random points never leaves a
partial message, 100 concurrent deliveries keep maildirsize exact, hostile
names and symbolic links never write outside the store, a full or
read-only disk is a temporary failure with nothing left behind."""

import os
import pty
import random
import re
import resource
import select
import shutil
import smtplib
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (REPO, SUFFIX, FaultProxy, LabTestCase, Postfix, Slapd, binary, free_port, http_get, mailgrid_cf,
                     need, wait_for, wait_port)
from maildir_deliver_peers import (Dovecot, SystemUser, Tmpfs, can_mount_tmpfs, maildir_messages, maildir_usage,
                                   make_message, read_maildirsize)


def entry(uid, *mails, quota=None, extra=""):
    text = (f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: mailSuiteRecipient\n"
            f"uid: {uid}\ncn: {uid}\nsn: {uid}\n")
    text += "".join(f"mail: {m}\n" for m in mails)
    if quota is not None:
        text += f"mailQuotaBytes: {quota}\n"
    return text + extra + "\n"


BASE = f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

"""


def deliver(cf, *args, message=b"", env=None, user=None, group=None, timeout=60, preexec_fn=None):
    """Runs maildir_deliver as Postfix would: a clean environment (plus env)."""
    full_env = {"PATH": "/usr/bin:/bin"}
    full_env.update(env or {})
    cmd = [binary("maildir_deliver")] + (["-c", cf] if cf else []) + list(args)
    kw = {"user": user, "group": group or user} if user else {}
    return subprocess.run(cmd, input=message, capture_output=True, env=full_env, timeout=timeout,
                          preexec_fn=preexec_fn, **kw)


def status_line(r):
    return r.stdout.decode("utf-8", "replace").split("\n")[0]


def slurp(path):
    with open(path, "rb") as f:
        return f.read()


def tree(path):
    """Every path below path, for "nothing was written" checks."""
    out = set()
    for d, dirs, files in os.walk(path):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(d, n), path))
    return out


# ---------------------------------------------------------------- one process per message


class OneMessage(LabTestCase):
    """maildir_deliver run directly, as pipe(8) and local(8) run it, with the
    embedded directory (an LDIF file)."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.store = lab.path("store")
        os.makedirs(cls.store)
        cls.outside = lab.path("outside")
        os.makedirs(cls.outside)
        cls.ldif = lab.write("users.ldif", BASE + entry("alice", "alice@example.com", quota=1000000) +
                             entry("carol", "carol@example.com", quota=2500) +
                             entry("dave", "dave@example.com", "dave.alias@example.com", quota=0) +
                             entry("eve", "eve@example.com") + entry("mallory", "mallory@evil.example") +
                             entry("pat", "pat@example.com", extra="description: /etc/mailgrid-pat\n") +
                             entry("quinn", "quinn@example.com", extra="description: example.com/custom/q\n") +
                             "".join(entry(f"c{i}", f"c{i}@example.com", quota=10**9) for i in range(3)))
        cls.cf = mailgrid_cf(lab, {
            "deliver_root": cls.store,
            "deliver_server_host": "ldif:" + cls.ldif,
            "deliver_search_base": SUFFIX,
            "deliver_query_filter": "(mail=%s)",
        })

    def maildir(self, user, domain="example.com"):
        return os.path.join(self.store, domain, (user + "_")[:2], user)

    def test_delivers_into_a_new_maildir_and_folder(self):
        msg = make_message("first")
        r = deliver(self.cf, "-d", "alice+Lists@example.com", "-i", "4F2A1B", "--foreground", message=msg)
        self.assertEqual(r.returncode, 0, r.stderr)
        md = self.maildir("alice")
        folder = os.path.join(md, ".Lists")
        self.assertTrue(os.path.isfile(os.path.join(folder, "maildirfolder")))
        files = os.listdir(os.path.join(folder, "new"))
        self.assertEqual(len(files), 1)
        self.assertRegex(files[0], rf",S={len(msg)},W=\d+$")
        with open(os.path.join(folder, "new", files[0]), "rb") as f:
            self.assertEqual(f.read(), msg)
        self.assertEqual(os.listdir(os.path.join(md, "tmp")), [])
        limit, used, count, _ = read_maildirsize(md)
        self.assertEqual((limit, used, count), ("1000000S", len(msg), 1))
        log = r.stderr.decode()
        self.assertIn("4F2A1B: to=<alice+Lists@example.com>, folder=.Lists, size=", log)
        self.assertIn("status=sent (delivered to maildir " + folder, log)

    def test_forward_environment_and_from_line(self):
        # local(8) passes USER, DOMAIN, EXTENSION and a "From " line first.
        msg = make_message("fwd")
        r = deliver(self.cf, message=b"From sender@sender.test  Mon Nov 23 10:00:00 2026\n" + msg,
                    env={"USER": "alice", "DOMAIN": "example.com", "EXTENSION": "news",
                         "RECIPIENT": "alice+news@example.com"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        files = maildir_messages(os.path.join(self.maildir("alice"), ".news"), folders=False)
        self.assertEqual(len(files), 1)
        with open(files[0], "rb") as f:
            self.assertEqual(f.read(), msg)

    def test_unknown_user_bounces_with_5_1_1(self):
        r = deliver(self.cf, "-d", "nobody@example.com", message=make_message("x"))
        self.assertEqual(r.returncode, 67)
        self.assertEqual(status_line(r), "5.1.1 <nobody@example.com>: user unknown")
        self.assertFalse(os.path.exists(self.maildir("nobody")))

    def test_a_store_that_is_not_mounted_defers_and_writes_nothing(self):
        # An unmounted mount point is an empty directory: without the marker
        # check alice's Maildir would be made there (on the wrong disk).
        empty = self.lab.path("unmounted")
        os.makedirs(empty)
        args = ("-o", f"deliver_root={empty}", "-o", "deliver_root_marker=.mounted", "-d", "alice@example.com")
        r = deliver(self.cf, *args, message=make_message("while unmounted"))
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertTrue(status_line(r).startswith("4.3.0 <alice@example.com>"), status_line(r))
        self.assertEqual(tree(empty), set())
        open(os.path.join(empty, ".mounted"), "w").close()
        r = deliver(self.cf, *args, message=make_message("mounted"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(os.listdir(os.path.join(empty, "example.com", "al", "alice", "new"))), 1)

    def test_filter_characters_in_the_key_match_nothing(self):
        # "*" would match every entry if it reached the filter unescaped.
        r = deliver(self.cf, "-d", "*@example.com", message=make_message("x"))
        self.assertEqual(r.returncode, 67, r.stdout)
        r = deliver(self.cf, "-d", "a*)(mail=*@example.com", message=make_message("x"))
        self.assertEqual(r.returncode, 67, r.stdout)

    def test_an_alias_delivers_into_its_users_mailbox(self):
        r = deliver(self.cf, "-d", "dave.alias@example.com", message=make_message("alias"))
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(len(maildir_messages(self.maildir("dave"))), 1)
        self.assertFalse(os.path.exists(os.path.join(self.store, "example.com", "da", "dave.alias")))
        # A quota of 0 is "no limit", written down so it need not be asked again.
        self.assertEqual(read_maildirsize(self.maildir("dave"))[0], "0S")

    def test_hostile_names_are_refused_and_nothing_is_written(self):
        before = tree(self.lab.dir)
        bad_users = ["../../outside/x", "a/b", ".hidden", "..", "a\nb", "a\x01b", "a\x7fb", "u" * 300, "\xff"]
        bad_domains = ["../outside", "ex/ample.com", ".example.com", "a..b", "example.com\n", "d" * 300]
        bad_extensions = ["../../../outside", "a/b", ".x", "x..y", "x.", "x\ny", "\x1b[31m", "e" * 300]
        cases = [{"USER": u, "DOMAIN": "example.com"} for u in bad_users]
        cases += [{"USER": "alice", "DOMAIN": d} for d in bad_domains]
        cases += [{"USER": "alice", "DOMAIN": "example.com", "EXTENSION": e} for e in bad_extensions]
        for env in cases:
            with self.subTest(env=env):
                r = deliver(self.cf, message=make_message("hostile"),
                            env={k: v.encode("latin-1") if "\xff" in v else v for k, v in env.items()})
                self.assertEqual(r.returncode, 67, r.stdout + r.stderr)
                self.assertRegex(status_line(r), r"^5\.1\.3 <.*>: bad address: ")
        for user in ["../x", "a/b@c", "."]:
            r = deliver(self.cf, "-d", f"{user}@example.com", message=make_message("hostile"))
            self.assertEqual(r.returncode, 67)
        r = deliver(self.cf, "-d", "alice@example.com", "-e", "../../x", message=make_message("hostile"))
        self.assertEqual(r.returncode, 67)
        self.assertEqual(tree(self.lab.dir), before)
        self.assertEqual(os.listdir(self.outside), [])

    def test_symbolic_links_out_of_the_store_are_refused(self):
        os.makedirs(os.path.join(self.store, "example.com", "ev"), exist_ok=True)
        os.symlink(self.outside, os.path.join(self.store, "example.com", "ev", "eve"))
        os.symlink(self.outside, os.path.join(self.store, "evil.example"))
        for rcpt in ["eve@example.com", "mallory@evil.example"]:
            with self.subTest(rcpt=rcpt):
                r = deliver(self.cf, "-d", rcpt, "--foreground", message=make_message("link"))
                self.assertEqual(r.returncode, 75, r.stdout)
                self.assertEqual(status_line(r), f"4.3.0 <{rcpt}>: mailbox unavailable")
                self.assertIn("is a symbolic link; refusing to follow it", r.stderr.decode())
        # A mailbox path from the directory must stay inside the store.
        cf = mailgrid_cf(self.lab, {"deliver_root": self.store, "deliver_server_host": "ldif:" + self.ldif,
                                    "deliver_search_base": SUFFIX, "deliver_path_attribute": "description"},
                         name="path.cf")
        r = deliver(cf, "-d", "pat@example.com", "--foreground", message=make_message("path"))
        self.assertEqual(r.returncode, 75, r.stdout)
        self.assertIn("outside the store", r.stderr.decode())
        self.assertFalse(os.path.exists("/etc/mailgrid-pat"))
        r = deliver(cf, "-d", "quinn@example.com", message=make_message("path"))
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(len(maildir_messages(os.path.join(self.store, "example.com", "custom", "q"))), 1)
        self.assertEqual(os.listdir(self.outside), [])

    def test_over_quota_defers_or_bounces_and_a_raised_limit_is_seen(self):
        md = self.maildir("carol")
        big = make_message("carol-1", 1500)
        self.assertEqual(deliver(self.cf, "-d", "carol@example.com", message=big).returncode, 0)
        r = deliver(self.cf, "-d", "carol@example.com", message=make_message("carol-2", 1500))
        self.assertEqual(r.returncode, 75)
        self.assertEqual(status_line(r), "4.2.2 <carol@example.com>: mailbox full")
        r = deliver(self.cf, "-d", "carol@example.com", "-o", "deliver_over_quota=bounce",
                    message=make_message("carol-2", 1500))
        self.assertEqual(r.returncode, 77)
        self.assertEqual(status_line(r), "5.2.2 <carol@example.com>: mailbox full")
        self.assertEqual(len(maildir_messages(md)), 1)
        self.assertEqual(os.listdir(os.path.join(md, "tmp")), [])
        # The limit is cached in maildirsize; before refusing, the directory
        # is asked again, so a raise counts at once.
        ldif = self.lab.path("carol.ldif")
        with open(self.ldif) as f:
            text = f.read().replace("mailQuotaBytes: 2500", "mailQuotaBytes: 5000")
        with open(ldif, "w") as f:
            f.write(text)
        cf = mailgrid_cf(self.lab, {"deliver_root": self.store, "deliver_server_host": "ldif:" + ldif,
                                    "deliver_search_base": SUFFIX}, name="carol.cf")
        r = deliver(cf, "-d", "carol@example.com", message=make_message("carol-3", 1500))
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(read_maildirsize(md)[0], "5000S")
        self.assertEqual(read_maildirsize(md)[1:3], maildir_usage(md))

    def test_explicit_maildir_like_deliverquota(self):
        md = self.lab.path("explicit")
        for i in range(2):
            r = deliver(None, "--maildir", md, "--quota", "100000S,2C", message=make_message(f"e{i}"))
            self.assertEqual(r.returncode, 0, r.stdout)
        r = deliver(None, "--maildir", md, "--quota", "100000S,2C", message=make_message("e3"))
        self.assertEqual((r.returncode, status_line(r)), (75, f"4.2.2 <{md}>: mailbox full"))
        self.assertEqual(read_maildirsize(md)[:3], ("100000S,2C",) + maildir_usage(md))

    def test_kill_9_at_random_points_never_leaves_a_partial_message(self):
        md = self.lab.path("crash")
        rnd = random.Random(4)
        sizes = {}
        completed = set()
        for i in range(40):
            msg = make_message(f"crash-{i:03d}", rnd.choice([200, 1_000_000, 5_000_000]))
            sizes[f"crash-{i:03d}"] = msg
            p = subprocess.Popen([binary("maildir_deliver"), "--maildir", md, "--quota", "1000000000S"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                p.stdin.write(msg)
                p.stdin.close()
            except BrokenPipeError:
                pass
            time.sleep(rnd.uniform(0, 0.015))
            p.kill()
            if p.wait() == 0:
                completed.add(f"crash-{i:03d}")
        seen = set()
        for path in maildir_messages(md):
            with open(path, "rb") as f:
                data = f.read()
            subject = re.search(rb"Subject: (crash-\d+)", data).group(1).decode()
            self.assertEqual(data, sizes[subject], f"{path} is not the whole message")
            self.assertNotIn(subject, seen, "a message was delivered twice")
            seen.add(subject)
        self.assertLessEqual(completed, seen)
        # maildirsize is never torn: its lines are single writes.
        read_maildirsize(md)
        r = deliver(None, "--maildir", md, message=make_message("after-crashes"))
        self.assertEqual(r.returncode, 0)
        print(f"\n  kill -9: {len(completed)} of 40 deliveries finished before the kill, "
              f"{len(seen)} messages in new/, none partial", file=sys.stderr)

    def test_100_concurrent_deliveries_keep_maildirsize_exact(self):
        md = self.maildir("c0")
        self.assertEqual(deliver(self.cf, "-d", "c0@example.com", message=make_message("seed")).returncode, 0)
        # Push the file close to 5120 bytes so it is recounted while others
        # append to it.
        with open(os.path.join(md, "maildirsize"), "a") as f:
            f.write("           0            0\n" * 190)
        procs = []
        for i in range(100):
            p = subprocess.Popen([binary("maildir_deliver"), "-c", self.cf, "-d", "c0@example.com"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 env={"PATH": "/usr/bin:/bin"})
            procs.append((p, make_message(f"conc-{i}", 100 + 37 * i)))
        for p, msg in procs:
            p.stdin.write(msg)
            p.stdin.close()
        for p, msg in procs:
            status = p.wait(60)
            out = p.stdout.read()
            p.stdout.close()
            self.assertEqual(status, 0, out)
        self.assertEqual(len(maildir_messages(md)), 101)
        _, used, count, _ = read_maildirsize(md)
        self.assertEqual((used, count), maildir_usage(md))

    @unittest.skipUnless(os.geteuid() == 0, "mounting a tmpfs needs root")
    def test_full_and_read_only_disks_are_temporary_and_leave_nothing(self):
        if not can_mount_tmpfs(self.lab):
            self.skipTest("cannot mount tmpfs here")
        fs = Tmpfs(self.lab, "small", "1m")
        md = os.path.join(fs.path, "md")
        quota = ("--quota", "100000000S")
        self.assertEqual(deliver(None, "--maildir", md, *quota, message=make_message("small")).returncode, 0)
        r = deliver(None, "--maildir", md, *quota, "--foreground", message=make_message("huge", 2_000_000))
        self.assertEqual(r.returncode, 75)
        self.assertEqual(status_line(r), f"4.3.1 <{md}>: mail system full")
        self.assertIn("No space left on device", r.stderr.decode())
        self.assertEqual(os.listdir(os.path.join(md, "tmp")), [])
        self.assertEqual(len(maildir_messages(md)), 1)
        fs.read_only()
        try:
            r = deliver(None, "--maildir", md, *quota, message=make_message("ro"))
            self.assertEqual(r.returncode, 75)
            self.assertEqual(status_line(r), f"4.3.0 <{md}>: mail store is read-only")
        finally:
            fs.read_only(False)
        self.assertEqual(len(maildir_messages(md)), 1)
        self.assertEqual(os.listdir(os.path.join(md, "tmp")), [])
        self.assertEqual(read_maildirsize(md)[1:3], maildir_usage(md))

    def test_file_size_limit_is_temporary_and_leaves_nothing(self):
        md = self.lab.path("fsize")
        limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        r = deliver(None, "--maildir", md, message=make_message("big", 1_000_000), preexec_fn=limit)
        self.assertEqual(r.returncode, 75)
        self.assertEqual(status_line(r), f"4.3.1 <{md}>: file size limit reached")
        # Refused while the message was read: no file of it anywhere.
        left = [os.path.join(d, f) for d, _, files in os.walk(md) for f in files]
        self.assertEqual(left, [])
        r = deliver(None, "--maildir", md, message=make_message("small", 50_000), preexec_fn=limit)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(len(maildir_messages(md)), 1)

    def test_time_limit_defers(self):
        p = subprocess.Popen([binary("maildir_deliver"), "--maildir", self.lab.path("slow"), "-o",
                              "deliver_time_limit=1s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        p.stdin.write(b"Subject: never ends\n\n")
        p.stdin.flush()
        self.assertEqual(p.wait(10), 75)
        self.assertEqual(p.stdout.read().decode(), "4.3.0 maildir_deliver: time limit exceeded\n")
        p.stdin.close()
        p.stdout.close()

    def test_configuration_errors_defer_the_mail(self):
        r = deliver(self.cf, "-d", "alice@example.com", "-o", "deliver_hash=bogus", message=make_message("x"))
        self.assertEqual(r.returncode, 75)
        self.assertTrue(status_line(r).startswith("4.3.5 maildir_deliver configuration error: -o deliver_hash"))
        r = deliver(self.cf, "--no-such-option", message=make_message("x"))
        self.assertEqual(r.returncode, 75)
        self.assertTrue(status_line(r).startswith("4.3.5 maildir_deliver: bad command line"))
        r = deliver(self.cf, "--check", "-o", "deliver_hash=stable:9", "-o", "deliver_frobnicate=1")
        self.assertEqual(r.returncode, 78)
        err = r.stderr.decode()
        self.assertIn("error: -o deliver_hash: expected none, classic or stable:N", err)
        self.assertIn("unknown parameter: deliver_frobnicate", err)
        self.assertEqual(deliver(self.cf, "--check").returncode, 0)
        r = deliver(self.cf, "--check", "-o", "deliver_root_marker=.mounted")
        self.assertEqual(r.returncode, 0)
        self.assertIn(f"warning: mail store {self.store}: no .mounted in it", r.stderr.decode())
        # The shipped example passes its own check.
        example = os.path.join(REPO, "deploy", "examples", "maildir_deliver.cf")
        r = deliver(example, "--check")
        self.assertEqual((r.returncode, r.stderr), (0, b""))


# ---------------------------------------------------------------- Postfix


class ThroughPostfix(LabTestCase):
    """A real Postfix delivering with pipe(8) (example.com), local(8) and a
    user's .forward (local.test), and lmtp(8) to maildir_deliver's LMTP
    server (lmtp.example.com); slapd is the directory. Everything runs as
    one unprivileged mail user, as a site would run it."""

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.vmail = SystemUser(lab)
        ldif = lab.write("users.ldif", BASE + entry("alice", "alice@example.com", quota=1000000) +
                         entry("carol", "carol@example.com", quota=3000) + entry("erin", "erin@example.com") +
                         entry("lena", "lena@lmtp.example.com") + entry("luke", "luke@lmtp.example.com") +
                         entry("lily", "lily@lmtp.example.com", quota=2000) + entry("lars", "lars@lmtp.example.com") +
                         entry("lisa", "lisa@lmtp.example.com") +
                         entry(cls.vmail.name, f"{cls.vmail.name}@local.test", quota=500000))
        cls.slapd = Slapd(lab, [ldif])
        cls.store = lab.path("store")
        os.makedirs(cls.store)
        cls.vmail.chown(cls.store)
        cls.lmtp_port = free_port()
        cls.metrics_port = free_port()
        cls.cf = mailgrid_cf(lab, {
            "deliver_root": cls.store,
            "deliver_server_host": cls.slapd.uri,
            "deliver_search_base": SUFFIX,
            "deliver_bind": "no",
            "deliver_timeout": "3",
            "deliver_lmtp_listen": f"inet:127.0.0.1:{cls.lmtp_port}",
            "deliver_metrics": f"127.0.0.1:{cls.metrics_port}",
            "daemon_user": cls.vmail.name,
            "ldap_reconnect_delay": "200ms",
        })
        cls.lmtp = cls.start_lmtp()
        # lars's mail goes through a proxy that can lose the LMTP server's reply.
        cls.proxy = FaultProxy(lab, cls.lmtp_port)
        with open(os.path.join(cls.vmail.home, ".forward"), "w") as f:
            f.write(f'"|{binary("maildir_deliver")} -c {cls.cf}"\n')
        os.chown(os.path.join(cls.vmail.home, ".forward"), cls.vmail.uid, cls.vmail.gid)
        pipe = (f"mdpipe unix - n n - - pipe\n"
                f"  flags=Ru user={cls.vmail.name} argv={binary('maildir_deliver')} -c {cls.cf} "
                "-d ${user}@${domain} -e ${extension} -i ${queue_id} -f ${sender}\n")
        cls.postfix = Postfix(lab, main_cf={
            "virtual_mailbox_domains": "example.com, lmtp.example.com",
            "virtual_mailbox_maps": "static:ok",
            "transport_maps": f"inline:{{example.com=mdpipe:, lmtp.example.com=lmtp:inet:127.0.0.1:{cls.lmtp_port}, "
                              f"lars@lmtp.example.com=lmtp:inet:127.0.0.1:{cls.proxy.port}, sender.test=discard:}}",
            "mdpipe_destination_recipient_limit": "1",
            "recipient_delimiter": "+",
            "mydestination": "local.test",
            "local_transport": "local",
        }, master_cf_extra=pipe)

    @classmethod
    def start_lmtp(cls):
        p = cls.lab.spawn("lmtp", [binary("maildir_deliver"), "-c", cls.cf, "--lmtp", "--foreground"])
        try:
            wait_port(cls.lmtp_port, 10)
        except AssertionError:
            raise AssertionError(f"the LMTP server did not start: {p.stderr()}")
        return p

    def maildir(self, user, domain="example.com"):
        return os.path.join(self.store, domain, (user + "_")[:2], user)

    def send(self, rcpts, subject, size=0):
        with self.postfix.smtp() as s:
            s.sendmail("sender@sender.test", rcpts, make_message(subject, size))

    def log_status(self, rcpt, offset=0, timeout=30):
        """Postfix's log line for rcpt (after offset) once it says sent/bounced/deferred."""
        def find():
            log = self.postfix.log()[offset:]
            for line in log.splitlines():
                if f"to=<{rcpt}>" in line and "status=" in line:
                    return line
            return None
        return wait_for(find, timeout, what=f"Postfix to log a status for {rcpt}")

    def mark(self):
        """Where the log is now: statuses are looked for after it."""
        return len(self.postfix.log())

    def test_pipe_delivers_with_extension_folder(self):
        token = self.mark()
        self.send(["alice+Work@example.com"], "pipe-ext")
        line = self.log_status("alice+Work@example.com", token)
        self.assertIn("status=sent", line)
        files = maildir_messages(os.path.join(self.maildir("alice"), ".work"), folders=False)
        self.assertEqual(len(files), 1)
        with open(files[0], "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(b"Return-Path: <sender@sender.test>\n"), data[:80])
        self.assertIn(b"Subject: pipe-ext", data)
        self.assertEqual(os.stat(files[0]).st_uid, self.vmail.uid)

    def test_pipe_unknown_user_bounces_with_5_1_1(self):
        token = self.mark()
        self.send(["nobody@example.com"], "pipe-unknown")
        line = self.log_status("nobody@example.com", token)
        self.assertIn("status=bounced", line)
        self.assertIn("5.1.1", line)
        self.assertIn("user unknown", line)

    def test_pipe_over_quota_defers_saying_mailbox_full(self):
        token = self.mark()
        self.send(["carol@example.com"], "carol-fits", 2000)
        self.assertIn("status=sent", self.log_status("carol@example.com", token))
        token = self.mark()
        self.send(["carol@example.com"], "carol-too-much", 2000)
        line = self.log_status("carol@example.com", token)
        # The sender sees "mailbox full", not "permission denied" (77 alone).
        self.assertIn("status=deferred", line)
        self.assertIn("dsn=4.2.2", line)
        self.assertIn("mailbox full", line)

    def test_pipe_directory_outage_defers_new_mailboxes_only(self):
        token = self.mark()
        self.send(["alice@example.com"], "alice-before")
        self.assertIn("status=sent", self.log_status("alice@example.com", token))
        self.slapd.stop()
        try:
            token = self.mark()
            self.send(["erin@example.com"], "erin-ldap-down")
            line = self.log_status("erin@example.com", token)
            self.assertIn("status=deferred", line)
            self.assertIn("dsn=4.4.3", line)
            self.assertFalse(os.path.exists(self.maildir("erin")))
            # An existing Maildir keeps receiving mail, with its cached limit.
            self.send(["alice@example.com"], "alice-ldap-down")
            wait_for(lambda: any(b"alice-ldap-down" in slurp(p)
                                 for p in maildir_messages(self.maildir("alice"))), 30,
                     what="alice's mail while LDAP is down")
        finally:
            self.slapd.start()
        self.postfix.flush()
        wait_for(lambda: maildir_messages(self.maildir("erin")), 30, what="erin's mail after LDAP is back")

    def test_local_forward_runs_as_the_user(self):
        user = self.vmail.name
        token = self.mark()
        self.send([f"{user}@local.test", f"{user}+lists@local.test"], "via-forward")
        for rcpt in (f"{user}@local.test", f"{user}+lists@local.test"):
            line = self.log_status(rcpt, token)
            self.assertIn("status=sent", line)
            self.assertIn("delivered to command", line)
        md = self.maildir(user, "local.test")
        inbox = maildir_messages(md, folders=False)
        lists = maildir_messages(os.path.join(md, ".lists"), folders=False)
        self.assertEqual((len(inbox), len(lists)), (1, 1))
        with open(lists[0], "rb") as f:
            data = f.read()
        self.assertFalse(data.startswith(b"From "), "local(8)'s From line must not reach the Maildir")
        self.assertIn(f"Delivered-To: {user}+lists@local.test".encode(), data)
        self.assertEqual(os.stat(lists[0]).st_uid, self.vmail.uid)
        self.assertEqual(read_maildirsize(md)[0], "500000S")

    def test_lmtp_many_recipients_per_connection(self):
        token = self.mark()
        self.send(["lena@lmtp.example.com", "luke@lmtp.example.com", "ghost@lmtp.example.com"], "lmtp-three")
        lines = {r: self.log_status(r, token) for r in ("lena@lmtp.example.com", "luke@lmtp.example.com",
                                                         "ghost@lmtp.example.com")}
        self.assertIn("status=sent (250 2.0.0 <lena@lmtp.example.com> delivered)", lines["lena@lmtp.example.com"])
        self.assertIn("status=sent (250 2.0.0 <luke@lmtp.example.com> delivered)", lines["luke@lmtp.example.com"])
        self.assertIn("status=bounced", lines["ghost@lmtp.example.com"])
        self.assertIn("550 5.1.1 <ghost@lmtp.example.com> user unknown", lines["ghost@lmtp.example.com"])
        qids = {re.search(r"\]: ([0-9A-F]+): to=", l).group(1) for l in lines.values()}
        self.assertEqual(len(qids), 1, "one message, one queue id")
        for user in ("lena", "luke"):
            files = maildir_messages(self.maildir(user, "lmtp.example.com"))
            self.assertEqual(len(files), 1)
            with open(files[0], "rb") as f:
                data = f.read()
            self.assertTrue(data.startswith(b"Return-Path: <sender@sender.test>\n"))
            self.assertNotIn(b"\r\n", data)
            self.assertEqual(os.stat(files[0]).st_uid, self.vmail.uid)
        status, _, body = http_get(self.metrics_port, "/metrics")
        self.assertEqual(status, 200)
        sent = re.search(r'mailgrid_deliver_total\{status="sent"\} (\d+)', body)
        self.assertGreaterEqual(int(sent.group(1)), 2)
        log = self.lmtp.stderr()
        self.assertIn("to=<lena@lmtp.example.com>, folder=INBOX", log)

    def test_lmtp_over_quota_recipient_is_deferred_alone(self):
        token = self.mark()
        self.send(["lily@lmtp.example.com", "luke@lmtp.example.com"], "lmtp-quota", 3000)
        lily = self.log_status("lily@lmtp.example.com", token)
        self.assertIn("status=deferred", lily)
        self.assertIn("452 4.2.2 <lily@lmtp.example.com> mailbox full", lily)
        self.assertIn("status=sent", self.log_status("luke@lmtp.example.com", token))

    def test_lmtp_server_killed_mail_waits_and_is_delivered_once(self):
        self.lmtp.kill()
        try:
            token = self.mark()
            self.send(["lena@lmtp.example.com"], "lmtp-while-down")
            self.assertIn("status=deferred", self.log_status("lena@lmtp.example.com", token))
        finally:
            type(self).lmtp = self.start_lmtp()
        self.postfix.flush()

        def delivered():
            hits = [p for p in maildir_messages(self.maildir("lena", "lmtp.example.com"))
                    if b"lmtp-while-down" in slurp(p)]
            return hits or None
        hits = wait_for(delivered, 30, what="the deferred LMTP message")
        time.sleep(1)
        self.assertEqual(len(hits), 1)

    def test_lmtp_reply_lost_after_storing_is_not_stored_twice(self):
        """The message is in the Maildir, but Postfix never sees the 250:
        it defers ("may be sent more than once") and sends it again, which
        must be answered as delivered without a second copy."""
        md = self.maildir("lars", "lmtp.example.com")
        token = self.mark()
        self.proxy.cut_reply = b"<lars@lmtp.example.com> delivered"
        self.send(["lars@lmtp.example.com"], "lmtp-reply-lost")
        line = self.log_status("lars@lmtp.example.com", token)
        self.assertIn("status=deferred", line)
        self.assertIn("lost connection", line)
        self.assertEqual(len(maildir_messages(md)), 1, "stored before the reply was lost")
        token = self.mark()
        self.postfix.flush()
        line = self.log_status("lars@lmtp.example.com", token, timeout=60)
        self.assertIn("status=sent (250 2.0.0 <lars@lmtp.example.com> already delivered)", line)
        self.assertEqual(len(maildir_messages(md)), 1)
        self.assertIn("to=<lars@lmtp.example.com>, folder=INBOX", self.lmtp.stderr())
        self.assertIn("already delivered to maildir", self.lmtp.stderr())
        _, _, body = http_get(self.metrics_port, "/metrics")
        self.assertRegex(body, r"mailgrid_deliver_duplicates_total [1-9]")

    def lmtp_transaction(self, rcpts, message, read_replies=True):
        """One LMTP transaction straight to the server; its replies to the
        message, or None when the connection is dropped before reading them."""
        with socket.create_connection(("127.0.0.1", self.lmtp_port), 10) as s:
            f = s.makefile("rb")
            data = message.replace(b"\n", b"\r\n")
            s.sendall(b"LHLO t\r\nMAIL FROM:<sender@sender.test>\r\n" +
                      b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts) + b"DATA\r\n")
            lines = []
            while not lines or not lines[-1].startswith(b"354"):
                lines.append(f.readline())
                self.assertTrue(lines[-1], f"the server closed: {lines}")
            s.sendall(data + b".\r\n")
            if not read_replies:
                return None
            replies = [f.readline().decode().strip() for _ in rcpts]
            s.sendall(b"QUIT\r\n")
            return replies

    def test_lmtp_sent_again_after_a_crash_is_stored_once_while_it_is_there(self):
        md = self.maildir("lisa", "lmtp.example.com")
        message = make_message("lmtp-again", 3000)
        # The connection drops before the reply is read, and the server is
        # killed: what it remembered survives it.
        self.lmtp_transaction(["lisa@lmtp.example.com"], message, read_replies=False)
        wait_for(lambda: len(maildir_messages(md)) == 1, 10, what="the first copy")
        self.lmtp.kill()
        type(self).lmtp = self.start_lmtp()
        self.assertEqual(self.lmtp_transaction(["lisa@lmtp.example.com"], message),
                         ["250 2.0.0 <lisa@lmtp.example.com> already delivered"])
        self.assertEqual(len(maildir_messages(md)), 1)
        # Read by the user (moved to cur/ with flags): still the same message.
        first = maildir_messages(md)[0]
        os.rename(first, os.path.join(md, "cur", os.path.basename(first) + ":2,S"))
        self.assertEqual(self.lmtp_transaction(["lisa@lmtp.example.com"], message),
                         ["250 2.0.0 <lisa@lmtp.example.com> already delivered"])
        # Another recipient of the same Maildir, another folder, another
        # message: each a delivery of its own.
        replies = self.lmtp_transaction(["lisa+work@lmtp.example.com", "lisa@lmtp.example.com"], message)
        self.assertEqual(replies, ["250 2.0.0 <lisa+work@lmtp.example.com> delivered",
                                   "250 2.0.0 <lisa@lmtp.example.com> already delivered"])
        self.assertEqual(self.lmtp_transaction(["lisa@lmtp.example.com"], make_message("lmtp-other", 3000)),
                         ["250 2.0.0 <lisa@lmtp.example.com> delivered"])
        self.assertEqual(len(maildir_messages(md)), 3)
        # Deleted by the user: the journal does not keep mail away, a new
        # copy is stored.
        for p in maildir_messages(md, folders=False):
            os.unlink(p)
        self.assertEqual(self.lmtp_transaction(["lisa@lmtp.example.com"], message),
                         ["250 2.0.0 <lisa@lmtp.example.com> delivered"])
        self.assertEqual(len(maildir_messages(md, folders=False)), 1)

    def test_lmtp_protocol_errors_and_hostile_recipients(self):
        with socket.create_connection(("127.0.0.1", self.lmtp_port), 10) as s:
            f = s.makefile("rb")
            self.assertTrue(f.readline().startswith(b"220 "))
            s.sendall(b"LHLO t\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a\x00b@lmtp.example.com>\r\n"
                      b"RCPT TO:<../x@lmtp.example.com>\r\nRCPT TO:<lena+../x@lmtp.example.com>\r\n"
                      b"RCPT TO:<a@b/c>\r\nDATA\r\nQUIT\r\n")
            replies = [f.readline() for _ in range(12)]
        text = b"".join(replies).decode("utf-8", "replace")
        self.assertIn("500 5.5.2 NUL byte in command", text)
        self.assertIn("550 5.1.3 <../x@lmtp.example.com> bad address: user starts with '.'", text)
        self.assertIn("550 5.1.3 <lena+../x@lmtp.example.com> bad address: extension", text)
        self.assertIn("550 5.1.3 <a@b/c> bad address: domain contains '/'", text)
        self.assertIn("503 5.5.1 no valid recipients", text)
        self.assertIn("221 2.0.0 bye", text)


# ---------------------------------------------------------------- Courier and Dovecot


class Interop(LabTestCase):
    """The same Maildir written by maildir_deliver and by Courier's
    deliverquota, and by maildir_deliver and Dovecot, in both directions:
    each reads the other's maildirsize, refuses at the same point, and
    recounts to the same totals."""

    @classmethod
    def setUpLab(cls):
        need("deliverquota", "maildirmake")

    def run_ours(self, md, msg, user=None, group=None, quota=None):
        args = ["--maildir", md] + (["--quota", quota] if quota else [])
        return deliver(None, *args, message=msg, user=user, group=group)

    def test_courier_deliverquota_both_ways(self):
        md = self.lab.path("courier")
        subprocess.run(["maildirmake", md], check=True)
        dq = lambda msg, *quota: subprocess.run(["deliverquota", md, *quota], input=msg, capture_output=True,
                                                timeout=30).returncode
        for i in range(3):
            self.assertEqual(dq(make_message(f"courier-{i}", 800), "6000S,20C"), 0)
        # Courier's file (padded lines) read by us: no limit given, its own kept.
        for i in range(3):
            self.assertEqual(self.run_ours(md, make_message(f"ours-{i}", 900)).returncode, 0)
        limit, used, count, _ = read_maildirsize(md)
        self.assertEqual(limit, "6000S,20C")
        self.assertEqual((used, count), maildir_usage(md))
        # Both refuse the message that would not fit, and take one that does.
        room = 6000 - used
        too_big = make_message("too-big", room + 50)
        self.assertEqual(dq(too_big), 77)
        self.assertEqual(self.run_ours(md, too_big).returncode, 75)
        fits = make_message("fits", room - 300)
        self.assertEqual(self.run_ours(md, fits).returncode, 0)
        self.assertEqual(dq(make_message("no-room", 400)), 77)
        # Recounts agree: Courier's of our files (sizes from our ,S=), ours of its.
        expected = maildir_usage(md)
        os.unlink(os.path.join(md, "maildirsize"))
        self.assertEqual(dq(make_message("recount-courier", 10), "100000S,100C"), 0)
        self.assertEqual(read_maildirsize(md)[1:3], maildir_usage(md))
        self.assertEqual(maildir_usage(md)[1], expected[1] + 1)
        os.unlink(os.path.join(md, "maildirsize"))
        self.assertEqual(self.run_ours(md, make_message("recount-ours", 10), quota="100000S,100C").returncode, 0)
        self.assertEqual(read_maildirsize(md)[1:3], maildir_usage(md))

    def test_dovecot_maildir_quota_both_ways(self):
        dovecot = Dovecot(self.lab, storage="6K", messages=10, lmtp=False)
        md = dovecot.maildir("joe")
        for i in range(2):
            self.assertEqual(dovecot.lda("joe", make_message(f"dovecot-{i}", 900))[0], 0)
        with open(os.path.join(md, "maildirsize")) as f:
            self.assertEqual(f.readline().strip(), "6144S,10C")
        # Dovecot's unpadded file read by us, as the same user.
        for i in range(2):
            r = self.run_ours(md, make_message(f"ours-{i}", 1000), user="nobody", group="nogroup")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        _, used, count, _ = read_maildirsize(md)
        self.assertEqual((used, count), maildir_usage(md))
        # ... and ours read by Dovecot.
        q = dovecot.quota("joe")
        self.assertEqual(q["MESSAGE"][0], 4)
        self.assertLessEqual(abs(q["STORAGE"][0] - used / 1024), 1)
        room = 6144 - used
        too_big = make_message("too-big", room + 50)
        rc, err = dovecot.lda("joe", too_big)
        self.assertEqual(rc, 77, err)
        self.assertEqual(self.run_ours(md, too_big, user="nobody", group="nogroup").returncode, 75)
        self.assertEqual(self.run_ours(md, make_message("fits", room - 300), user="nobody", group="nogroup").returncode, 0)
        self.assertEqual(dovecot.lda("joe", make_message("no-room", 400))[0], 77)
        # Dovecot's recount of our files equals the sums we kept.
        before = read_maildirsize(md)[1:3]
        dovecot.doveadm("quota", "recalc", "-u", "joe")
        self.assertEqual(read_maildirsize(md)[1:3], before)
        # And our recount equals Dovecot's.
        os.unlink(os.path.join(md, "maildirsize"))
        self.assertEqual(self.run_ours(md, make_message("recount", 10), user="nobody", group="nogroup", quota="6144S,10C").returncode,
                         0)
        ours = read_maildirsize(md)[1:3]
        dovecot.doveadm("quota", "recalc", "-u", "joe")
        self.assertEqual(read_maildirsize(md)[1:3], ours)


# ---------------------------------------------------------------- purge and reconcile


class Maintenance(LabTestCase):
    """purge and reconcile over a store, driven by an LDIF directory."""

    OLD = time.time() - 40 * 86400

    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        cls.store = lab.path("store")
        os.makedirs(cls.store)
        ldif = lab.write("users.ldif", BASE + entry("u1", "u1@example.com") +
                         entry("u2", "u2@example.com", extra="purgemail: no\n") +
                         entry("u3", "u3@example.com") + entry("u4", "u4@example.org", extra="purgeMail: yes\n"))
        cls.cf = mailgrid_cf(lab, {"deliver_root": cls.store, "deliver_server_host": "ldif:" + ldif,
                                   "deliver_search_base": SUFFIX})
        for user in ("u1@example.com", "u2@example.com", "u4@example.org"):
            for kind in ("old", "flagged", "recent", "sent"):
                args = ["-d", user] if kind != "sent" else ["-d", user.replace("@", "+Sent@")]
                r = deliver(cls.cf, *args, message=make_message(f"{kind}-{user}", 500))
                assert r.returncode == 0, r.stdout
        # Move mail to cur/ as an IMAP client would, flag one, age some.
        for md in cls.maildirs():
            for folder in (md, os.path.join(md, ".Sent")):
                for name in os.listdir(os.path.join(folder, "new")):
                    with open(os.path.join(folder, "new", name), "rb") as f:
                        data = f.read()
                    flags = "FS" if b"flagged-" in data else "S"
                    dst = os.path.join(folder, "cur", f"{name}:2,{flags}")
                    os.rename(os.path.join(folder, "new", name), dst)
                    if not data.count(b"recent-"):
                        os.utime(dst, (cls.OLD, cls.OLD))
        # A Maildir nobody in the directory owns.
        ghost = os.path.join(cls.store, "example.com", "gh", "ghost")
        os.makedirs(os.path.dirname(ghost))
        r = deliver(None, "--maildir", ghost, message=make_message("ghost"))
        assert r.returncode == 0

    @classmethod
    def maildirs(cls):
        return [os.path.join(cls.store, "example.com", "u1", "u1"), os.path.join(cls.store, "example.com", "u2", "u2"),
                os.path.join(cls.store, "example.org", "u4", "u4")]

    def subjects(self, md, folder=""):
        out = set()
        for p in maildir_messages(os.path.join(md, folder) if folder else md, folders=False):
            with open(p, "rb") as f:
                out.add(re.search(rb"Subject: (\w+)-", f.read()).group(1).decode())
        return out

    def test_1_purge_dry_run_then_purge(self):
        before = {md: (self.subjects(md), self.subjects(md, ".Sent")) for md in self.maildirs()}
        r = deliver(self.cf, "purge", "--dry-run", "--days", "30")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("u1@example.com: would remove 1 message", out)
        self.assertIn("purge (dry run): 4 users: 2 purged, 1 skipped (purgemail: no), 1 without a Maildir; "
                      "2 messages", out)
        self.assertEqual({md: (self.subjects(md), self.subjects(md, ".Sent")) for md in self.maildirs()}, before)
        r = deliver(self.cf, "purge")  # deliver_purge_days = 30 by default
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 messages (", r.stdout.decode())
        for md in self.maildirs():
            purged = "/u2/" not in md
            self.assertEqual(self.subjects(md), {"flagged", "recent"} | (set() if purged else {"old"}))
            self.assertEqual(self.subjects(md, ".Sent"), {"sent"}, "folders are not purged")
            _, used, count, _ = read_maildirsize(md)
            self.assertEqual((used, count), maildir_usage(md))

    def test_2_reconcile_lists_then_moves_to_the_attic(self):
        r = deliver(self.cf, "reconcile")
        self.assertEqual(r.returncode, 1, r.stderr)
        out = r.stdout.decode()
        self.assertIn(f"no directory entry: {self.store}/example.com/gh/ghost", out)
        self.assertIn(f"no Maildir: u3@example.com ({self.store}/example.com/u3/u3)", out)
        self.assertIn("reconcile: 4 users, 4 Maildirs: 1 Maildirs without a directory entry", out)
        r = deliver(self.cf, "reconcile", "--remove")
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists(os.path.join(self.store, "example.com", "gh", "ghost")))
        attic = os.path.join(self.store, ".attic")
        moved = [os.path.join(d, n) for d, dirs, _ in os.walk(attic) for n in dirs if n == "ghost"]
        self.assertEqual(len(moved), 1)
        self.assertEqual(len(maildir_messages(moved[0])), 1)
        r = deliver(self.cf, "reconcile")
        self.assertNotIn("no directory entry", r.stdout.decode())

    def test_3_reconcile_refuses_to_empty_the_store_on_a_bad_answer(self):
        r = deliver(self.cf, "reconcile", "--remove", "-o", "deliver_user_filter=(mail=nobody-at-all)")
        self.assertEqual(r.returncode, 1)
        self.assertIn("refusing to move", r.stdout.decode())
        for md in self.maildirs():
            self.assertTrue(os.path.isdir(md))

    def test_4_directory_down_changes_nothing(self):
        port = free_port()
        for cmd in (["purge"], ["reconcile", "--remove"]):
            r = deliver(self.cf, *cmd, "-o", f"deliver_server_host=ldap://127.0.0.1:{port}", "-o",
                        "deliver_timeout=1")
            self.assertEqual(r.returncode, 75, r.stdout + r.stderr)
            self.assertIn("nothing was", r.stderr.decode())
        for md in self.maildirs():
            self.assertTrue(os.path.isdir(md))

    def test_5_progress_bar_only_on_a_terminal(self):
        piped = deliver(self.cf, "purge", "--dry-run")
        self.assertNotIn(b"[#", piped.stderr)
        master, slave = pty.openpty()
        p = subprocess.Popen([binary("maildir_deliver"), "-c", self.cf, "purge", "--dry-run"], stdout=subprocess.PIPE,
                             stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
            elif p.poll() is not None:
                break
        p.wait(10)
        os.close(master)
        self.assertIn(b"purge [########################################] 4/4", seen)


if __name__ == "__main__":
    unittest.main(verbosity=2)
