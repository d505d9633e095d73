#!/usr/bin/env python3
"""What slapd's syncprov overlay (needed by ldap_replica_base) costs the
lookups that do not use it: Postfix's own ldap: table through
`postmap -q - ldap:FILE < keys` against two slapds with the same users,
one with syncprov and one without, rounds interleaved. The first round
warms each slapd's cache and is shown but not counted.

    python3 bench/syncprov_cost.py [--users 100000] [--rounds 3]
"""

import argparse
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
sys.path.insert(0, HERE)
from harness import SUFFIX, Lab, Postfix, Slapd  # noqa: E402
from tablemap_bench import CF, gen_users, postmap_run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    lab = Lab("bench-syncprov")
    try:
        users = lab.path("users.ldif")
        gen_users(users, a.users)
        base = os.path.join(HERE, "..", "tests", "integration", "data", "users.ldif")
        slapds = {"with syncprov": Slapd(lab, [base, users], name="with"),
                  "without": Slapd(lab, [base, users], name="without", syncprov=False)}
        rnd = random.Random(42)
        keys = [f"user{i:06d}@example.com" for i in rnd.sample(range(a.users), 20000)]
        keys += [f"nouser{i:06d}@example.com" for i in range(20000)]
        rnd.shuffle(keys)
        keys_file = lab.write("keys.txt", "".join(k + "\n" for k in keys))
        pf = Postfix(lab, start=False)
        cfs = {name: lab.write(f"{s.name}.cf", CF.format(server=s.uri, suffix=SUFFIX)) for name, s in slapds.items()}
        rates = {name: [] for name in slapds}
        for _ in range(a.rounds + 1):
            for name, cf in cfs.items():
                seconds, _ = postmap_run(pf, "ldap:" + cf, keys_file)
                rates[name].append(len(keys) / seconds)
        print(f"ldap: lookups/s through postmap, {a.users:,} users, {len(keys):,} keys; warm-up round first\n")
        print("| slapd | warm-up | each round | median |")
        print("|---|---:|---|---:|")
        for name, r in rates.items():
            counted = sorted(r[1:])
            print(f"| {name} | {r[0]:,.0f} | {' / '.join(f'{x:,.0f}' for x in r[1:])} | {counted[len(counted) // 2]:,.0f} |")
    finally:
        lab.close()


if __name__ == "__main__":
    main()
