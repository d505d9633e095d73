#!/usr/bin/env python3
"""mailgrid_policy against postfwd2 and a trivial policy responder.

64 concurrent Postfix-style policy clients (bench/policy_loadgen.c: one
persistent connection each, one RCPT request at a time, the attributes
Postfix 3.7 sends) against:
  - trivial_policy: DUNNO to everything without reading it (the ceiling);
  - postfwd2 (Debian's postfwd) with one rate() rule per sasl_username,
    64 preforked children (one per client, as Postfix would need);
  - mailgrid_policy with the same limits only (no directory), counted in
    process;
  - mailgrid_policy with every check: recipient exists and its quota
    (slapd, cached in process; usage in Redis), sender login, and limits
    counted in Redis (one EVAL per recipient).
Half the recipients are local users, half elsewhere; every login is
different from request to request (N users). The targets run side by side
and are measured in interleaved rounds; medians and ratios are printed as
a Markdown report.

    python3 bench/mailgrid_policy_bench.py [--users 10000] [--requests 30000] [--rounds 3]
"""

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from harness import BUILD, SUFFIX, Lab, Redis, binary, free_port, mailgrid_cf, need, wait_for, wait_port  # noqa: E402
from mailgrid_policy_peers import policy_ask, policy_slapd, start_policy  # noqa: E402


def gen_users(path, n):
    with open(path, "w") as f:
        f.write(f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
                f"dn: ou=domains,{SUFFIX}\nobjectClass: organizationalUnit\nou: domains\n\n"
                f"dn: dc=example.com,ou=domains,{SUFFIX}\nobjectClass: domain\nobjectClass: domainRelatedObject\n"
                f"dc: example.com\nassociatedDomain: example.com\n\n"
                f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n")
        for i in range(n):
            u = f"user{i:06d}"
            f.write(f"dn: uid={u},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: mailSuiteRecipient\n"
                    f"uid: {u}\ncn: {u}\nsn: {i}\nmail: {u}@example.com\nmailacceptinggeneralid: {u}@example.com\n"
                    f"mailQuotaBytes: 1073741824\n\n")


def policy_answers(port):
    try:
        return policy_ask(port, sasl_username="probe").startswith("DUNNO")
    except (OSError, AssertionError):
        return False


def loadgen(port, requests_file, conns):
    r = subprocess.run([os.path.join(BUILD, "bench", "policy_loadgen"), "-p", str(port), "-c", str(conns),
                        "-k", requests_file], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"policy_loadgen: {r.stdout}{r.stderr}")
    return dict(kv.split("=", 1) for kv in r.stdout.split())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--requests", type=int, default=30000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=64)
    a = ap.parse_args()
    need("/usr/sbin/postfwd2", "redis-server")

    lab = Lab("bench-policy")
    out = []
    try:
        ldif = lab.path("users.ldif")
        gen_users(ldif, a.users)
        slapd = policy_slapd(lab, [ldif])
        redis = Redis(lab)
        rnd = random.Random(7)
        lines = []
        for i in range(a.requests):
            u = f"user{rnd.randrange(a.users):06d}"
            rcpt = f"user{rnd.randrange(a.users):06d}@example.com" if i % 2 else f"friend{i}@elsewhere.example"
            lines.append(f"sasl_username={u}\tsender={u}@example.com\trecipient={rcpt}")
        requests = lab.write("requests.txt", "\n".join(lines) + "\n")
        warm = lab.write("warm.txt", "\n".join(
            f"sasl_username=user{i:06d}\tsender=user{i:06d}@example.com\trecipient=user{i:06d}@example.com"
            for i in range(a.users)) + "\n")

        targets = {}  # name -> port
        # The ceiling.
        port = free_port()
        lab.spawn("trivial", [os.path.join(BUILD, "bench", "trivial_policy"), str(port)])
        wait_port(port)
        targets["trivial responder (DUNNO to all, the ceiling)"] = port

        # postfwd2: a rate limit per login, far above what the run sends.
        rules = lab.write("postfwd.cf", "id=LIMIT; sasl_username=~/./; "
                                        "action=rate(sasl_username/1000000/60/450 4.7.1 sending limit reached)\n")
        port = free_port()
        pidfile = lab.path("postfwd.pid")
        subprocess.run(["postfwd2", "-f", rules, "-i", "127.0.0.1", "-p", str(port), "-u", "nobody", "-g", "nogroup",
                        "-n", "--pidfile", pidfile, "-c", "0", "--noidlestats", "--perfmon",
                        "--min_servers", str(a.clients), "--max_servers", str(a.clients + 8)],
                       check=True, capture_output=True, timeout=60)

        def stop_postfwd():
            try:
                pid = int(open(pidfile).read())
                os.kill(pid, signal.SIGTERM)
                wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 20)
            except (OSError, ValueError, AssertionError):
                pass
        lab.on_close(stop_postfwd)
        # The port opens before the children are there: wait for an answer.
        wait_for(lambda: policy_answers(port), 30, what="postfwd2")
        targets["postfwd2 1.35, rate() per sasl_username"] = port

        common = {"policy_message_limits": "1000000/minute", "policy_recipient_limits": "1000000/minute",
                  "syslog_name": "mailgrid-bench", "policy_max_connections": "1000"}
        cf = mailgrid_cf(lab, dict(common), "limits-only.cf")
        port = free_port()
        start_policy(lab, cf, "mg-limits", port)
        targets["mailgrid_policy, limits only, counted in process"] = port

        cf = mailgrid_cf(lab, dict(common, policy_server_host=slapd.uri, policy_search_base=SUFFIX, policy_bind="no",
                                   redis_server=f"127.0.0.1:{redis.port}", cache_size="200000", cache_ttl="600s"),
                         "all.cf")
        port = free_port()
        start_policy(lab, cf, "mg-all", port)
        targets["mailgrid_policy, all checks (slapd cached, Redis usage and counters)"] = port
        # Usage for every mailbox, as maildir_deliver publishes it.
        pipe = "".join(f"SET mailgrid:usage:user{i:06d}@example.com {1000 + i}\n" for i in range(a.users))
        subprocess.run(["redis-cli", "-p", str(redis.port)], input=pipe, capture_output=True, text=True, check=True)

        # Warm every server's caches (and postfwd's children) once.
        for name, port in targets.items():
            loadgen(port, warm, a.clients)

        results = {name: [] for name in targets}
        for _ in range(a.rounds):
            for name, port in targets.items():
                results[name].append(loadgen(port, requests, a.clients))

        def med(name, key):
            return statistics.median(float(r[key]) for r in results[name])

        names = list(targets)
        ceiling, postfwd = names[0], names[1]
        out.append(f"### Policy decisions, {a.clients} concurrent clients ({a.requests:,} RCPT requests per run, "
                   f"{a.users:,} users, {a.rounds} interleaved rounds, medians)\n")
        out.append("| server | decisions/s | p50 µs | p99 µs | p99.9 µs | DUNNO | other | errors | vs postfwd2 | "
                   "vs ceiling |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name in names:
            rps = med(name, "rps")
            last = results[name][-1]
            out.append(f"| {name} | {rps:,.0f} | {med(name, 'p50_us'):.0f} | {med(name, 'p99_us'):.0f} | "
                       f"{med(name, 'p999_us'):.0f} | {last['found']} | {last['notfound']} | {last['errors']} | "
                       f"{rps / med(postfwd, 'rps'):.2f}x | {rps / med(ceiling, 'rps'):.0%} |")
        out.append("")
        out.append("Decisions/s in each round, in the order of the table: " + "; ".join(
            " / ".join(f"{float(r['rps']):,.0f}" for r in results[n]) for n in names) + ".")
    finally:
        lab.close()
    print("\n".join(out))


if __name__ == "__main__":
    main()
