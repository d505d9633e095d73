#!/usr/bin/env python3
"""The whole farm on this machine (tests/integration/test_farm.py's: two
frontends, two Cyrus and two Maildir backends, slapd, Redis, each host a
network namespace), measured end to end, and where the time goes.

1. Mail: M messages (--size bytes each) to distinct users, sent over SMTP
   by C concurrent sessions spread over both frontends; the clock stops
   when the frontends' Postfix has logged every one "status=sent" (for a
   Maildir user, maildir_deliver answers 250 only after the message and
   its directory are fsynced). Two kinds of recipient, each its own run:
   users on the Maildir backends, users on the Cyrus backends. Two ways
   for the frontends to look recipients up, each run interleaved, on the
   same unchanged ldap_table(5) files:
     - mailgrid: socketmap to ldap_tablemap (the farm's configuration),
     - Postfix's own ldap: tables (what a site would otherwise run).
   Where the time goes comes from Postfix's own delays=a/b/c/d of every
   delivery: a = SMTP in, cleanup and virtual lookup until the queue
   manager has it; b = queue manager (transport lookup, scheduling);
   c = LMTP connection set-up; d = LMTP transmission, i.e. the backend
   storing it. And the last hop alone: bench/lmtpgen straight into one
   Maildir backend's maildir_deliver, same size, same concurrency.
2. Logins: whole IMAP sessions (bench/loadgen -m imap: greeting, LOGIN,
   LOGOUT), C clients at each frontend's nginx at once (nginx asks
   webmail_locator, which checks the password against the directory and
   finds the backend; the backend checks it again through sasl_ldap_auth),
   against the same sessions straight to the two Cyrus backends; and
   nginx's auth_http hop alone (loadgen -m http to webmail_locator).

    python3 bench/farm_bench.py [--users 1000] [--messages 3000] [--clients 8]
                                [--size 4096] [--rounds 3] [--logins 3000]

Run as root (namespaces); prints a Markdown report with ratios.
"""

import argparse
import os
import platform
import re
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))

p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("--users", type=int, default=1000)
p.add_argument("--messages", type=int, default=3000)
p.add_argument("--clients", type=int, default=8)
p.add_argument("--size", type=int, default=4096)
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--logins", type=int, default=3000)
p.add_argument("--login-clients", type=int, default=16)
args = p.parse_args()
os.environ["MAILGRID_FARM_USERS"] = str(args.users)

import test_farm  # noqa: E402  (reads MAILGRID_FARM_USERS)
from harness import BUILD, wait_for  # noqa: E402

SENT = re.compile(r"status=sent")
DELAYS = re.compile(r"delays=([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+)")


def tool(name):
    path = os.path.join(BUILD, "bench", name)
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: build the tree first (cmake --build build)")
    return path


def sent_lines(farm):
    return [line for pf in farm.postfix for line in pf.log().splitlines() if "status=sent" in line]


def body(size, subject, rcpt):
    head = f"From: bench@test.example\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\n"
    line = "The quick brown fox jumps over the lazy dog, and keeps on going.\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def mail_run(farm, users, messages, clients, size, tag):
    """Sends messages to users over clients sessions; returns (accepted/s,
    delivered/s, [delays tuples]) once every message is logged as sent."""
    before = len(sent_lines(farm))
    counter = [0]
    lock = threading.Lock()
    errors = []

    def client(k):
        fe = farm.fronts[k % 2]
        s = smtplib.SMTP(fe.address, 25, timeout=60)
        while True:
            with lock:
                n = counter[0]
                counter[0] += 1
            if n >= messages:
                break
            rcpt = f"{users[n % len(users)]}@example.com"
            try:
                s.sendmail("bench@test.example", [rcpt], body(size, f"{tag} {n}", rcpt))
            except smtplib.SMTPException as e:
                errors.append(str(e)[:100])
        s.quit()

    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = time.monotonic() - start
    if errors:
        sys.exit(f"{len(errors)} messages refused: {errors[:3]}")
    deadline = start + 600
    while len(sent_lines(farm)) < before + messages:
        if time.monotonic() > deadline:
            sys.exit(f"only {len(sent_lines(farm)) - before} of {messages} delivered in 600 s")
        time.sleep(0.05)
    delivered = time.monotonic() - start
    delays = [tuple(map(float, DELAYS.search(line).groups())) for line in sent_lines(farm)[before:]]
    return messages / accepted, messages / delivered, delays


def use_tables(farm, kind, virtual, transport):
    for pf in farm.postfix:
        if kind == "mailgrid":
            pf.reload(virtual_alias_maps="socketmap:inet:127.0.0.1:10027:virtual",
                      transport_maps="socketmap:inet:127.0.0.1:10027:transport")
        else:
            pf.reload(virtual_alias_maps=f"ldap:{virtual}", transport_maps=f"ldap:{transport}")
    time.sleep(1)  # processes started before the reload finish their clients and exit


def loadgen(host_args, mode, port, clients, keys, extra=()):
    r = subprocess.run([*host_args, tool("loadgen"), "-m", mode, "-p", str(port), "-c", str(clients), "-k", keys,
                        *extra], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        sys.exit(f"loadgen {mode}: {r.stderr}")
    out = dict(kv.split("=", 1) for kv in r.stdout.split())
    if int(out.get("errors", "0")) or int(out.get("notfound", "0")):
        sys.exit(f"loadgen {mode} on {host_args}: {r.stdout}")
    return out


def parallel(jobs):
    """Runs loadgen jobs at once; returns their outputs."""
    results = [None] * len(jobs)

    def one(k):
        try:
            results[k] = loadgen(*jobs[k])
        except SystemExit as e:
            print(e, file=sys.stderr)
    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if None in results:
        sys.exit("a loadgen run failed")
    return results


TICK = os.sysconf("SC_CLK_TCK")


def cpu_by_program():
    """({pid: (program, CPU seconds)} of every live process, the machine's
    busy seconds, the time): where the CPU went is the difference of two."""
    use = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if comm.startswith("kworker"):  # their names change with the work they do
            comm = "kernel workers"
        fields = stat[stat.rindex(")") + 2:].split()
        use[pid] = (comm, (int(fields[11]) + int(fields[12])) / TICK)
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    return use, (sum(cpu) - cpu[3] - cpu[4]) / TICK, time.monotonic()


def cpu_share(before, after, top=9):
    """The programs that used the most CPU between two snapshots, as
    "name 23%" of the machine's busy time, after how many cores were busy."""
    (b, busy0, t0), (a, busy1, t1) = before, after
    busy = max(busy1 - busy0, 1e-9)
    used = {}
    for pid, (comm, seconds) in a.items():
        was = b.get(pid)
        used[comm] = used.get(comm, 0.0) + seconds - (was[1] if was and was[0] == comm else 0.0)
    top_used = sorted(((v, k) for k, v in used.items()), reverse=True)[:top]
    return f"{busy / (t1 - t0):.2f} of {os.cpu_count()} cores busy: " + \
        ", ".join(f"{k} {100 * v / busy:.0f}%" for v, k in top_used if v > 0)


def med(xs):
    return statistics.median(xs) if xs else 0.0


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


def main():
    farm = test_farm.WholeFarm
    farm.setUpClass()
    try:
        lab = farm.lab
        users = [f"user{i:04d}" for i in range(args.users)]
        maildir_users = [u for i, u in enumerate(users) if test_farm.backend_of(i) in test_farm.MAILDIR]
        cyrus_users = [u for i, u in enumerate(users) if test_farm.backend_of(i) in test_farm.CYRUS]
        virtual, transport = lab.path("virtual.cf"), lab.path("transport.cf")
        report = [f"# farm_bench: {args.users} users, {args.messages} messages of {args.size} bytes, "
                  f"{args.clients} SMTP sessions, {args.rounds} rounds",
                  "", f"Machine: {os.cpu_count()} cores, {platform.release()}", ""]

        # The last hop alone: straight into md01's maildir_deliver.
        work = tempfile.mkdtemp(dir=lab.dir)
        os.makedirs(f"{work}/msgs")
        with open(f"{work}/msgs/0", "w") as f:
            f.write(body(args.size, "direct", "x").replace("\r\n", "\n"))
        with open(f"{work}/addrs", "w") as f:
            f.write("\n".join(f"{u}@md01.example.com" for k, u in enumerate(users)
                              if test_farm.backend_of(k) == "md01") + "\n")

        results, cpu = {}, {}
        for r in range(args.rounds):
            for target, rcpts in (("Maildir", maildir_users), ("Cyrus", cyrus_users)):
                for kind in (("mailgrid", "ldap") if r % 2 == 0 else ("ldap", "mailgrid")):
                    use_tables(farm, kind, virtual, transport)
                    mail_run(farm, rcpts, 50, 2, args.size, f"warm{r}{kind}")  # new processes, new connections
                    before = cpu_by_program()
                    acc, done, delays = mail_run(farm, rcpts, args.messages, args.clients, args.size,
                                                 f"bench{r}{kind}{target}")
                    cpu[(target, kind)] = cpu_share(before, cpu_by_program())
                    results.setdefault((target, kind), []).append((acc, done, delays))
                    print(f"round {r} {target:7s} {kind:8s}: accepted {acc:6.1f}/s, delivered {done:6.1f}/s",
                          file=sys.stderr)
            md01 = farm.backs["md01"]
            out = subprocess.run(md01.wrap([tool("lmtpgen"), "-p", "24", "-c", str(args.clients), "-r", "1",
                                            "-n", str(args.messages), "-m", f"{work}/msgs", "-a", f"{work}/addrs"]),
                                 capture_output=True, text=True, timeout=900)
            if out.returncode != 0 or "failures=0" not in out.stdout:
                sys.exit(f"lmtpgen: {out.stdout} {out.stderr}")
            direct = dict(kv.split("=", 1) for kv in out.stdout.split())
            results.setdefault("direct", []).append(float(direct["per_s"]))
            print(f"round {r} LMTP straight into md01: {direct['per_s']}/s", file=sys.stderr)
        use_tables(farm, "mailgrid", virtual, transport)

        report += ["## Mail: SMTP in at both frontends to stored on the backends", "",
                   "| recipients | frontend lookups | accepted msg/s | delivered msg/s | ratio |",
                   "|---|---|---:|---:|---:|"]
        for target in ("Maildir", "Cyrus"):
            ours = med([x[1] for x in results[(target, "mailgrid")]])
            for kind in ("mailgrid", "ldap"):
                runs = results[(target, kind)]
                done = med([x[1] for x in runs])
                name = "ldap_tablemap (socketmap)" if kind == "mailgrid" else "Postfix ldap: tables"
                report.append(f"| {target} | {name} | {med([x[0] for x in runs]):.0f} | {done:.0f} | "
                              f"{ours / done:.2f}x |" if kind == "ldap" else
                              f"| {target} | {name} | {med([x[0] for x in runs]):.0f} | {done:.0f} | |")
        report += ["", f"LMTP straight into one Maildir backend (lmtpgen, {args.clients} connections, "
                       f"maildir_deliver fsyncing): {med(results['direct']):.0f} msg/s.", "",
                   "## Where the time goes (Postfix delays=a/b/c/d, seconds, all rounds)", "",
                   "| recipients | lookups | a: SMTP in + cleanup (p50/p90) | b: queue manager | "
                   "c: LMTP connect | d: LMTP to stored (p50/p90) |", "|---|---|---|---|---|---|"]
        for target in ("Maildir", "Cyrus"):
            for kind in ("mailgrid", "ldap"):
                d = [x for run in results[(target, kind)] for x in run[2]]
                cols = [f"{med([t[h] for t in d]):.2f} / {pct([t[h] for t in d], 0.9):.2f}" for h in range(4)]
                report.append(f"| {target} | {kind} | " + " | ".join(cols) + " |")

        report += ["", "CPU by program during the last round's run (share of the machine's busy time; "
                       "python3 is the SMTP client):", ""]
        for (target, kind), share in cpu.items():
            report.append(f"- {target}, {kind}: {share}")

        # Logins.
        logins = f"{work}/logins"
        with open(logins, "w") as f:
            for k in range(args.logins):
                u = cyrus_users[k % len(cyrus_users)]
                f.write(f"{u}\tpw-{u}\n")
        per_backend = {}
        for name in test_farm.CYRUS:
            path = f"{work}/logins-{name}"
            with open(path, "w") as f:
                mine = [u for k, u in enumerate(users) if test_farm.backend_of(k) == name]
                for k in range(args.logins // 2):
                    f.write(f"{mine[k % len(mine)]}\tpw-{mine[k % len(mine)]}\n")
            per_backend[name] = path
        c = args.login_clients
        # Fill the backends' credential caches, as a running farm has them.
        parallel([([], "imap", 143, c, per_backend[n], ("-h", farm.backs[n].address)) for n in test_farm.CYRUS])
        login = {"nginx": [], "direct": [], "auth_http": []}
        for r in range(args.rounds):
            before = cpu_by_program()
            out = parallel([([], "imap", 143, c, logins, ("-h", fe.address)) for fe in farm.fronts])
            cpu["logins"] = cpu_share(before, cpu_by_program())
            login["nginx"].append((sum(float(o["rps"]) for o in out), med([float(o["p50_us"]) for o in out])))
            out = parallel([([], "imap", 143, c, per_backend[n], ("-h", farm.backs[n].address))
                            for n in test_farm.CYRUS])
            login["direct"].append((sum(float(o["rps"]) for o in out), med([float(o["p50_us"]) for o in out])))
            out = parallel([(["ip", "netns", "exec", fe.netns], "http", 10080, c, logins, ("-C", "spread"))
                            for fe in farm.fronts])
            login["auth_http"].append((sum(float(o["rps"]) for o in out), med([float(o["p50_us"]) for o in out])))
            print(f"round {r} logins: " + ", ".join(f"{k} {v[-1][0]:.0f}/s" for k, v in login.items()),
                  file=sys.stderr)
        ours = med([x[0] for x in login["nginx"]])
        report += ["", f"## Logins: IMAP LOGIN+LOGOUT sessions, {c} clients per frontend or backend", "",
                   "| path | logins/s (both) | p50 ms | ratio to direct |", "|---|---:|---:|---:|"]
        for key, name in (("nginx", "through both frontends' nginx + webmail_locator"),
                          ("direct", "straight to both Cyrus backends"),
                          ("auth_http", "webmail_locator alone (auth_http, both frontends)")):
            rate = med([x[0] for x in login[key]])
            ratio = f"{ours / rate:.2f}x" if key == "direct" else ""
            report.append(f"| {name} | {rate:.0f} | {med([x[1] for x in login[key]]) / 1000:.2f} | {ratio} |")
        report += ["", f"CPU by program during the last round's logins through nginx: {cpu['logins']}"]
        print("\n".join(report))
    finally:
        farm.tearDownClass()


main()
