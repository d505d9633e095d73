#!/usr/bin/env python3
"""sasl_ldap_auth against saslauthd -a ldap on the same slapd.

slapd holds N users (default 100,000) with {SSHA} passwords. A closed-loop
load generator (bench/loadgen.c, mode mux: one connection per login, as
libsasl2 does) sends logins at 1, 8 and 32 concurrent clients to:
  - saslauthd -a ldap -n 5 (bind mode), without and with its -c cache,
  - sasl_ldap_auth with the same command line, without and with -c,
  - a trivial responder that answers OK without checking (the ceiling).
Good passwords, wrong passwords, and (for the caches) a repeated working
set. Prints a Markdown report.

    python3 bench/sasl_bench.py [--users 100000] [--logins 20000]
"""

import argparse
import base64
import hashlib
import os
import random
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from harness import ADMIN_DN, ADMIN_PW, BUILD, SUFFIX, Lab, Slapd, binary, need, wait_for  # noqa: E402


def ssha(pw, salt):
    return "{SSHA}" + base64.b64encode(hashlib.sha1(pw.encode() + salt).digest() + salt).decode()


def gen_users(path, n):
    with open(path, "w") as f:
        for i in range(n):
            u = f"user{i:06d}"
            f.write(f"dn: uid={u},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {u}\ncn: {u}\nsn: {i}\n"
                    f"mail: {u}@example.com\nuserPassword: {ssha('pw-' + u, i.to_bytes(4, 'big'))}\n\n")


def loadgen(sock, conns, logins):
    r = subprocess.run([os.path.join(BUILD, "bench", "loadgen"), "-m", "mux", "-u", sock, "-c", str(conns),
                        "-k", logins], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"loadgen: {r.stdout}{r.stderr}")
    return dict(kv.split("=", 1) for kv in r.stdout.split())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--logins", type=int, default=20000)
    ap.add_argument("--working-set", type=int, default=2000)
    ap.add_argument("--clients", default="1,8,32")
    a = ap.parse_args()
    need("/usr/sbin/saslauthd")
    clients = [int(c) for c in a.clients.split(",")]

    lab = Lab("bench-sasl")
    out = []
    try:
        users = lab.path("users.ldif")
        gen_users(users, a.users)
        slapd = Slapd(lab, [os.path.join(HERE, "..", "tests", "integration", "data", "users.ldif"), users])
        conf = lab.write("saslauthd.conf", f"ldap_servers: {slapd.uri}\nldap_search_base: {SUFFIX}\n"
                                           "ldap_filter: (uid=%u)\nldap_timeout: 5\n")
        # Compare mode: a service account reads userPassword and the daemon
        # checks the hash itself (saslauthd's "custom").
        conf_custom = lab.write("saslauthd-custom.conf", f"ldap_servers: {slapd.uri}\nldap_search_base: {SUFFIX}\n"
                                "ldap_filter: (uid=%u)\nldap_timeout: 5\nldap_auth_method: custom\n"
                                f"ldap_bind_dn: {ADMIN_DN}\nldap_password: {ADMIN_PW}\n")
        rnd = random.Random(7)
        good = [f"user{i:06d}\tpw-user{i:06d}" for i in rnd.sample(range(a.users), a.logins)]
        bad = [f"user{i:06d}\twrong-{i}" for i in rnd.sample(range(a.users), a.logins)]
        ws = [f"user{i:06d}\tpw-user{i:06d}" for i in rnd.sample(range(a.users), a.working_set)]
        files = {
            "good": lab.write("good.txt", "\n".join(good) + "\n"),
            "bad": lab.write("bad.txt", "\n".join(bad) + "\n"),
            "warmup": lab.write("warmup.txt", "\n".join(ws) + "\n"),
            "cached": lab.write("cached.txt", "\n".join(ws * max(1, a.logins // a.working_set)) + "\n"),
        }

        def saslauthd(cache, config=conf):
            d = lab.path(f"saslauthd-{time.monotonic_ns()}")
            os.makedirs(d)
            args = ["/usr/sbin/saslauthd", "-a", "ldap", "-O", config, "-m", d, "-n", "5"]
            if cache:
                args += ["-c", "-t", "3600"]
            # saslauthd kills its whole process group on exit: give it its own.
            subprocess.run(["setsid", *args], check=True)
            wait_for(lambda: os.path.exists(d + "/mux"), 10)
            time.sleep(0.3)

            def stop():
                try:
                    pid = int(open(d + "/saslauthd.pid").read())
                    os.kill(pid, signal.SIGTERM)
                    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10)
                except (OSError, ValueError, AssertionError):
                    pass
            lab.on_close(stop)
            return d + "/mux", stop

        def ours(cache, replica=False, config=conf):
            d = lab.path(f"mg-{time.monotonic_ns()}")
            os.makedirs(d)
            args = [binary("sasl_ldap_auth"), "-a", "ldap", "-O", config, "-m", d, "-n", "5"]
            if cache:
                args += ["-c", "-t", "3600"]
            if replica:
                # The user's DN from the in-memory copy; the bind still in slapd.
                args += ["-f", "-o", f"ldap_replica_base={SUFFIX}"]
            # A name of its own: stderr files are appended to, and the wait
            # below must not see an earlier process's "in service".
            p = lab.spawn(os.path.basename(d), args + ["-o", "syslog_name=mailgrid-bench"])
            wait_for(lambda: os.path.exists(d + "/mux"), 10)
            if replica:
                wait_for(lambda: "in service" in p.stderr(), 120, what="the replica")
            return d + "/mux", p.stop

        def trivial():
            d = lab.path("trivial")
            os.makedirs(d, exist_ok=True)
            p = lab.spawn("trivial", [os.path.join(BUILD, "bench", "trivial_saslauthd"), d + "/mux"])
            wait_for(lambda: os.path.exists(d + "/mux"), 10)
            return d + "/mux", p.stop

        results = {}  # (target, workload, clients) -> loadgen dict
        targets = [
            ("saslauthd -a ldap -n 5", lambda: saslauthd(False), ["good", "bad"]),
            ("sasl_ldap_auth -a ldap -n 5", lambda: ours(False), ["good", "bad"]),
            ("saslauthd -a ldap -n 5 -c", lambda: saslauthd(True), ["cached"]),
            ("sasl_ldap_auth -a ldap -n 5 -c", lambda: ours(True), ["cached"]),
            ("trivial responder (OK to all, the ceiling)", trivial, ["good"]),
            ("sasl_ldap_auth -a ldap -n 5, ldap_replica_base", lambda: ours(False, True), ["good", "bad"]),
            ("saslauthd -a ldap -n 5, ldap_auth_method: custom", lambda: saslauthd(False, conf_custom),
             ["good", "bad"]),
            ("sasl_ldap_auth -a ldap -n 5, custom, ldap_replica_base", lambda: ours(False, True, conf_custom),
             ["good", "bad"]),
        ]
        for name, start, workloads in targets:
            for c in clients:
                sock, stop = start()
                if "cached" in workloads:
                    loadgen(sock, 8, files["warmup"])
                for w in workloads:
                    results[(name, w, c)] = loadgen(sock, c, files[w])
                stop()

        out.append(f"### sasl_ldap_auth vs saslauthd ({a.users:,} users in slapd, {a.logins:,} logins per run, "
                   "one connection per login)\n")
        out.append("| server | passwords | clients | logins/s | p50 µs | p99 µs | OK | NO | no answer |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for (name, w, c), r in results.items():
            out.append(f"| {name} | {w} | {c} | {float(r['rps']):,.0f} | {r['p50_us']} | {r['p99_us']} | "
                       f"{r['found']} | {r['notfound']} | {r['errors']} |")
        out.append("")
        ceiling = {c: float(results[(targets[4][0], "good", c)]["rps"]) for c in clients}
        for c in clients:
            sd = float(results[(targets[0][0], "good", c)]["rps"])
            mg = float(results[(targets[1][0], "good", c)]["rps"])
            sdc = float(results[(targets[2][0], "cached", c)]["rps"])
            mgc = float(results[(targets[3][0], "cached", c)]["rps"])
            mgr = float(results[(targets[5][0], "good", c)]["rps"])
            sdx = float(results[(targets[6][0], "good", c)]["rps"])
            mgx = float(results[(targets[7][0], "good", c)]["rps"])
            out.append(f"- {c} clients: cache off {mg / sd:.2f}x saslauthd (good passwords), with the replica "
                       f"{mgr / sd:.2f}x; cache on {mgc / sdc:.2f}x saslauthd -c, {mgc / ceiling[c]:.0%} of the ceiling; "
                       f"compare mode with the replica {mgx / sdx:.2f}x saslauthd's custom, {mgx / sd:.2f}x its bind.")
    finally:
        lab.close()
    print("\n".join(out))


if __name__ == "__main__":
    main()
