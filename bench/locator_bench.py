#!/usr/bin/env python3
"""webmail_locator against what a site would otherwise put in front of its
IMAP backends, on the same directory and the same two backends.

slapd holds N users (default 20,000) with {SSHA} passwords, half with their
maildrop on mail01.example.com, half on mail02.example.com; two Cyrus IMAP
backends (127.0.0.1 and 127.0.0.2, same port, preforked) check passwords
through sasl_ldap_auth -c, so the backend costs the same for every variant.

1. auth_http straight to the responder (bench/loadgen.c -m http: one
   HTTP/1.0 connection per request, the headers nginx sends), 64 concurrent
   connections in a closed loop: webmail_locator warm (credential and
   location caches on, a repeated working set) and cold (caches off,
   distinct users; good and wrong passwords), the trivial C responder, the
   Python responder; and warm at a fixed offered rate (open loop, --open-rate),
   where p99 is the service time rather than the queue of a saturated loop.
2. Whole IMAP sessions (loadgen -m imap: connect, LOGIN, LOGOUT) at 1, 8 and
   32 clients, good and wrong passwords, through
     - nginx + webmail_locator (its defaults: passwords checked against the
       directory every time, locations cached),
     - nginx + trivial_auth_http (accepts everyone: the ceiling of the nginx
       path; the backend still checks the password),
     - nginx + bench/auth_http_ldap.py (python3-ldap, threaded http.server:
       search, bind, answer the maildrop's backend),
     - perdition (Debian's IMAP proxy, LDAP popmap; unpacked with dpkg -x
       because it conflicts with cyrus-imapd; the backend checks the password).
Before timing, every path must show users 0-3 their own mailbox on their own
backend and refuse a wrong password; every good login of the runs is made
once through the ceiling (filling the backends' cache) and through
webmail_locator (which remembers each login's entry, locator_dn_cache_ttl).
Every configuration runs in every round, interleaved; medians of the rounds,
and the CPU time the responder and slapd spent per request (far steadier than
rates on a shared machine). Prints a Markdown report with ratios.

    python3 bench/locator_bench.py [--users 20000] [--rounds 3] [--clients 1,8,32] [--save runs.json]
    python3 bench/locator_bench.py --hold     # set the farm up, print its ports, wait

Wrong passwords are answered without Auth-Wait (locator_auth_wait = 0) and
the throttles are off end to end: one benchmark client sending thousands of
failures from 127.0.0.1 would otherwise be blocked, which is the point of
them but not what is measured here. The direct auth_http runs keep
webmail_locator's throttle on, with a different Client-IP per request.
"""

import argparse
import base64
import glob
import hashlib
import imaplib
import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from harness import (BUILD, DATA, SUFFIX, Cyrus, Host, Lab, NginxMail, Slapd, binary, free_port, need,  # noqa: E402
                     wait_for, wait_port)

SECRET = "bench-secret"
MAIL02 = "127.0.0.2"  # the second backend's address: same port, as two hosts would have
CYRUS_PW = "cyrus-admin-pw"
CHECKED = (0, 1, 2, 3)  # users given a mailbox and a message, to check each path's routing
OURS = "nginx + webmail_locator"
CEILING = "nginx + trivial responder (ceiling)"
PYTHON = "nginx + Python LDAP responder"
PERDITION = "perdition (LDAP popmap)"


def ssha(pw, salt):
    return "{SSHA}" + base64.b64encode(hashlib.sha1(pw.encode() + salt).digest() + salt).decode()


def user(i):
    return f"user{i:05d}"


def password(i):
    return f"pw-{user(i)}"


def backend_of(i):
    return "mail01" if i % 2 == 0 else "mail02"


def gen_users(path, n):
    # ipHost/ipHostNumber is what perdition's LDAP map reads (the address of
    # the user's backend); everything else reads the host part of maildrop.
    with open(path, "w") as f:
        f.write(f"dn: uid=cyrus,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: cyrus\ncn: Cyrus admin\n"
                f"sn: admin\nuserPassword: {ssha(CYRUS_PW, b'salt')}\n\n")
        for i in range(n):
            u = user(i)
            f.write(f"dn: uid={u},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: mailSuiteRecipient\n"
                    f"objectClass: ipHost\nuid: {u}\ncn: {u}\nsn: {i}\nmail: {u}@example.com\n"
                    f"maildrop: {u}@{backend_of(i)}.example.com\n"
                    f"ipHostNumber: {'127.0.0.1' if backend_of(i) == 'mail01' else MAIL02}\n"
                    f"userPassword: {ssha(password(i), i.to_bytes(4, 'big'))}\n\n")


def port_free_on_both():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            try:
                with socket.socket() as t:
                    t.bind((MAIL02, port))
                return port
            except OSError:
                continue


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """CPU time of a process and of its children it has reaped (perdition
    forks one per session)."""
    fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    return sum(int(f) for f in fields[11:15]) / TICK


def loadgen(mode, port, conns, keys, *extra, cpu_of=()):
    """One loadgen run; with cpu_of=(responder pid, slapd pid), also the CPU
    time each spent per request (µs), which the noise of a shared machine
    disturbs far less than rates do."""
    before = [cpu_seconds(p) for p in cpu_of]
    args = [os.path.join(BUILD, "bench", "loadgen"), "-m", mode, "-p", str(port), "-c", str(conns), "-k", keys,
            *map(str, extra)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0 or "rps=" not in r.stdout:
        raise RuntimeError(f"{' '.join(args)}: {r.stdout}{r.stderr}")
    out = dict(kv.split("=", 1) for kv in r.stdout.split())
    res = {k: (v if k == "mode" else float(v)) for k, v in out.items()}
    for name, pid, t0 in zip(("cpu_us", "slapd_us"), cpu_of, before):
        res[name] = (cpu_seconds(pid) - t0) * 1e6 / max(1.0, res["requests"])
    return res


def perdition_dir():
    """perdition and perdition-ldap unpacked (not installed: they conflict
    with cyrus-imapd), once, under the build tree."""
    root = os.path.join(BUILD, "bench", "perdition")
    exe = os.path.join(root, "usr", "sbin", "perdition")
    if not os.path.exists(exe):
        os.makedirs(root, exist_ok=True)
        debs = os.path.join(BUILD, "bench", "perdition-debs")
        os.makedirs(debs, exist_ok=True)
        subprocess.run(["apt-get", "download", "perdition", "perdition-ldap"], cwd=debs, check=True,
                       capture_output=True)
        for deb in glob.glob(os.path.join(debs, "*.deb")):
            subprocess.run(["dpkg", "-x", deb, root], check=True)
    libdir = os.path.join(root, "usr", "lib", "x86_64-linux-gnu")
    missing = subprocess.run(["ldd", exe, os.path.join(libdir, "libperditiondb_ldap.so.0")],
                             env=dict(os.environ, LD_LIBRARY_PATH=libdir), capture_output=True, text=True).stdout
    if "not found" in missing:
        # Its libraries (libvanessa-*, ...) install normally.
        subprocess.run(["apt-get", "install", "-y", "-q", "libvanessa-adt1", "libvanessa-logger0",
                        "libvanessa-socket2", "libgdbm6", "libidn12", "libnsl2", "libpopt0", "libdb5.3"],
                       check=True, capture_output=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    return exe, libdir


def ensure_python_ldap():
    if subprocess.run(["/usr/bin/python3", "-c", "import ldap"], capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "python3-ldap"], check=True, capture_output=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def inbox_subjects(port, login, pw, host="127.0.0.1"):
    """Logs in with imaplib and returns the subjects in INBOX, or None if
    the login is refused."""
    m = imaplib.IMAP4(host, port, timeout=30)
    try:
        m.login(login, pw)
        m.select("INBOX")
        _, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        m.logout()
        return sorted(part[1].decode().strip() for part in data if isinstance(part, tuple))
    except imaplib.IMAP4.error:
        return None
    finally:
        try:
            m.shutdown()
        except OSError:
            pass


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def rate(x):
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def rounds(runs):
    return " / ".join(rate(r["rps"]) for r in runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--logins", default="400,2000,3000",
                    help="IMAP sessions per run at each client count (same order as --clients)")
    ap.add_argument("--http-requests", type=int, default=20000, help="auth_http requests per run")
    ap.add_argument("--conns", type=int, default=64, help="concurrent auth_http connections")
    ap.add_argument("--open-rate", type=float, default=5000,
                    help="auth_http requests/s offered in the open-loop runs (latency at a given load)")
    ap.add_argument("--working-set", type=int, default=2000, help="users repeated in the warm auth_http runs")
    ap.add_argument("--prefork", type=int, default=20, help="Cyrus imapd processes kept ready per backend")
    ap.add_argument("--skip", default="", help="comma-separated targets to leave out: perdition,python")
    ap.add_argument("--sections", default="http,imap", help="what to measure: http (auth_http straight to the "
                    "responders), imap (whole sessions through the proxies), or both")
    ap.add_argument("--save", help="also write every run's raw figures to this JSON file")
    ap.add_argument("--hold", action="store_true", help="set up, print the ports, wait for Ctrl-C (no runs)")
    a = ap.parse_args()
    need("nginx", "/usr/lib/nginx/modules/ngx_mail_module.so", "/usr/lib/cyrus/bin/imapd", "/usr/sbin/slapd")
    clients = [int(c) for c in a.clients.split(",")]
    logins_per = dict(zip(clients, [int(n) for n in a.logins.split(",")]))
    for c in clients:
        logins_per.setdefault(c, 2000)
    skip = set(filter(None, a.skip.split(",")))
    sections = set(a.sections.split(","))
    if "python" not in skip:
        ensure_python_ldap()
    if "perdition" not in skip:
        perdition_exe, perdition_lib = perdition_dir()

    lab = Lab("bench-locator")
    t_start = time.monotonic()
    try:
        print("setting up: slapd, sasl_ldap_auth, two Cyrus backends, responders, nginx ...", file=sys.stderr)
        users_ldif = lab.path("users.ldif")
        gen_users(users_ldif, a.users)
        slapd = Slapd(lab, [os.path.join(DATA, "users.ldif"), users_ldif])
        conf = lab.write("saslauthd.conf", f"ldap_servers: {slapd.uri}\nldap_search_base: {SUFFIX}\n"
                                           "ldap_filter: (uid=%u)\nldap_timeout: 5\n")
        run = lab.path("run")
        os.makedirs(run)
        # The backends' password check, cached (-c): the same cost behind
        # every variant once warm.
        lab.spawn("sasl", [binary("sasl_ldap_auth"), "-a", "ldap", "-O", conf, "-m", run, "-c", "-t", "3600",
                           "-o", "saslauth_throttle=no", "-o", "syslog_name=mailgrid-bench"])
        wait_for(lambda: os.path.exists(run + "/mux"), 10, what="sasl_ldap_auth's socket")
        imap_port = port_free_on_both()
        backend_ports = {}
        for name, addr in (("mail01", "127.0.0.1"), ("mail02", MAIL02)):
            ports = (imap_port, port_free_on_both(), port_free_on_both())
            cyrus = Cyrus(lab, name, saslauthd_path=run + "/mux", servername=f"{name}.example.com",
                          host=Host(addr, name=name), ports=ports, prefork=a.prefork)
            backend_ports[name] = (addr, ports)
            for i in CHECKED:
                if backend_of(i) == name:
                    cyrus.create_mailbox(f"user.{user(i)}", CYRUS_PW)
                    cyrus.deliver(user(i), f"From: bench@example.com\r\nTo: {user(i)}@example.com\r\n"
                                           f"Subject: for {user(i)} on {name}\r\n\r\nhello\r\n")
        backends = lab.write("backends", "".join(
            f"{n}.example.com {addr} imap={p[0]} pop3={p[1]}\n" for n, (addr, p) in backend_ports.items()))
        trivial_map = lab.write("trivial.map", "".join(
            f"{user(i)}\t{backend_ports[backend_of(i)][0]}\t{imap_port}\n" for i in range(a.users)))
        source = lab.write("locate-maildrop.cf", f"server_host = {slapd.uri}\nversion = 3\nbind = no\n"
                                                 f"search_base = {SUFFIX}\nquery_filter = (uid=%s)\n"
                                                 "result_attribute = maildrop\n")

        def locator(name, *options):
            port = free_port()
            proc = lab.spawn(name, [binary("webmail_locator"), "-f", "-c", "/dev/null", "--listen", f"127.0.0.1:{port}",
                             "-o", "locator_mech=ldap", "-o", f"locator_saslauthd_conf={conf}",
                             "-o", f"locator_sources=maildrop={source}", "-o", f"locator_backend_map={backends}",
                             "-o", f"locator_shared_secret={SECRET}", "-o", "syslog_name=mailgrid-bench",
                             *[x for o in options for x in ("-o", o)]])
            wait_port(port)
            return port, proc.pid

        # The configuration nginx uses: the defaults (every password checked
        # against the directory, locations cached), no Auth-Wait, no throttle.
        e2e_locator = locator("locator-e2e", "locator_auth_wait=0", "locator_throttle=no")
        warm_locator = locator("locator-warm", "locator_cache=yes", "locator_cache_ttl=1h", "cache_ttl=1h")
        cold_locator = locator("locator-cold", "locator_cache=no", "cache_size=0", "locator_dn_cache_ttl=0")
        trivial_port = free_port()
        trivial = (trivial_port, lab.spawn("trivial", [os.path.join(BUILD, "bench", "trivial_auth_http"),
                                                       trivial_port, trivial_map]).pid)
        wait_port(trivial_port)
        python = None
        if "python" not in skip:
            py_port = free_port()
            python = (py_port, lab.spawn("python", [
                "/usr/bin/python3", os.path.join(HERE, "auth_http_ldap.py"), "--port", py_port, "--ldap", slapd.uri,
                "--base", SUFFIX, "--backends", backends, "--auth-wait", "0"]).pid)
            wait_port(py_port)

        def nginx(name, responder):
            return NginxMail(lab, f"127.0.0.1:{responder[0]}/auth", name=name, secret=SECRET).imap_port, responder[1]

        # name -> (IMAP port the clients connect to, pid whose CPU is the
        # price of the check)
        e2e = {OURS: nginx("nginx-locator", e2e_locator),
               CEILING: nginx("nginx-trivial", trivial)}
        if python:
            e2e[PYTHON] = nginx("nginx-python", python)
        if "perdition" not in skip:
            pport = free_port()
            url = f"3:ldap://127.0.0.1:{slapd.port}/ou=people,{SUFFIX}?uid,ipHostNumber?one?(uid=%s)"
            empty = lab.write("perdition.conf", "")
            perdition = lab.spawn("perdition", [perdition_exe, "--no_daemon", "-f", empty, "-P", "IMAP4", "-b", "127.0.0.1",
                                    "-l", pport, "-M", os.path.join(perdition_lib, "libperditiondb_ldap.so.0"),
                                    "-m", url, "-p", imap_port, "--pid_file", lab.path("perdition.pid"),
                                    "--ssl_mode", "none", "-F", "local7"],
                      env={"LD_LIBRARY_PATH": perdition_lib})
            wait_port(pport)
            e2e[PERDITION] = (pport, perdition.pid)

        # Each path must land every user on their own backend, and refuse
        # wrong passwords, before anything is timed.
        for name, (port, _) in e2e.items():
            for i in CHECKED:
                got = inbox_subjects(port, user(i), password(i))
                if got != [f"Subject: for {user(i)} on {backend_of(i)}"]:
                    raise RuntimeError(f"{name}: {user(i)} sees {got!r}, expected their mail on {backend_of(i)}")
            if name != CEILING and inbox_subjects(port, user(0), "wrong") is not None:
                raise RuntimeError(f"{name}: a wrong password was accepted")

        if a.hold:
            print(f"lab {lab.dir}\nslapd {slapd.uri}\nbackends {backend_ports}\nimap ports {e2e}\n"
                  f"locators e2e {e2e_locator} warm {warm_locator} cold {cold_locator}; trivial {trivial}; "
                  f"python {python}\nlogins: {user(0)}\t{password(0)}", file=sys.stderr)
            # SIGTERM too: a background job cannot be sent SIGINT.
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return

        rnd = random.Random(6)
        pool = rnd.sample(range(a.users), min(a.users, max(logins_per.values()) * 2))
        write = lambda name, ids, pw=password: lab.write(name, "".join(f"{user(i)}\t{pw(i)}\n" for i in ids))
        # Every good login of the end-to-end runs is made once before timing,
        # through the ceiling path (which fills the backends' sasl_ldap_auth
        # cache) and through webmail_locator (which learns each login's
        # entry, locator_dn_cache_ttl; the password is still checked with a
        # bind every time). Perdition and the Python responder keep nothing.
        print(f"warming with {len(pool)} logins ...", file=sys.stderr)
        pool_file = write("pool.txt", pool)
        loadgen("imap", e2e[CEILING][0], 8, pool_file)
        loadgen("imap", e2e[OURS][0], 8, pool_file)

        results = {}  # (section, target, workload, clients) -> [loadgen dicts]

        def record(key, r):
            results.setdefault(key, []).append(r)
            print(f"  {key}: {r['rps']:.0f}/s p50 {r['p50_us']:.0f} µs p99 {r['p99_us']:.0f} µs "
                  f"ok {r['found']:.0f} no {r['notfound']:.0f} err {r['errors']:.0f}", file=sys.stderr)

        ws = rnd.sample(range(a.users), a.working_set)
        warm_file = write("warm.txt", ws * max(1, a.http_requests // a.working_set))
        loadgen("http", warm_locator[0], 8, write("warmup.txt", ws), "-s", SECRET, "-C", "spread")
        py_requests = max(500, a.http_requests // 10)
        open_requests = min(a.http_requests, int(a.open_rate * 2))
        slapd_pid = slapd.proc.pid
        for rnum in range(a.rounds):
            print(f"round {rnum + 1}/{a.rounds}", file=sys.stderr)
            cold_ids = rnd.sample(range(a.users), min(a.users, a.http_requests))
            cold_good = write(f"cold-good-{rnum}.txt", cold_ids)
            cold_bad = write(f"cold-bad-{rnum}.txt", cold_ids, lambda i: f"wrong-{i}")
            closed = f"closed loop, {a.conns} conns"
            opened = f"{a.open_rate:,.0f}/s offered, {a.conns} conns"
            http_runs = [
                ("webmail_locator, warm", "good", closed, warm_locator, warm_file, ()),
                ("webmail_locator, cold", "good", closed, cold_locator, cold_good, ()),
                ("webmail_locator, cold", "wrong", closed, cold_locator, cold_bad, ()),
                ("trivial responder (no check)", "good", closed, trivial, cold_good, ()),
                ("webmail_locator, warm", "good", opened, warm_locator, write(f"open-{rnum}.txt", (
                    ws * (open_requests // len(ws) + 1))[:open_requests]), ("-r", a.open_rate)),
                ("trivial responder (no check)", "good", opened, trivial, f"{lab.dir}/open-{rnum}.txt",
                 ("-r", a.open_rate)),
            ]
            if python:
                http_runs.append(("Python LDAP responder", "good", closed, python,
                                  write(f"py-{rnum}.txt", cold_ids[:py_requests]), ()))
            rnd.shuffle(http_runs)
            for name, workload, load, (port, pid), keys, extra in http_runs if "http" in sections else ():
                record(("http", name, workload, load),
                       loadgen("http", port, a.conns, keys, "-s", SECRET, "-C", "spread", *extra,
                               cpu_of=(pid, slapd_pid)))
            for c in clients if "imap" in sections else ():
                ids = rnd.sample(pool, logins_per[c])
                good = write(f"good-{rnum}-{c}.txt", ids)
                bad = write(f"bad-{rnum}-{c}.txt", ids, lambda i: f"wrong-{i}")
                # perdition sleeps 3 s after every failed login (compiled
                # in): a few sessions per client show it.
                bad_few = write(f"bad-few-{rnum}-{c}.txt", ids[:max(6, 2 * c)], lambda i: f"wrong-{i}")
                runs = [(name, w) for name in e2e for w in ("good", "wrong")]
                rnd.shuffle(runs)
                for name, w in runs:
                    keys = good if w == "good" else bad_few if name == PERDITION else bad
                    record(("imap", name, w, c), loadgen("imap", e2e[name][0], c, keys, cpu_of=(e2e[name][1], slapd_pid)))
    finally:
        lab.close()
    if a.save:
        with open(a.save, "w") as f:
            json.dump({"args": vars(a), "paths": list(e2e), "runs": [[list(k), v] for k, v in results.items()]}, f,
                      indent=1)
    print(report(a, clients, list(e2e), results, time.monotonic() - t_start))


def ratio(results, key_a, key_b):
    """Median of the rounds' rps and median of the per-round ratios (each
    round ran both within seconds of each other)."""
    ra, rb = results.get(key_a), results.get(key_b)
    if not ra or not rb or not med(rb, "rps"):
        return None, None
    per_round = [x["rps"] / y["rps"] for x, y in zip(ra, rb) if y["rps"]]
    return med(ra, "rps") / med(rb, "rps"), statistics.median(per_round) if per_round else None


def report(a, clients, paths, results, elapsed):
    out = []
    if any(k[0] == "http" for k in results):
        out += http_report(a, results)
    if any(k[0] == "imap" for k in results):
        out += imap_report(a, clients, paths, results)
    out.append(f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), {platform.platform()}, "
               f"shared with other work; load average at the end {os.getloadavg()[0]:.1f}; "
               f"the bench took {elapsed / 60:.1f} min.")
    return "\n".join(out)


def http_report(a, results):
    out = [f"### auth_http straight to the responder ({a.users:,} users in slapd; one connection per request as "
           f"nginx makes them; medians of {a.rounds} rounds)\n",
           "| responder | passwords | load | requests/s | each round | p50 µs | p99 µs | responder CPU µs/req | "
           "slapd CPU µs/req | OK | refused | no answer |",
           "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (sec, name, w, load), runs in sorted(results.items()):
        if sec != "http":
            continue
        out.append(f"| {name} | {w} | {load} | {rate(med(runs, 'rps'))} | {rounds(runs)} | {med(runs, 'p50_us'):.0f} | "
                   f"{med(runs, 'p99_us'):.0f} | {med(runs, 'cpu_us'):.0f} | {med(runs, 'slapd_us'):.0f} | "
                   f"{runs[-1]['found']:.0f} | {runs[-1]['notfound']:.0f} | {runs[-1]['errors']:.0f} |")
    out.append("")
    for load in (f"closed loop, {a.conns} conns", f"{a.open_rate:,.0f}/s offered, {a.conns} conns"):
        warm = results.get(("http", "webmail_locator, warm", "good", load))
        trivial = results.get(("http", "trivial responder (no check)", "good", load))
        if warm:
            p99 = med(warm, "p99_us")
            out.append(f"- Warm auth_http p99, {load}: {p99 / 1000:.2f} ms (goal under 2 ms: "
                       f"{'met' if p99 < 2000 else 'not met'}; the trivial responder: "
                       f"{med(trivial, 'p99_us') / 1000 if trivial else float('nan'):.2f} ms).")
    out.append("")
    return out


def imap_report(a, clients, paths, results):
    out = [f"### Whole IMAP sessions (connect, LOGIN, LOGOUT; bench/loadgen.c -m imap), medians of {a.rounds} "
           "rounds\n",
           "| path | passwords | clients | logins/s | each round | p50 µs | p99 µs | vs ceiling | vs perdition | "
           "responder CPU µs/login | slapd CPU µs/login | OK | NO | errors |",
           "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in clients:
        for w in ("good", "wrong"):
            for name in paths:
                runs = results.get(("imap", name, w, c))
                if not runs:
                    continue
                vs_ceiling, _ = ratio(results, ("imap", name, w, c), ("imap", CEILING, w, c))
                # (perdition sleeps 3 s after a wrong password: no ratio)
                vs_perd = ratio(results, ("imap", name, w, c), ("imap", PERDITION, w, c))[0] if w == "good" else None
                out.append(f"| {name} | {w} | {c} | {rate(med(runs, 'rps'))} | {rounds(runs)} | "
                           f"{med(runs, 'p50_us'):.0f} | {med(runs, 'p99_us'):.0f} | "
                           f"{f'{vs_ceiling:.0%}' if vs_ceiling else '-'} | {f'{vs_perd:.2f}x' if vs_perd else '-'} | "
                           f"{med(runs, 'cpu_us'):.0f} | {med(runs, 'slapd_us'):.0f} | {runs[-1]['found']:.0f} | "
                           f"{runs[-1]['notfound']:.0f} | {runs[-1]['errors']:.0f} |")
    out.append("")
    out.append("With wrong passwords nginx + webmail_locator never reaches a backend, while the trivial responder "
               "sends every login on for the backend to refuse; perdition waits 3 s after each failure (compiled "
               "in), so it is not compared there.")
    out.append("")
    for c in clients:
        line = []
        for other, label, goal in ((CEILING, "of the nginx ceiling", "goal 90%"), (PERDITION, "perdition", "goal 4x"),
                                   (PYTHON, "the Python responder", None)):
            of_medians, per_round = ratio(results, ("imap", OURS, "good", c), ("imap", other, "good", c))
            if of_medians is None:
                continue
            fmt = (lambda x: f"{x:.0%}") if other == CEILING else (lambda x: f"{x:.2f}x")
            line.append(f"{fmt(of_medians)} {label} (per-round median {fmt(per_round)}{'; ' + goal if goal else ''})")
        if line:
            out.append(f"- {c} client(s), good passwords: webmail_locator " + ", ".join(line) + ".")
    out.append("")
    return out


if __name__ == "__main__":
    main()
