#!/usr/bin/env python3
"""ldap_tablemap against the lookups a sysadmin would otherwise run.

One slapd with N users (default 100,000); 20,000 existing and 20,000 unknown
keys, shuffled. Through the same client, `postmap -q - TABLE < keys`:
  - Postfix's own ldap: table on the same .cf file,
  - ldap_tablemap over tcp_table and socketmap, cold cache and warm,
  - a trivial in-memory tcp_table responder (the ceiling through postmap).
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
from harness import BUILD, SUFFIX, Lab, Postfix, Slapd, binary, free_port, start_tablemap, wait_port  # noqa: E402

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

        n = len(keys)
        rows = []

        def row(name, elapsed, found, ref=None):
            rows.append((name, elapsed, n / elapsed, found))

        e, f = postmap_run(pf, "ldap:" + cf, keys_file)
        row("Postfix ldap: (direct to slapd)", e, f)
        e, f = postmap_run(pf, f"tcp:127.0.0.1:{trivial_port}", keys_file)
        row("trivial in-memory tcp_table (ceiling)", e, f)
        p, tcp, sm = tablemap()
        e, f = postmap_run(pf, f"tcp:127.0.0.1:{tcp}", keys_file)
        row("ldap_tablemap tcp_table, cold cache", e, f)
        e, f = postmap_run(pf, f"tcp:127.0.0.1:{tcp}", keys_file)
        row("ldap_tablemap tcp_table, warm cache", e, f)
        p.stop()
        p, tcp, sm = tablemap()
        e, f = postmap_run(pf, f"socketmap:inet:127.0.0.1:{sm}:virtual", keys_file)
        row("ldap_tablemap socketmap, cold cache", e, f)
        e, f = postmap_run(pf, f"socketmap:inet:127.0.0.1:{sm}:virtual", keys_file)
        row("ldap_tablemap socketmap, warm cache", e, f)
        p.stop()

        ldap_rate = rows[0][2]
        ceiling = rows[1][2]
        out.append(f"### ldap_tablemap through `postmap -q -` ({a.users:,} users, {a.found:,} existing + "
                   f"{a.unknown:,} unknown keys, one client)\n")
        out.append("| table | seconds | lookups/s | found | vs ldap: | vs ceiling |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for name, e, rate, f in rows:
            out.append(f"| {name} | {e:.2f} | {rate:,.0f} | {f:,} | {rate / ldap_rate:.2f}x | {rate / ceiling:.0%} |")

        lg = []
        r = loadgen(["-m", "ldap", "-p", slapd.port, "-c", a.conns, "-k", keys_file, "-b", SUFFIX])
        lg.append(("slapd queried directly (LDAP search)", r))
        r = loadgen(["-m", "tcp", "-p", trivial_port, "-c", a.conns, "-k", keys_file])
        lg.append(("trivial in-memory tcp_table (ceiling)", r))
        p, tcp, sm = tablemap()
        r = loadgen(["-m", "tcp", "-p", tcp, "-c", a.conns, "-k", keys_file])
        lg.append(("ldap_tablemap tcp_table, cold cache", r))
        r = loadgen(["-m", "tcp", "-p", tcp, "-c", a.conns, "-k", keys_file])
        lg.append(("ldap_tablemap tcp_table, warm cache", r))
        r = loadgen(["-m", "socketmap", "-p", sm, "-c", a.conns, "-k", keys_file, "-n", "virtual"])
        lg.append(("ldap_tablemap socketmap, warm cache", r))
        p.stop()
        direct = float(lg[0][1]["rps"])
        out.append(f"\n### {a.conns} concurrent persistent clients (bench/loadgen.c), {n:,} lookups per run\n")
        out.append("| target | lookups/s | p50 µs | p99 µs | p99.9 µs | vs slapd direct |")
        out.append("|---|---:|---:|---:|---:|---:|")
        for name, r in lg:
            out.append(f"| {name} | {float(r['rps']):,.0f} | {r['p50_us']} | {r['p99_us']} | {r['p999_us']} | "
                       f"{float(r['rps']) / direct:.2f}x |")
        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        except (OSError, StopIteration):
            pass
        out.append(f"\nMachine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
                   f"slapd loaded {a.users:,} users in {load_s:.1f} s.")
    finally:
        lab.close()
    print("\n".join(out))


if __name__ == "__main__":
    main()
