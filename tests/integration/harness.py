"""Real peers on loopback for mailgrid's integration tests.

Every test starts what it needs (slapd, Redis, Postfix, nginx, Cyrus, the
mailgrid daemons) from a temporary directory, on 127.0.0.1 and free ports,
and stops all of it afterwards. Nothing here touches /etc or system
services. Standard library only.
"""

import contextlib
import os
import random
import shutil
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("MAILGRID_BUILD", os.path.join(REPO, "build"))
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
SCHEMA = os.path.join(REPO, "deploy", "ldap", "mailsuite.schema")
SUFFIX = "dc=example,dc=com"
ADMIN_DN = "cn=admin," + SUFFIX
ADMIN_PW = "adminpw"


def binary(name):
    """Path of a mailgrid program in the build tree."""
    for sub in (name, "admin", ""):
        p = os.path.join(BUILD, sub, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise unittest.SkipTest(f"{name} is not built in {BUILD}")


def need(*programs):
    for p in programs:
        if not shutil.which(p) and not os.path.exists(p):
            raise unittest.SkipTest(f"{p} is not installed")


def need_root():
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root (Postfix, slapd ownership)")


_ports_given = set()


def free_port():
    """A port to listen on. Not from the kernel's ephemeral range
    (32768-60999): an outgoing connection made meanwhile (a daemon's
    connection to slapd, a client of an earlier test) could take it before
    the peer that was promised it binds. Never the same port twice."""
    rnd = random.Random()
    for _ in range(1000):
        port = rnd.randrange(20000, 32000)
        if port in _ports_given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    raise RuntimeError("no free port in 20000-32000")


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), 0.2).close()
        return True
    except OSError:
        return False


def wait_port(port, timeout=10.0, host="127.0.0.1"):
    wait_for(lambda: port_open(port, host), timeout, what=f"{host}:{port} to accept connections")


class Host:
    """Where a peer runs: this machine's loopback, or a network namespace
    of a farm (see farm.py) with an address of its own."""

    def __init__(self, address="127.0.0.1", netns=None, name="local"):
        self.address = address
        self.netns = netns
        self.name = name

    def wrap(self, args):
        return (["ip", "netns", "exec", self.netns] if self.netns else []) + [str(a) for a in args]

    def run(self, args, **kw):
        return subprocess.run(self.wrap(args), **kw)


LOCAL = Host()


class Proc:
    """A process started by the lab, its output in files of the lab dir."""

    def __init__(self, lab, name, args, env=None, stdin=None, cwd=None):
        self.name = name
        self.args = [str(a) for a in args]
        self.out_path = lab.path(f"{name}.out")
        self.err_path = lab.path(f"{name}.err")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        with open(self.out_path, "ab") as out, open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(
                self.args,
                stdout=out,
                stderr=err,
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
            )
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=5.0):
        if not self.alive():
            return self.proc.returncode
        try:
            os.killpg(self.pid, signal.SIGCONT)
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            return self.proc.wait(timeout)

    def kill(self):
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def stdout(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()


class Lab:
    """A temporary directory and everything started in it."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix=f"mailgrid-{name}-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.procs = []
        self.cleanups = []

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write(self, name, text, mode=0o644):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def spawn(self, name, args, host=None, **kw):
        p = Proc(self, name, host.wrap(args) if host else args, **kw)
        self.procs.append(p)
        return p

    def on_close(self, fn):
        self.cleanups.append(fn)

    def close(self):
        for fn in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                fn()
        for p in reversed(self.procs):
            with contextlib.suppress(Exception):
                p.stop()
        if os.environ.get("MAILGRID_KEEP_LAB"):
            print(f"lab kept in {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- slapd


class Slapd:
    """OpenLDAP slapd with the mail suite schema and an mdb database."""

    def __init__(self, lab, ldif_files=(), port=None, name="slapd", tls=False, host=LOCAL, syncprov=True):
        need("/usr/sbin/slapd", "/usr/sbin/slapadd", "ldapadd")
        self.lab = lab
        self.name = name
        self.host = host
        self.port = port or free_port()
        self.uri = f"ldap://{host.address}:{self.port}/"
        self.dir = lab.path(name)
        os.makedirs(os.path.join(self.dir, "db"), exist_ok=True)
        self.conf = os.path.join(self.dir, "slapd.conf")
        self.ldaps_port = None
        tls_lines = ""
        if tls:
            # A self-signed certificate for 127.0.0.1; clients trust it as
            # their CA file.
            need("openssl")
            self.cert = os.path.join(self.dir, "cert.pem")
            key = os.path.join(self.dir, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                            "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out",
                            self.cert], check=True, capture_output=True)
            os.chmod(key, 0o644)
            self.ldaps_port = free_port()
            tls_lines = f"TLSCertificateFile {self.cert}\nTLSCertificateKeyFile {key}\n"
        with open(self.conf, "w") as f:
            f.write(
                tls_lines +
                f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include {SCHEMA}
pidfile {self.dir}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
{"moduleload pw-sha2" if os.path.exists("/usr/lib/ldap/pw-sha2.so") else ""}
{"moduleload syncprov" if syncprov else ""}
sizelimit unlimited
threads 8
database mdb
maxsize 4294967296
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PW}
directory {self.dir}/db
index objectClass eq
index uid,mail,mailacceptinggeneralid,maildrop,cn eq
{"index entryCSN,entryUUID eq" if syncprov else ""}
access to attrs=userPassword by anonymous auth by self write by * none
access to * by * read
{"overlay syncprov" if syncprov else ""}
"""
            )
        for ldif in ldif_files:
            self.slapadd(ldif)
        self.proc = None
        self.start()

    def slapadd(self, ldif):
        r = subprocess.run(
            ["/usr/sbin/slapadd", "-q", "-f", self.conf, "-l", ldif], capture_output=True, text=True
        )
        if r.returncode != 0:
            raise RuntimeError(f"slapadd {ldif}: {r.stderr}")

    def start(self):
        urls = f"ldap://{self.host.address}:{self.port}/"
        if self.ldaps_port:
            urls += f" ldaps://{self.host.address}:{self.ldaps_port}/"
        self.proc = self.lab.spawn(self.name, ["/usr/sbin/slapd", "-d", "0", "-f", self.conf, "-h", urls],
                                   host=self.host)
        wait_port(self.port, 15, self.host.address)
        # The port accepts before the database is ready: wait for a search.
        wait_for(lambda: self.search(SUFFIX, "base", "(objectClass=*)", check=False) is not None, 10,
                 what="slapd to answer")

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def pause(self):
        self.proc.signal(signal.SIGSTOP)
        # SIGSTOP takes effect when each thread is next scheduled: wait
        # until all of them are stopped, or a request sent now may still
        # be answered.
        def stopped():
            try:
                tasks = os.listdir(f"/proc/{self.proc.pid}/task")
                return all(open(f"/proc/{self.proc.pid}/task/{t}/stat").read().split(") ")[1][0] in "Tt"
                           for t in tasks)
            except OSError:
                return False
        wait_for(stopped, 10, what="slapd to stop")

    def resume(self):
        self.proc.signal(signal.SIGCONT)

    def search(self, base, scope, flt, *attrs, check=True):
        r = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.uri, "-b", base, "-s", scope, flt, *attrs],
            capture_output=True, text=True, timeout=20,
        )
        if r.returncode not in (0, 32):
            if check:
                raise RuntimeError(f"ldapsearch: {r.stderr}")
            return None
        return r.stdout

    def modify(self, ldif_text):
        r = subprocess.run(
            ["ldapmodify", "-x", "-H", self.uri, "-D", ADMIN_DN, "-w", ADMIN_PW],
            input=ldif_text, capture_output=True, text=True, timeout=20,
        )
        if r.returncode != 0:
            raise RuntimeError(f"ldapmodify: {r.stderr}")


# ---------------------------------------------------------------- redis


class Redis:
    def __init__(self, lab, name="redis", host=LOCAL, port=None):
        need("redis-server", "redis-cli")
        self.lab = lab
        self.name = name
        self.host = host
        self.port = port or free_port()
        self.start()

    def start(self):
        self.proc = self.lab.spawn(
            self.name,
            ["redis-server", "--port", str(self.port), "--bind", self.host.address, "--save", "", "--appendonly",
             "no", "--daemonize", "no", "--dir", self.lab.dir, "--protected-mode", "no"],
            host=self.host,
        )
        wait_port(self.port, 10, self.host.address)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-h", self.host.address, "-p", str(self.port), *args],
                              capture_output=True, text=True, timeout=10).stdout.strip()

    def stop(self):
        self.proc.stop()


# ---------------------------------------------------------------- SMTP sink


class SmtpSink:
    """A minimal SMTP/LMTP server that records envelopes and messages."""

    def __init__(self, lab, lmtp=False, address="127.0.0.1"):
        self.lmtp = lmtp
        self.address = address
        self.messages = []  # (mail_from, [rcpt], data)
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()
        lab.on_close(self.close)

    def close(self):
        self.running = False
        # close() alone leaves accept() blocked in its thread, which then
        # lets one more client through after the test; shutdown() wakes it.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        f = conn.makefile("rb")
        send = lambda s: conn.sendall(s.encode() + b"\r\n")
        send("220 sink ready")
        mail_from, rcpts = None, []
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line.decode("utf-8", "replace").rstrip("\r\n")
                up = cmd.upper()
                if up.startswith(("EHLO", "LHLO")):
                    send("250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES")
                elif up.startswith("HELO"):
                    send("250 sink")
                elif up.startswith("MAIL FROM:"):
                    mail_from, rcpts = cmd[10:].split()[0].strip("<>"), []
                    send("250 2.1.0 ok")
                elif up.startswith("RCPT TO:"):
                    rcpts.append(cmd[8:].split()[0].strip("<>"))
                    send("250 2.1.5 ok")
                elif up == "DATA":
                    send("354 go")
                    data = []
                    while True:
                        l = f.readline()
                        if not l or l in (b".\r\n", b".\n"):
                            break
                        data.append(l[1:] if l.startswith(b"..") else l)
                    with self.lock:
                        self.messages.append((mail_from, list(rcpts), b"".join(data)))
                    for _ in rcpts if self.lmtp else [0]:
                        send("250 2.0.0 stored")
                elif up == "QUIT":
                    send("221 bye")
                    return
                elif up in ("RSET", "NOOP"):
                    send("250 ok")
                else:
                    send("502 5.5.2 unknown")
        except OSError:
            pass
        finally:
            conn.close()

    def wait(self, count, timeout=30):
        wait_for(lambda: len(self.messages) >= count, timeout, what=f"{count} message(s) at sink :{self.port}")
        return self.messages

    def recipients(self):
        with self.lock:
            return sorted(r for _, rs, _ in self.messages for r in rs)


# ---------------------------------------------------------------- fault proxy


class FaultProxy:
    """TCP proxy between a client and a server that can black-hole or reset
    the connections it carries, as a firewall that drops idle state does."""

    def __init__(self, lab, target_port):
        self.target = target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.pairs = []  # [client, server, state] state: "pass" | "hole"
        self.lock = threading.Lock()
        self.running = True
        self.accepted = 0
        self.delay = 0.0  # seconds added to every server -> client chunk
        # bytes: the next server -> client chunk holding them is not passed
        # on; the connection is reset instead (a reply lost on the way)
        self.cut_reply = None
        threading.Thread(target=self._accept, daemon=True).start()
        lab.on_close(self.close)

    def close(self):
        self.running = False
        # close() alone leaves accept() blocked in its thread, which then
        # lets one more client through after the test; shutdown() wakes it.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        with self.lock:
            for c, s, _ in self.pairs:
                for x in (c, s):
                    with contextlib.suppress(OSError):
                        x.close()

    def _accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if not self.running:
                c.close()
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target), 5)
            except OSError:
                c.close()
                continue
            pair = [c, s, "pass"]
            with self.lock:
                self.pairs.append(pair)
                self.accepted += 1
            threading.Thread(target=self._pump, args=(pair, 0, 1), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, 1, 0), daemon=True).start()

    def _pump(self, pair, a, b):
        while True:
            try:
                data = pair[a].recv(65536)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    pair[b].shutdown(socket.SHUT_WR)
                return
            if pair[2] == "hole":
                continue  # swallowed, like a firewall that forgot the flow
            if a == 1 and self.delay:
                time.sleep(self.delay)
            if a == 1 and self.cut_reply is not None and self.cut_reply in data:
                self.cut_reply = None
                for x in pair[:2]:  # shutdown wakes the other pump, blocked in recv
                    with contextlib.suppress(OSError):
                        x.shutdown(socket.SHUT_RDWR)
                self._reset(pair)
                return
            try:
                pair[b].sendall(data)
            except OSError:
                return

    def blackhole_existing(self):
        with self.lock:
            for p in self.pairs:
                p[2] = "hole"

    @staticmethod
    def _reset(pair):
        for x in pair[:2]:
            with contextlib.suppress(OSError):
                x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                x.close()

    def reset_existing(self):
        with self.lock:
            for pair in self.pairs:
                self._reset(pair)
            self.pairs = []


# ---------------------------------------------------------------- Postfix


MASTER_CF = """\
{smtpd_port}    inet  n       -      n      -      -       smtpd
pickup             unix  n       -      n      60     1       pickup
cleanup            unix  n       -      n      -      0       cleanup
qmgr               unix  n       -      n      1      1       qmgr
rewrite            unix  -       -      n      -      -       trivial-rewrite
bounce             unix  -       -      n      -      0       bounce
defer              unix  -       -      n      -      0       bounce
trace              unix  -       -      n      -      0       bounce
verify             unix  -       -      n      -      1       verify
flush              unix  n       -      n      1000?  0       flush
proxymap           unix  -       -      n      -      -       proxymap
showq              unix  n       -      n      -      -       showq
error              unix  -       -      n      -      -       error
retry              unix  -       -      n      -      -       error
discard            unix  -       -      n      -      -       discard
local              unix  -       n      n      -      -       local
smtp               unix  -       -      n      -      -       smtp
lmtp               unix  -       -      n      -      -       lmtp
anvil              unix  -       -      n      -      1       anvil
scache             unix  -       -      n      -      1       scache
postlog            unix-dgram n  -      n      -      1       postlogd
"""


class Postfix:
    """A private Postfix instance: its own config dir, queue and log."""

    def __init__(self, lab, name="postfix", main_cf=None, master_cf_extra="", start=True, host=LOCAL,
                 smtpd_port=None):
        need_root()
        need("postfix", "postmap")
        self.lab = lab
        self.name = name
        self.host = host
        self.dir = lab.path(name)
        self.etc = os.path.join(self.dir, "etc")
        self.smtpd_port = smtpd_port or free_port()
        os.makedirs(self.etc, exist_ok=True)
        os.makedirs(os.path.join(self.dir, "queue"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        shutil.chown(os.path.join(self.dir, "data"), "postfix", "postfix")
        self.maillog = os.path.join(self.dir, "maillog")
        params = {
            "compatibility_level": "3.6",
            "queue_directory": os.path.join(self.dir, "queue"),
            "data_directory": os.path.join(self.dir, "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "maillog_file": self.maillog,
            "maillog_file_prefixes": "/tmp, /var, /dev/stdout",
            "myhostname": "mx.test.example",
            "mydomain": "test.example",
            "myorigin": "$mydomain",
            "mydestination": "",
            "local_transport": "error:local delivery is disabled",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": host.address,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "biff": "no",
            "smtp_dns_support_level": "disabled",
            "disable_dns_lookups": "yes",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtpd_error_sleep_time": "0",
        }
        params.update(main_cf or {})
        self.params = params
        self._write_config(master_cf_extra)
        if start:
            self.start()

    def _write_config(self, master_cf_extra=""):
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for k, v in self.params.items():
                f.write(f"{k} = {v}\n")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(smtpd_port=f"{self.host.address}:{self.smtpd_port}"))
            f.write(master_cf_extra)

    def postfix(self, *args, check=True):
        r = self.host.run(["postfix", "-c", self.etc, *args], capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)}: {r.stdout}{r.stderr}\n{self.log()}")
        return r

    def start(self):
        self.postfix("check")
        self.postfix("start")
        self.lab.on_close(lambda: self.postfix("stop", check=False))
        wait_port(self.smtpd_port, 20, self.host.address)

    def reload(self, **params):
        self.params.update(params)
        self._write_config()
        self.postfix("reload")

    def postmap_q(self, key, table):
        """(exit status, stdout, stderr) of postmap -q KEY TABLE."""
        r = self.host.run(["postmap", "-c", self.etc, "-q", key, table], capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout.rstrip("\n"), r.stderr

    def postmap_q_stdin(self, keys, table):
        r = self.host.run(["postmap", "-c", self.etc, "-q", "-", table], input="".join(k + "\n" for k in keys),
                          capture_output=True, text=True, timeout=300)
        return r.returncode, r.stdout, r.stderr

    def smtp(self):
        s = smtplib.SMTP(self.host.address, self.smtpd_port, timeout=30)
        s.ehlo("client.test.example")
        return s

    def send(self, sender, rcpt, subject="test", body="hello\n"):
        with self.smtp() as s:
            msg = f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\n{body}"
            s.sendmail(sender, [rcpt], msg)

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def flush(self):
        self.host.run(["postqueue", "-c", self.etc, "-f"], capture_output=True, timeout=30)

    def queue_empty(self):
        r = self.host.run(["postqueue", "-c", self.etc, "-p"], capture_output=True, text=True, timeout=30)
        return "Mail queue is empty" in r.stdout


# ---------------------------------------------------------------- mailgrid


def mailgrid_cf(lab, params, name="mailgrid.cf"):
    text = "".join(f"{k} = {v}\n" for k, v in params.items())
    return lab.write(name, text)


def start_tablemap(lab, args, ports=(), name="tablemap", host=LOCAL):
    p = lab.spawn(name, [binary("ldap_tablemap"), "-f", *args], host=host)
    for port in ports:
        try:
            wait_port(port, 10, host.address)
        except AssertionError:
            raise AssertionError(f"ldap_tablemap did not start: {p.stderr()}")
    return p


def tcp_lookup(port, key, timeout=15):
    """One tcp_table request on a fresh connection: (code, text)."""
    from urllib.parse import quote
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.sendall(b"get " + tcp_quote(key) + b"\n")
        reply = recv_line(s)
    return int(reply[:3]), reply[4:]


def tcp_quote(key):
    if isinstance(key, str):
        key = key.encode()
    out = bytearray()
    for b in key:
        if b == 0x25 or b <= 0x20 or b >= 0x7F:
            out += b"%%%02X" % b
        else:
            out.append(b)
    return bytes(out)


def tcp_unquote(text):
    import re
    return re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), text)


def recv_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf.rstrip(b"\n").decode("utf-8", "replace")


def netstring(payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return str(len(payload)).encode() + b":" + payload + b","


def socketmap_lookup(port, name, key, timeout=15):
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.sendall(netstring(name.encode() + b" " + (key.encode() if isinstance(key, str) else key)))
        return read_netstring(s)


def read_netstring(s):
    buf = b""
    while b":" not in buf:
        c = s.recv(1)
        if not c:
            raise EOFError("connection closed")
        buf += c
    n = int(buf[:-1])
    data = b""
    while len(data) < n + 1:
        c = s.recv(n + 1 - len(data))
        if not c:
            raise EOFError("connection closed")
        data += c
    assert data[-1:] == b",", data
    return data[:-1].decode("utf-8", "replace")


def http_get(port, path, headers=None, timeout=10):
    """(status, headers dict lowercased, body) over a fresh HTTP/1.0 connection."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        req = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
        for k, v in (headers or {}).items():
            req += f"{k}: {v}\r\n"
        s.sendall((req + "\r\n").encode())
        data = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body.decode("utf-8", "replace")


class LabTestCase(unittest.TestCase):
    """A test class with one Lab for all its tests (setUpClass/tearDownClass)."""

    lab = None

    @classmethod
    def setUpClass(cls):
        cls.lab = Lab(cls.__name__.lower())
        try:
            cls.setUpLab()
        except BaseException:
            cls.lab.close()
            raise

    @classmethod
    def setUpLab(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        if cls.lab:
            cls.lab.close()


# ---------------------------------------------------------------- Cyrus IMAP

CYRBIN = "/usr/lib/cyrus/bin"


class Cyrus:
    """A Cyrus IMAP server (cyrmaster with imapd, pop3d, lmtpd) in its own
    directory, as the user cyrus. Passwords are checked through a saslauthd
    socket (ours) unless sasl='sasldb'."""

    def __init__(self, lab, name="cyrus", saslauthd_path=None, servername=None, extra=None, host=LOCAL,
                 ports=None, prefork=0):
        need_root()
        need(f"{CYRBIN}/master", f"{CYRBIN}/imapd")
        self.lab = lab
        self.name = name
        self.host = host
        self.dir = lab.path(name)
        self.imap_port, self.pop3_port, self.lmtp_port = ports or (free_port(), free_port(), free_port())
        self.servername = servername or f"{name}.test.example"
        for sub in ("config/db", "config/socket", "config/proc", "config/lock", "config/log", "spool", "sieve"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.conf = os.path.join(self.dir, "imapd.conf")
        lines = {
            "configdirectory": f"{self.dir}/config",
            "partition-default": f"{self.dir}/spool",
            "defaultpartition": "default",
            "sievedir": f"{self.dir}/sieve",
            "servername": self.servername,
            "admins": "cyrus",
            "altnamespace": "no",
            "unixhierarchysep": "no",
            "allowplaintext": "yes",
            "lmtp_downcase_rcpt": "yes",
            "sasl_mech_list": "PLAIN LOGIN",
            "syslog_prefix": f"mailgrid-test-{name}",
            "failedloginpause": "0",
            "autocreate_quota": "-1",
        }
        if saslauthd_path:
            lines["sasl_pwcheck_method"] = "saslauthd"
            lines["sasl_saslauthd_path"] = saslauthd_path
        lines.update(extra or {})
        with open(self.conf, "w") as f:
            for k, v in lines.items():
                f.write(f"{k}: {v}\n")
        with open(os.path.join(self.dir, "cyrus.conf"), "w") as f:
            f.write(f"""START {{
  recover cmd="ctl_cyrusdb -C {self.conf} -r"
}}
SERVICES {{
  imap cmd="imapd -C {self.conf}" listen="{host.address}:{self.imap_port}" prefork={prefork}
  pop3 cmd="pop3d -C {self.conf}" listen="{host.address}:{self.pop3_port}" prefork={prefork}
  lmtp cmd="lmtpd -C {self.conf} -a" listen="{host.address}:{self.lmtp_port}" prefork={prefork}
}}
EVENTS {{
  checkpoint cmd="ctl_cyrusdb -C {self.conf} -c" period=30
}}
""")
        subprocess.run(["chown", "-R", "cyrus:mail", self.dir], check=True)
        self.start()

    def start(self):
        # A restart right after stop() can still find a port held by a
        # service process finishing its work (cyrmaster then exits 71):
        # try again for a few seconds.
        for attempt in range(10):
            r = self.host.run([f"{CYRBIN}/master", "-C", self.conf, "-M", os.path.join(self.dir, "cyrus.conf"),
                               "-p", os.path.join(self.dir, "master.pid"), "-d", "-L",
                               os.path.join(self.dir, "master.err")], timeout=30)
            if r.returncode == 0:
                break
            if attempt == 9:
                raise RuntimeError(f"cyrmaster {self.name} exited {r.returncode}")
            time.sleep(1)
        self.lab.on_close(self.stop)
        wait_port(self.imap_port, 20, self.host.address)

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
        # Its services may outlive it for a moment; a restart must find
        # the ports free (cyrmaster exits 71 when it cannot bind).
        ports = [p for p in (self.imap_port, self.pop3_port, self.lmtp_port) if p]
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not any(port_open(p, self.host.address) for p in ports), 10,
                     what="Cyrus's ports to close")

    def create_mailbox(self, name, admin_password, admin="cyrus"):
        """CREATE as the Cyrus admin (who must pass the instance's password check)."""
        import imaplib
        m = imaplib.IMAP4(self.host.address, self.imap_port)
        try:
            m.login(admin, admin_password)
            typ, data = m.create(name)
            if typ != "OK":
                raise RuntimeError(f"CREATE {name}: {data}")
            m.logout()
        finally:
            with contextlib.suppress(OSError):
                m.shutdown()

    def deliver(self, rcpt, message):
        """Deliver over LMTP (lmtpd -a: no authentication)."""
        with smtplib.LMTP(self.host.address, self.lmtp_port, timeout=30) as l:
            l.sendmail("sender@test.example", [rcpt], message)


# ---------------------------------------------------------------- nginx mail


class NginxMail:
    """nginx's mail proxy (libnginx-mod-mail) asking auth_http_url."""

    def __init__(self, lab, auth_http, name="nginx", secret=None, host=LOCAL, ports=None):
        need_root()
        need("nginx", "/usr/lib/nginx/modules/ngx_mail_module.so")
        self.lab = lab
        self.host = host
        self.dir = lab.path(name)
        os.makedirs(self.dir, exist_ok=True)
        self.imap_port, self.pop3_port = ports or (free_port(), free_port())
        self.conf = os.path.join(self.dir, "nginx.conf")
        header = f"    auth_http_header X-Auth-Key {secret};\n" if secret else ""
        with open(self.conf, "w") as f:
            f.write(f"""load_module /usr/lib/nginx/modules/ngx_mail_module.so;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log info;
events {{ worker_connections 1024; }}
mail {{
    server_name mail.test.example;
    auth_http {auth_http};
{header}    auth_http_timeout 10s;
    proxy_pass_error_message on;
    server {{
        listen {host.address}:{self.imap_port};
        protocol imap;
        imap_auth plain login;
    }}
    server {{
        listen {host.address}:{self.pop3_port};
        protocol pop3;
        pop3_auth plain;
    }}
}}
""")
        r = host.run(["nginx", "-t", "-p", self.dir + "/", "-c", self.conf, "-e", self.dir + "/error.log"],
                     capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"nginx -t: {r.stderr}")
        host.run(["nginx", "-p", self.dir + "/", "-c", self.conf, "-e", self.dir + "/error.log"], check=True)
        lab.on_close(self.stop)
        wait_port(self.imap_port, 10, host.address)
        wait_port(self.pop3_port, 10, host.address)

    def stop(self):
        try:
            with open(os.path.join(self.dir, "nginx.pid")) as f:
                pid = int(f.read())
        except (OSError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, what="nginx to stop")

    def error_log(self):
        with open(os.path.join(self.dir, "error.log"), errors="replace") as f:
            return f.read()


# ---------------------------------------------------------------- browser


class WebDriver:
    """Headless Debian Chromium driven through chromedriver's W3C WebDriver
    HTTP API, with the standard library only."""

    def __init__(self, lab, name="chromedriver"):
        need("chromedriver", "chromium")
        self.port = free_port()
        self.proc = lab.spawn(name, ["chromedriver", f"--port={self.port}"])
        wait_port(self.port, 20)
        profile = lab.path(f"{name}-profile")
        os.makedirs(profile, exist_ok=True)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,900"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium", "args": args}}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]
        lab.on_close(self.quit)

    def _call(self, method, path, body=None, timeout=60):
        import json
        import urllib.request
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"webdriver {method} {path}: {e.read()[:500]!r}") from None

    def _s(self, path):
        return f"/session/{self.session}{path}"

    def get(self, url):
        self._call("POST", self._s("/url"), {"url": url})

    def find(self, css, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            try:
                el = self._call("POST", self._s("/element"), {"using": "css selector", "value": css})
                return list(el.values())[0]
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no element {css!r} within {timeout}s") from None
                time.sleep(0.2)

    def type(self, css, text):
        self._call("POST", self._s(f"/element/{self.find(css)}/value"), {"text": text})

    def click(self, css):
        self._call("POST", self._s(f"/element/{self.find(css)}/click"), {})

    def text(self, css):
        return self._call("GET", self._s(f"/element/{self.find(css)}/text"))

    def page_text(self):
        return self._call("POST", self._s("/execute/sync"),
                          {"script": "return document.body.innerText", "args": []})

    def screenshot(self, path):
        import base64
        with open(path, "wb") as f:
            f.write(base64.b64decode(self._call("GET", self._s("/screenshot"))))
        return path

    def delete_cookies(self):
        self._call("DELETE", self._s("/cookie"))

    def quit(self):
        with contextlib.suppress(Exception):
            self._call("DELETE", f"/session/{self.session}", timeout=10)


class Roundcube:
    """Debian's Roundcube served by PHP's built-in server, with its own
    configuration and SQLite database, talking IMAP to imap_host."""

    def __init__(self, lab, imap_host, name="roundcube"):
        need("php", "/var/lib/roundcube/public_html/index.php")
        import shutil as _shutil
        import sqlite3
        self.port = free_port()
        conf = lab.path(f"{name}-config")
        os.makedirs(conf, exist_ok=True)
        for f in ("defaults.inc.php", "mimetypes.php"):
            if os.path.exists(f"/etc/roundcube/{f}"):
                _shutil.copy(f"/etc/roundcube/{f}", conf)
        for d in ("temp", "logs"):
            os.makedirs(lab.path(f"{name}-{d}"), exist_ok=True)
        db = lab.path(f"{name}.db")
        with sqlite3.connect(db) as c:
            c.executescript(open("/usr/share/roundcube/SQL/sqlite.initial.sql").read())
        with open(os.path.join(conf, "config.inc.php"), "w") as f:
            f.write(f"""<?php
$config = [];
$config['db_dsnw'] = 'sqlite:///{db}?mode=0646';
$config['imap_host'] = '{imap_host}';
$config['smtp_host'] = '';
$config['des_key'] = 'mailgrid-test-des-key-24b';
$config['plugins'] = [];
$config['skin'] = 'elastic';
$config['temp_dir'] = '{lab.path(f"{name}-temp")}/';
$config['log_dir'] = '{lab.path(f"{name}-logs")}/';
$config['enable_installer'] = false;
$config['product_name'] = 'mailgrid test webmail';
$config['imap_cache'] = null;
""")
        self.proc = lab.spawn(name, ["php", "-S", f"127.0.0.1:{self.port}", "-t",
                                            "/var/lib/roundcube/public_html"],
                              env={"ROUNDCUBE_CONFIG_DIR": conf})
        wait_port(self.port)
        self.url = f"http://127.0.0.1:{self.port}/"
