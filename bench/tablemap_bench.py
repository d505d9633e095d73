#!/usr/bin/env python3
"""ldap_tablemap against the lookups a sysadmin would otherwise run.

One slapd with N users (default 100,000); 20,000 existing and 20,000 unknown
keys, shuffled. Through the same client, `postmap -q - TABLE < keys`:
  - Postfix's own ldap: table on the same .cf file,
  - ldap_tablemap over tcp_table and socketmap, cold cache and warm,
  - a trivial in-memory tcp_table responder (the ceiling through postmap).
  - ldap_tablemap with ldap_replica_base (an in-memory copy kept by RFC 4533
    sync) and its lookup cache off,
Under 64 concurrent persistent clients (bench/loadgen.c):
  - slapd queried directly, ldap_tablemap cold and warm, the trivial responder.
Prints a Markdown report with the ratios.

    python3 bench/tablemap_bench.py [--users 100000] [--conns 64]
"""

import argparse
import os
import platform
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from harness import (BUILD, SUFFIX, Lab, Postfix, Slapd, binary, free_port, start_tablemap, tcp_lookup,  # noqa: E402
                     wait_for, wait_port)

CF = """server_host = {server}
search_base = {suffix}
version = 3
bind = no
query_filter = (mailacceptinggeneralid=%s)
result_attribute = maildrop
"""


def gen_users(path, n):
    with open(path, "w") as f:
        for i in range(n):
            u = f"user{i:06d}"
            f.write(f"dn: uid={u},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: mailSuiteRecipient\n"
                    f"uid: {u}\ncn: User {i}\nsn: {i}\nmail: {u}@example.com\n"
                    f"mailacceptinggeneralid: {u}@example.com\nmailacceptinggeneralid: alias.{u}@example.com\n"
                    f"maildrop: {u}@mail{i % 16 + 1:02d}.example.com\n\n")


def postmap_run(pf, table, keys_file):
    t0 = time.monotonic()
    with open(keys_file) as f:
        r = subprocess.run(["postmap", "-c", pf.etc, "-q", "-", table], stdin=f, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    found = r.stdout.count("\n")
    if r.returncode not in (0, 1) or "fatal" in r.stderr:
        raise RuntimeError(f"postmap {table}: {r.stderr[-500:]}")
    return elapsed, found


def loadgen(args):
    r = subprocess.run([os.path.join(BUILD, "bench", "loadgen"), *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"loadgen {args}: {r.stdout}{r.stderr}")
    return dict(kv.split("=", 1) for kv in r.stdout.split())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--found", type=int, default=20000)
    ap.add_argument("--unknown", type=int, default=20000)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()

    lab = Lab("bench-tablemap")
    out = []
    try:
        users = lab.path("users.ldif")
        gen_users(users, a.users)
        t0 = time.monotonic()
        slapd = Slapd(lab, [os.path.join(HERE, "..", "tests", "integration", "data", "users.ldif"), users])
        load_s = time.monotonic() - t0
        rnd = random.Random(42)
        existing = [f"user{i:06d}@example.com" for i in rnd.sample(range(a.users), a.found)]
        unknown = [f"nouser{i:06d}@example.com" for i in range(a.unknown)]
        keys = existing + unknown
        rnd.shuffle(keys)
        keys_file = lab.write("keys.txt", "".join(k + "\n" for k in keys))
        map_file = lab.write("map.txt", "".join(
            f"user{i:06d}@example.com\tuser{i:06d}@mail{i % 16 + 1:02d}.example.com\n" for i in range(a.users)))
        cf = lab.write("virtual.cf", CF.format(server=slapd.uri, suffix=SUFFIX))
        pf = Postfix(lab, start=False)

        trivial_port = free_port()
        lab.spawn("trivial", [os.path.join(BUILD, "bench", "trivial_tablemap"), trivial_port, map_file])
        wait_port(trivial_port)

        def tablemap():
            tcp, sm = free_port(), free_port()
            p = start_tablemap(lab, ["--table", f"virtual={cf}", "--tcp", f"virtual=127.0.0.1:{tcp}",
                                     "--socketmap", f"127.0.0.1:{sm}", "-o", "tablemap_style=virtual=exact",
                                     "-o", f"cache_size={a.users * 2}", "-o", "cache_ttl=1h",
                                     "-o", "cache_negative_ttl=1h"], [tcp, sm], name=f"tm{tcp}")
            return p, tcp, sm

        replica_notes = []

        def replica():
            tcp, sm = free_port(), free_port()
            t0 = time.monotonic()
            p = start_tablemap(lab, ["--table", f"virtual={cf}", "--tcp", f"virtual=127.0.0.1:{tcp}",
                                     "--socketmap", f"127.0.0.1:{sm}", "-o", "tablemap_style=virtual=exact",
                                     "-o", "cache_size=0", "-o", f"ldap_replica_base={SUFFIX}"], [tcp, sm],
                               name=f"tr{tcp}")
            wait_for(lambda: "in service" in p.stderr(), 120, what="the replica")
            ready = time.monotonic() - t0
            with open(f"/proc/{p.pid}/status") as f:
                rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            replica_notes.append((ready, rss / 1024))
            return p, tcp, sm

        n = len(keys)

        def median(xs):
            xs = sorted(xs)
            return xs[len(xs) // 2]

        # Every configuration runs in each round, interleaved, and the
        # median round counts: this machine's speed drifts over minutes.
        names = ["Postfix ldap: (direct to slapd)", "trivial in-memory tcp_table (ceiling)",
                 "ldap_tablemap tcp_table, cold cache", "ldap_tablemap tcp_table, warm cache",
                 "ldap_tablemap socketmap, cold cache", "ldap_tablemap socketmap, warm cache",
                 "ldap_tablemap tcp_table, replica, cache off", "ldap_tablemap socketmap, replica, cache off"]
        times = {k: [] for k in names}
        found = {}
        for _ in range(a.rounds):
            for name, table in [(names[0], "ldap:" + cf), (names[1], f"tcp:127.0.0.1:{trivial_port}")]:
                e, found[name] = postmap_run(pf, table, keys_file)
                times[name].append(e)
            p, tcp, sm = tablemap()
            for name in names[2:4]:
                e, found[name] = postmap_run(pf, f"tcp:127.0.0.1:{tcp}", keys_file)
                times[name].append(e)
            p.stop()
            p, tcp, sm = tablemap()
            for name in names[4:6]:
                e, found[name] = postmap_run(pf, f"socketmap:inet:127.0.0.1:{sm}:virtual", keys_file)
                times[name].append(e)
            p.stop()
            p, tcp, sm = replica()
            e, found[names[6]] = postmap_run(pf, f"tcp:127.0.0.1:{tcp}", keys_file)
            times[names[6]].append(e)
            e, found[names[7]] = postmap_run(pf, f"socketmap:inet:127.0.0.1:{sm}:virtual", keys_file)
            times[names[7]].append(e)
            p.stop()

        rate = {k: n / median(v) for k, v in times.items()}
        ldap_rate, ceiling = rate[names[0]], rate[names[1]]
        out.append(f"### ldap_tablemap through `postmap -q -` ({a.users:,} users, {a.found:,} existing + "
                   f"{a.unknown:,} unknown keys, one client; median of {a.rounds} interleaved rounds)\n")
        out.append("| table | seconds (each round) | lookups/s (median) | found | vs ldap: | vs ceiling |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for name in names:
            each = " / ".join(f"{t:.2f}" for t in times[name])
            out.append(f"| {name} | {each} | {rate[name]:,.0f} | {found[name]:,} | {rate[name] / ldap_rate:.2f}x | "
                       f"{rate[name] / ceiling:.0%} |")

        # How soon a change in slapd shows in the replica's answers: modify
        # an entry, then ask every millisecond until the answer is the new one.
        p, tcp, sm = replica()
        lags = []
        for i in range(20):
            u = f"user{i:06d}"
            new = f"{u}@moved{i}.example.com"
            slapd.modify(f"dn: uid={u},ou=people,{SUFFIX}\nchangetype: modify\nreplace: maildrop\nmaildrop: {new}\n")
            t0 = time.monotonic()
            while tcp_lookup(tcp, f"{u}@example.com") != (200, new):
                if time.monotonic() - t0 > 5:
                    raise RuntimeError(f"the replica did not see the change of {u} in 5 s")
                time.sleep(0.001)
            lags.append((time.monotonic() - t0) * 1000)
        p.stop()
        lags.sort()

        lg_names = ["slapd queried directly (LDAP search)", "trivial in-memory tcp_table (ceiling)",
                    "ldap_tablemap tcp_table, cold cache", "ldap_tablemap tcp_table, warm cache",
                    "ldap_tablemap socketmap, warm cache", "ldap_tablemap tcp_table, replica, cache off"]
        lg = {k: [] for k in lg_names}
        for _ in range(a.rounds):
            lg[lg_names[0]].append(loadgen(["-m", "ldap", "-p", slapd.port, "-c", a.conns, "-k", keys_file,
                                            "-b", SUFFIX]))
            lg[lg_names[1]].append(loadgen(["-m", "tcp", "-p", trivial_port, "-c", a.conns, "-k", keys_file]))
            p, tcp, sm = tablemap()
            lg[lg_names[2]].append(loadgen(["-m", "tcp", "-p", tcp, "-c", a.conns, "-k", keys_file]))
            lg[lg_names[3]].append(loadgen(["-m", "tcp", "-p", tcp, "-c", a.conns, "-k", keys_file]))
            lg[lg_names[4]].append(loadgen(["-m", "socketmap", "-p", sm, "-c", a.conns, "-k", keys_file,
                                            "-n", "virtual"]))
            p.stop()
            p, tcp, sm = replica()
            lg[lg_names[5]].append(loadgen(["-m", "tcp", "-p", tcp, "-c", a.conns, "-k", keys_file]))
            p.stop()
        pick = {k: sorted(v, key=lambda r: float(r["rps"]))[len(v) // 2] for k, v in lg.items()}
        direct = float(pick[lg_names[0]]["rps"])
        out.append(f"\n### {a.conns} concurrent persistent clients (bench/loadgen.c), {n:,} lookups per run, "
                   f"median of {a.rounds} rounds\n")
        out.append("| target | lookups/s | p50 µs | p99 µs | p99.9 µs | vs slapd direct |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for name in lg_names:
            r = pick[name]
            out.append(f"| {name} | {float(r['rps']):,.0f} | {r['p50_us']} | {r['p99_us']} | {r['p999_us']} | "
                       f"{float(r['rps']) / direct:.2f}x |")
        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        except (OSError, StopIteration):
            pass
        out.append(f"\nReplica: a change made with ldapmodify was in its answers {lags[len(lags) // 2]:.1f} ms "
                   f"(median of {len(lags)}; max {lags[-1]:.1f} ms) after ldapmodify returned.")
        out.append(f"\nReplica: in service {median([r[0] for r in replica_notes]):.1f} s after start "
                   f"(refresh of {a.users:,} entries), resident size then {median([r[1] for r in replica_notes]):.0f} MiB.")
        out.append(f"\nMachine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
                   f"slapd loaded {a.users:,} users in {load_s:.1f} s.")
    finally:
        lab.close()
    print("\n".join(out))


if __name__ == "__main__":
    main()
