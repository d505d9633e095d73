"""Peers and helpers for maildir_deliver's tests and benchmark: a private
Dovecot (dovecot-lda, doveadm and its LMTP service with Maildir++ quota),
Courier's deliverquota, throwaway system users, small file systems, and
readers for Maildirs and maildirsize files. Standard library only."""

import contextlib
import grp
import os
import pwd
import re
import secrets
import signal
import subprocess

from harness import free_port, need, wait_for, wait_port

DOVECOT_LDA = "/usr/lib/dovecot/dovecot-lda"


# ---------------------------------------------------------------- Maildirs


def maildir_messages(md, folders=True):
    """Paths of every message in new/ and cur/ of md (and of its folders)."""
    out = []
    dirs = [md]
    if folders and os.path.isdir(md):
        dirs += [os.path.join(md, d) for d in sorted(os.listdir(md))
                 if d.startswith(".") and d not in (".", "..") and os.path.isdir(os.path.join(md, d))]
    for d in dirs:
        for sub in ("new", "cur"):
            p = os.path.join(d, sub)
            if os.path.isdir(p):
                out += [os.path.join(p, f) for f in sorted(os.listdir(p)) if not f.startswith(".")]
    return out


def maildir_usage(md, trash=False):
    """(bytes, messages) as a Maildir++ recount sees them: ,S= or the size."""
    total = count = 0
    for path in maildir_messages(md):
        if not trash and "/.Trash/" in path:
            continue
        m = re.search(r",S=(\d+)", os.path.basename(path))
        total += int(m.group(1)) if m else os.path.getsize(path)
        count += 1
    return total, count


def read_maildirsize(md):
    """(limit line, bytes, messages, lines after the header)."""
    with open(os.path.join(md, "maildirsize")) as f:
        text = f.read()
    lines = text.split("\n")
    assert text.endswith("\n"), f"torn maildirsize: {text!r}"
    body = [l for l in lines[1:] if l.strip()]
    total = sum(int(l.split()[0]) for l in body)
    count = sum(int(l.split()[1]) for l in body)
    return lines[0], total, count, len(body)


def make_message(subject, size=0, body=None):
    """A message with LF line ends, padded with text lines to about size bytes."""
    head = f"From: sender@sender.test\nTo: someone@example.com\nSubject: {subject}\nMessage-Id: <{subject}@test>\n\n"
    text = body if body is not None else f"token {subject}\n"
    line = "The quick brown fox jumps over the lazy dog 0123456789.\n"
    while len(head) + len(text) < size:
        text += line
    return (head + text).encode()


# ---------------------------------------------------------------- system users


class SystemUser:
    """A real account with a home directory in the lab (local(8) runs
    .forward commands as the recipient), removed when the lab closes."""

    def __init__(self, lab, prefix="mgt"):
        need("useradd", "userdel")
        self.name = prefix + secrets.token_hex(4)
        self.home = lab.path("home", self.name)
        os.makedirs(os.path.dirname(self.home), exist_ok=True)
        subprocess.run(["useradd", "-m", "-d", self.home, "-s", "/bin/sh", "-U", self.name], check=True,
                       capture_output=True)
        lab.on_close(self.remove)
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid

    def chown(self, path):
        for d, dirs, files in os.walk(path):
            os.chown(d, self.uid, self.gid)
            for f in files:
                os.chown(os.path.join(d, f), self.uid, self.gid)

    def remove(self):
        # -f: the mail user may still own a process that is being stopped.
        subprocess.run(["userdel", "-f", self.name], capture_output=True)
        with contextlib.suppress(KeyError):
            grp.getgrnam(self.name)
            subprocess.run(["groupdel", self.name], capture_output=True)


# ---------------------------------------------------------------- small file systems


class Tmpfs:
    """A tmpfs of a few megabytes mounted in the lab: a disk that fills up,
    and can be made read-only."""

    def __init__(self, lab, name, size="1m"):
        self.path = lab.path(name)
        os.makedirs(self.path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", self.path], check=True,
                       capture_output=True)
        lab.on_close(self.unmount)

    def read_only(self, on=True):
        subprocess.run(["mount", "-o", "remount," + ("ro" if on else "rw"), self.path], check=True,
                       capture_output=True)

    def unmount(self):
        subprocess.run(["umount", "-l", self.path], capture_output=True)


def can_mount_tmpfs(lab):
    probe = lab.path("tmpfs-probe")
    os.makedirs(probe, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], capture_output=True)
    if r.returncode == 0:
        subprocess.run(["umount", probe], capture_output=True)
    return r.returncode == 0


# ---------------------------------------------------------------- Dovecot


class Dovecot:
    """A private Dovecot (2.3) with Maildir++ quota: dovecot-lda and
    doveadm run against its config, and an LMTP service on a free port.
    Mail belongs to `user` (Dovecot refuses uid 0)."""

    def __init__(self, lab, name="dovecot", user="nobody", group="nogroup", storage="1G", messages=0,
                 fsync="optimized", lmtp=True, mail_root=None):
        need("dovecot", "doveadm", DOVECOT_LDA)
        self.lab = lab
        self.dir = lab.path(name)
        self.mail_root = mail_root or os.path.join(self.dir, "mail")
        for sub in ("run", "state", "home"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        os.makedirs(self.mail_root, exist_ok=True)
        pw = pwd.getpwnam(user)
        self.uid, self.gid = pw.pw_uid, grp.getgrnam(group).gr_gid
        for p in (self.mail_root, os.path.join(self.dir, "home")):
            os.chown(p, self.uid, self.gid)
        self.lmtp_port = free_port() if lmtp else None
        self.conf = os.path.join(self.dir, "dovecot.conf")
        rule = f"*:storage={storage}" + (f":messages={messages}" if messages else "")
        listener = f"""service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
  process_min_avail = 4
}}
""" if lmtp else ""
        with open(self.conf, "w") as f:
            f.write(f"""base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
ssl = no
protocols = {"lmtp" if lmtp else "none"}
mail_location = maildir:{self.mail_root}/%u
mail_fsync = {fsync}
first_valid_uid = 1
default_login_user = {user}
default_internal_user = {user}
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={self.dir}/home/%u
}}
mail_plugins = quota
plugin {{
  quota = maildir:User quota
  quota_rule = {rule}
  # No 10% of grace for the last message: refuse exactly at the limit.
  quota_grace = 0
}}
protocol lda {{
  mail_plugins = $mail_plugins
}}
protocol lmtp {{
  mail_plugins = $mail_plugins
}}
lmtp_save_to_detail_mailbox = no
{listener}""")
        # The master daemonizes and keeps its output descriptors: give it none
        # to hold (it logs to log_path).
        lab.on_close(self.stop)
        subprocess.run(["dovecot", "-c", self.conf], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        wait_for(lambda: os.path.exists(os.path.join(self.dir, "run", "auth-userdb")), 15,
                 what="dovecot's auth service")
        if lmtp:
            wait_port(self.lmtp_port, 15)

    def maildir(self, user):
        return os.path.join(self.mail_root, user)

    def lda(self, user, message):
        """dovecot-lda -e: (exit status, stderr)."""
        r = subprocess.run([DOVECOT_LDA, "-c", self.conf, "-d", user, "-e"], input=message, capture_output=True,
                           timeout=30)
        return r.returncode, r.stderr.decode("utf-8", "replace")

    def doveadm(self, *args):
        r = subprocess.run(["doveadm", "-c", self.conf, *args], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)}: {r.stderr}")
        return r.stdout

    def quota(self, user):
        """{'STORAGE': (value KiB, limit), 'MESSAGE': (value, limit)} from doveadm quota get."""
        out = {}
        for line in self.doveadm("-f", "tab", "quota", "get", "-u", user).splitlines()[1:]:
            cols = line.split("\t")
            out[cols[1]] = (int(cols[2]), cols[3])
        return out

    def log(self):
        try:
            with open(os.path.join(self.dir, "dovecot.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        subprocess.run(["doveadm", "-c", self.conf, "stop"], capture_output=True, timeout=30)
        pidfile = os.path.join(self.dir, "run", "master.pid")
        with contextlib.suppress(OSError, ValueError, AssertionError):
            pid = int(open(pidfile).read())
            wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, what="dovecot to stop")
