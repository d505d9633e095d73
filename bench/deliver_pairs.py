#!/usr/bin/env python3
"""maildir_deliver, one process per message, against the safe floor
(bench/maildir_floor: write, fsync, rename, fsync the directory) in pairs
of short blocks, so that a VM whose speed drifts within minutes slows both
sides of a pair alike. Each block is `deliver_spawn -n BLOCK` into a fresh
Maildir; its per-delivery rate is 1000 / p50_ms. Prints the median rate of
each side and the median of the pairs' ratios.

    python3 bench/deliver_pairs.py [--pairs 30] [--block 50]

Messages: 20 files of base64 text, 27-53 KB, as in bench/RESULTS.md's
perf stat figures.
"""

import argparse
import base64
import os
import re
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from harness import BUILD, Lab, binary  # noqa: E402


def block(spawn, messages, start, count, command):
    out = subprocess.run([spawn, "-n", str(count), "-s", str(start), "-d", messages, "--"] + command,
                         capture_output=True, text=True, check=True).stdout
    if " failures=0" not in out:
        raise SystemExit(f"deliveries failed: {out.strip()}")
    return 1000.0 / float(re.search(r"p50_ms=([\d.]+)", out).group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=30)
    ap.add_argument("--block", type=int, default=50)
    a = ap.parse_args()
    lab = Lab("bench-deliver-pairs")
    try:
        messages = lab.path("messages")
        os.makedirs(messages)
        for i in range(1, 21):
            raw = os.urandom(20000 + i * 1000)
            text = base64.encodebytes(raw)  # 76-column lines, as `base64` writes
            with open(os.path.join(messages, f"m{i:02d}"), "wb") as f:
                f.write(text)
        spawn = os.path.join(BUILD, "bench", "deliver_spawn")
        floor = os.path.join(BUILD, "bench", "maildir_floor")
        deliver = binary("maildir_deliver")
        rates = {"floor": [], "maildir_deliver": []}
        for p in range(a.pairs):
            for name in rates:
                d = lab.path(f"md-{name}-{p}")
                for sub in ("tmp", "new", "cur"):
                    os.makedirs(os.path.join(d, sub))
                cmd = [floor, d] if name == "floor" else [deliver, "--maildir", d, "--quota", "1000000000S,100000C"]
                rates[name].append(block(spawn, messages, p * a.block, a.block, cmd))
                shutil.rmtree(d)
        f, m = statistics.median(rates["floor"]), statistics.median(rates["maildir_deliver"])
        pairs = statistics.median(x / y for x, y in zip(rates["maildir_deliver"], rates["floor"]))
        print(f"{a.pairs} pairs of {a.block} deliveries: floor {f:.1f}/s, maildir_deliver {m:.1f}/s "
              f"(medians of 1000/p50_ms); ratio of medians {m / f:.3f}, median of pair ratios {pairs:.3f}")
    finally:
        lab.close()


if __name__ == "__main__":
    main()
