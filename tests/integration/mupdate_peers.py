"""Cyrus Murder peers for mupdate_bridge's tests and benchmark: backends
and frontends of an unmodified Cyrus IMAP 3.6 pointed at a MUPDATE master
(ours or Cyrus's own `mupdate -m`), each a cyrmaster in its own directory
under the Lab, on 127.0.0.1 and free ports (RECIPES.md sections 2-7).

Passwords live in one private sasldb per lab, one entry per user and realm
(Cyrus looks users up in the realm of its servername)."""

import contextlib
import imaplib
import os
import signal
import socket
import subprocess
import time

from harness import CYRBIN, LOCAL, binary, free_port, mailgrid_cf, need, need_root, wait_for, wait_port

MUPDATE_USER = "mupdate"
MUPDATE_PW = "mupdatepw"
ADMIN_PW = "cyruspw"
PROXY_PW = "proxypw"


class SaslDb:
    """A private sasldb2 file; add(user, pw, realm) registers one login."""

    def __init__(self, lab, name="sasldb2"):
        need("saslpasswd2")
        self.path = lab.path(name)
        self.added = set()

    def add(self, user, password, realm):
        if (user, realm) in self.added:
            return
        subprocess.run(["saslpasswd2", "-p", "-c", "-f", self.path, "-u", realm, user], input=password.encode(),
                       check=True, capture_output=True, timeout=30)
        self.added.add((user, realm))
        subprocess.run(["chown", "cyrus:mail", self.path], check=True)
        os.chmod(self.path, 0o640)

    def realm_users(self, realm, extra=()):
        for user, pw in [("cyrus", ADMIN_PW), (MUPDATE_USER, MUPDATE_PW), ("proxy", PROXY_PW), *extra]:
            self.add(user, pw, realm)


class CyrusInstance:
    """One cyrmaster with the services given, in lab/<name>/."""

    def __init__(self, lab, name, servername, conf, services, start=(), host=LOCAL):
        need_root()
        need(f"{CYRBIN}/master")
        self.lab = lab
        self.name = name
        self.host = host
        self.servername = servername
        self.dir = lab.path(name)
        for sub in ("config/db", "config/socket", "config/proc", "config/lock", "config/log", "spool", "sieve"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.conf = os.path.join(self.dir, "imapd.conf")
        lines = {
            "configdirectory": f"{self.dir}/config",
            "servername": servername,
            "admins": "cyrus",
            "altnamespace": "no",
            "unixhierarchysep": "no",
            "allowplaintext": "yes",
            "syslog_prefix": f"mailgrid-test-{name}",
            "failedloginpause": "0",
        }
        lines.update(conf)
        with open(self.conf, "w") as f:
            for k, v in lines.items():
                f.write(f"{k}: {v}\n")
        starts = "".join(f'  {n} cmd="{c}"\n' for n, c in start)
        svc = "".join(f'  {n} cmd="{c}" listen="{host.address}:{p}" prefork={pre}\n' for n, c, p, pre in services)
        with open(os.path.join(self.dir, "cyrus.conf"), "w") as f:
            f.write(f"START {{\n  recover cmd=\"ctl_cyrusdb -C {self.conf} -r\"\n{starts}}}\n"
                    f"SERVICES {{\n{svc}}}\n"
                    f"EVENTS {{\n  checkpoint cmd=\"ctl_cyrusdb -C {self.conf} -c\" period=30\n}}\n")
        self.first_port = services[0][2]
        subprocess.run(["chown", "-R", "cyrus:mail", self.dir], check=True)
        self.start()

    def start(self, wait=True):
        self.host.run([f"{CYRBIN}/master", "-C", self.conf, "-M", os.path.join(self.dir, "cyrus.conf"),
                       "-p", os.path.join(self.dir, "master.pid"), "-d", "-L", os.path.join(self.dir, "master.err")],
                      check=True, timeout=30)
        self.lab.on_close(self.stop)
        if wait:
            wait_port(self.first_port, 20, self.host.address)

    def stop(self):
        pidfile = os.path.join(self.dir, "master.pid")
        try:
            with open(pidfile) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, what="cyrmaster to stop")

    def tool(self, *args, input=None, timeout=600):
        """A Cyrus tool (ctl_mboxlist, ...) on this instance's configuration, as the cyrus user."""
        return subprocess.run(["runuser", "-u", "cyrus", "--", f"{CYRBIN}/{args[0]}", "-C", self.conf, *args[1:]],
                              input=input, capture_output=True, timeout=timeout)


def murder_sasl(sasldb, mupdate_port, extra=None):
    """imapd.conf lines for a murder member talking to the master at mupdate_port."""
    conf = {
        "mupdate_server": f"127.0.0.1:{mupdate_port}",
        "mupdate_authname": MUPDATE_USER,
        "mupdate_password": MUPDATE_PW,
        "mupdate_config": "standard",
        "sasl_pwcheck_method": "auxprop",
        "sasl_auxprop_plugin": "sasldb",
        "sasl_sasldb_path": sasldb.path,
        "sasl_mech_list": "PLAIN",
        # The MUPDATE client picks the strongest mechanism offered; PLAIN is
        # what mupdate_bridge offers by default anyway.
        "force_sasl_client_mech": "PLAIN",
    }
    conf.update(extra or {})
    return conf


class Backend(CyrusInstance):
    """A Murder backend: imapd, lmtpd; servername is 127.0.0.1:<imap port>,
    which frontends dial and which is the server part of its locations."""

    def __init__(self, lab, name, sasldb, mupdate_port, push_at_start=False, extra=None):
        self.imap_port = free_port()
        self.lmtp_port = free_port()
        servername = f"127.0.0.1:{self.imap_port}"
        sasldb.realm_users(servername, [("alice", "alicepw"), ("bob", "bobpw")])
        self.mupdate_port = mupdate_port
        conf = {
            "partition-default": f"{lab.path(name)}/spool",
            "defaultpartition": "default",
            "sievedir": f"{lab.path(name)}/sieve",
            "proxyservers": "proxy",
            "allowusermoves": "yes",
            "lmtp_downcase_rcpt": "yes",
            "autocreate_quota": "-1",
        }
        conf.update(murder_sasl(sasldb, mupdate_port, extra))
        self.sasldb = sasldb
        c = os.path.join(lab.path(name), "imapd.conf")
        start = [("mupdatepush", f"ctl_mboxlist -C {c} -m")] if push_at_start else []
        super().__init__(lab, name, servername, conf,
                         [("imap", f"imapd -C {c}", self.imap_port, 0), ("lmtp", f"lmtpd -C {c} -a", self.lmtp_port, 0)],
                         start=start)

    def imap(self):
        m = imaplib.IMAP4("127.0.0.1", self.imap_port)
        m.login("cyrus", ADMIN_PW)
        return m

    def admin(self, *ops):
        """Runs IMAP commands as the admin: ('create', name), ('rename', a, b),
        ('delete', name), ('setacl', name, who, rights). Raises on NO."""
        m = self.imap()
        try:
            for op, *args in ops:
                if op == "delete":
                    # Delayed delete keeps DELETED.* entries; an admin must be
                    # allowed to delete (needs the 'x' right).
                    m.setacl(f'"{args[0]}"' if " " in args[0] else args[0], "cyrus", "lrswipkxtecda")
                quoted = [f'"{a}"' if " " in a else a for a in args]
                typ, data = getattr(m, op)(*quoted)
                if typ != "OK":
                    raise RuntimeError(f"{op} {args}: {data}")
            m.logout()
        finally:
            with contextlib.suppress(OSError):
                m.shutdown()

    def local_mailboxes(self):
        """Names in the backend's own mailboxes.db (ctl_mboxlist -d), without
        the markers Cyrus keeps for deleted and renamed names."""
        import json
        r = self.tool("ctl_mboxlist", "-d")
        data = json.loads(r.stdout.decode("utf-8", "replace") or "{}")
        return {name for name, e in data.items() if "d" not in e.get("mbtype", "")}

    def push(self, dry_run=False, timeout=600):
        """ctl_mboxlist -m: the backend's full push to the master."""
        args = ["ctl_mboxlist", "-m"] + (["-w"] if dry_run else [])
        return self.tool(*args, timeout=timeout)


class Frontend(CyrusInstance):
    """A Murder frontend: imapd as proxy and the mupdate slave that follows
    the master with UPDATE into the frontend's mailboxes.db."""

    def __init__(self, lab, name, sasldb, mupdate_port, backends, extra=None):
        self.imap_port = free_port()
        self.slave_port = free_port()
        servername = name
        sasldb.realm_users(servername, [("alice", "alicepw"), ("bob", "bobpw")])
        conf = {
            "proxy_authname": "proxy",
            "proxy_password": PROXY_PW,
            "serverlist": " ".join(b.servername for b in backends),
            "mupdate_retry_delay": "2",
        }
        conf.update(murder_sasl(sasldb, mupdate_port, extra))
        c = os.path.join(lab.path(name), "imapd.conf")
        super().__init__(lab, name, servername, conf,
                         [("imap", f"imapd -C {c}", self.imap_port, 0),
                          ("mupdate", f"mupdate -C {c}", self.slave_port, 1)])

    def mailboxes(self):
        """The frontend's copy of the list: name -> location (ctl_mboxlist -d)."""
        import json
        r = self.tool("ctl_mboxlist", "-d")
        try:
            data = json.loads(r.stdout.decode("utf-8", "replace") or "{}")
        except ValueError:
            return {}
        return {name: f"{e.get('server', '')}!{e.get('partition', '')}" for name, e in data.items()
                if "d" not in e.get("mbtype", "")}


class CyrusMaster(CyrusInstance):
    """Cyrus's own MUPDATE master (mupdate -m), the reference."""

    def __init__(self, lab, name, sasldb, port=None, extra=None):
        self.port = port or free_port()
        servername = name
        sasldb.realm_users(servername)
        conf = {
            "admins": f"cyrus {MUPDATE_USER}",
            "sasl_pwcheck_method": "auxprop",
            "sasl_auxprop_plugin": "sasldb",
            "sasl_sasldb_path": sasldb.path,
            "sasl_mech_list": "PLAIN",
        }
        conf.update(extra or {})
        c = os.path.join(lab.path(name), "imapd.conf")
        super().__init__(lab, name, servername, conf, [("mupdate", f"mupdate -C {c} -m", self.port, 1)])


def start_bridge(lab, params, name="bridge", args=(), wait=True, sasldb=None, servername="mupdate-bridge", port=None):
    """mupdate_bridge -f with a mailgrid.cf of params (sasldb auth by default)."""
    p = {
        "mupdate_listen": f"127.0.0.1:{port or free_port()}",
        "mupdate_store": "file:" + lab.path(name + "-store"),
        "mupdate_servername": servername,
        "mupdate_auth_fail_delay": "0",
        "syslog_name": "mailgrid-test",
    }
    if sasldb:
        sasldb.realm_users(servername)
        p.update({"mupdate_sasl_pwcheck_method": "auxprop", "mupdate_sasl_auxprop_plugin": "sasldb",
                  "mupdate_sasl_sasldb_path": sasldb.path})
    p.update(params)
    conf = mailgrid_cf(lab, p, name=name + ".cf")
    proc = lab.spawn(name, [binary("mupdate_bridge"), "-f", "-c", conf, *args])
    proc.conf = conf
    proc.params = p
    proc.port = int(p["mupdate_listen"].rsplit(":", 1)[1])
    if wait:
        try:
            wait_port(proc.port, 20)
        except AssertionError:
            raise AssertionError(f"mupdate_bridge did not start: {proc.stderr()}")
    return proc


def bridge_tool(proc, *args, timeout=60):
    """mupdate_bridge list|find|user|stats on the same configuration."""
    return subprocess.run([binary("mupdate_bridge"), "-c", proc.conf, *args], capture_output=True, text=True,
                          timeout=timeout)


class Mupdate:
    """A small MUPDATE client for tests (what mupdatetest does, scriptable)."""

    def __init__(self, port, user=MUPDATE_USER, password=MUPDATE_PW, login=True, timeout=30):
        self.s = socket.create_connection(("127.0.0.1", port), timeout)
        self.buf = b""
        self.banner = []
        while True:
            line = self.line()
            self.banner.append(line)
            if line.startswith(b"* OK") or line.startswith(b"* BYE"):
                break
        if login:
            import base64
            resp = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
            self.send(b'A01 AUTHENTICATE "PLAIN" {%d+}\r\n%s\r\n' % (len(resp), resp))
            r = self.line()
            if not r.startswith(b"A01 OK"):
                raise RuntimeError(f"login as {user}: {r!r}")

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def fill(self):
        c = self.s.recv(65536)
        if not c:
            raise EOFError("connection closed")
        self.buf += c

    def line(self):
        """One response line with its literals inlined as raw bytes."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self.fill()
            i = self.buf.index(b"\r\n")
            part, self.buf = self.buf[:i], self.buf[i + 2:]
            out += part
            if part.endswith(b"+}") and b"{" in part:
                n = int(part[part.rindex(b"{") + 1:-2])
                while len(self.buf) < n:
                    self.fill()
                out += b"\r\n" + self.buf[:n]
                self.buf = self.buf[n:]
                continue
            return out

    def command(self, tag, text):
        """Sends `tag text` and returns the lines up to the tagged OK/NO/BAD."""
        self.send(f"{tag} {text}\r\n")
        return self.until(tag)

    def until(self, tag):
        lines = []
        t = tag.encode() + b" "
        while True:
            l = self.line()
            lines.append(l)
            if l.startswith(t) and l[len(t):].split(b" ", 1)[0] in (b"OK", b"NO", b"BAD", b"BYE"):
                return lines

    def close(self):
        with contextlib.suppress(OSError):
            self.s.close()


def lit(s):
    """A MUPDATE argument as a {n+} literal."""
    b = s.encode() if isinstance(s, str) else s
    return "{%d+}\r\n" % len(b) + b.decode("latin-1")


def parse_entries(lines):
    """MAILBOX / RESERVE / DELETE lines -> [(kind, name, location, acl)]."""
    out = []
    for l in lines:
        parts = l.split(b" ", 2)
        if len(parts) < 3 or parts[1] not in (b"MAILBOX", b"RESERVE", b"DELETE"):
            continue
        vals = []
        rest = parts[2]
        while rest:
            if rest.startswith(b"{"):
                j = rest.index(b"}")
                n = int(rest[1:j].rstrip(b"+"))
                start = j + 3
                vals.append(rest[start:start + n].decode("utf-8", "replace"))
                rest = rest[start + n + 1:]
            elif rest.startswith(b'"'):
                j = rest.index(b'"', 1)
                vals.append(rest[1:j].decode())
                rest = rest[j + 2:]
            else:
                j = rest.find(b" ")
                vals.append((rest if j < 0 else rest[:j]).decode())
                rest = b"" if j < 0 else rest[j + 1:]
        while len(vals) < 3:
            vals.append("")
        out.append((parts[1].decode(), vals[0], vals[1], vals[2]))
    return out
