#!/usr/bin/env python3
"""maildir_deliver, one process per message, against the safe floor
(bench/maildir_floor: write, fsync, rename, fsync the directory) in pairs
of short blocks, so that a VM whose speed drifts within minutes slows both
sides of a pair alike. Each block is `deliver_spawn -p -n BLOCK` into a
fresh Maildir, the message given through a pipe as local(8) and pipe(8)
give it (--file-input: stdin opened on the file); its per-delivery rate
is 1000 / p50_ms. Prints the median rate of
each side and the median of the pairs' ratios.

    python3 bench/deliver_pairs.py [--pairs 30] [--block 50] [--file-input]
        [--maildirs DIR]

--maildirs puts the Maildirs in DIR (a tmpfs such as /dev/shm: fsync
costs nothing there, which leaves what each program does besides).

With --variant (repeatable), each round runs the floor and every variant
in random order, and prints each variant's median pair ratio against the
floor and against the first variant:

    --variant 'LABEL=[NAME=VALUE ...] PROGRAM [ARGS]'

ARGS default to `--maildir {dir} --quota 1000000000S,100000C`; {dir} is
the block's Maildir; NAME=VALUE pairs go into the program's environment.

Messages: 20 files of base64 text, 27-53 KB, as in bench/RESULTS.md's
perf stat figures.
"""

import argparse
import base64
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from harness import BUILD, Lab, binary  # noqa: E402


def block(spawn, messages, start, count, command, env=None, through_pipe=True):
    out = subprocess.run([spawn] + (["-p"] if through_pipe else []) + ["-n", str(count), "-s", str(start), "-d",
                                                                       messages, "--"] + command,
                         capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}).stdout
    if " failures=0" not in out:
        raise SystemExit(f"deliveries failed: {out.strip()}")
    return 1000.0 / float(re.search(r"p50_ms=([\d.]+)", out).group(1))


QUOTA_ARGS = ["--maildir", "{dir}", "--quota", "1000000000S,100000C"]


def parse_variant(text):
    label, sep, command = text.partition("=")
    words = shlex.split(command)
    env = {}
    while words and "=" in words[0] and not words[0].startswith("/"):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if not sep or not label or not words:
        raise SystemExit(f"--variant {text!r}: expected 'LABEL=[NAME=VALUE ...] PROGRAM [ARGS]'")
    return label, env, words[:1] + (words[1:] or QUOTA_ARGS)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=30)
    ap.add_argument("--block", type=int, default=50)
    ap.add_argument("--variant", action="append", default=[], help="LABEL=[NAME=VALUE ...] PROGRAM [ARGS]")
    ap.add_argument("--file-input", action="store_true", help="stdin opened on the message file, not a pipe")
    ap.add_argument("--maildirs", help="make the Maildirs here (default: in the lab directory)")
    a = ap.parse_args()
    variants = [parse_variant(v) for v in a.variant] or [("maildir_deliver", {}, [binary("maildir_deliver")] + QUOTA_ARGS)]
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
        sides = [("floor", {}, [floor, "{dir}"])] + variants
        rates = {label: [] for label, _, _ in sides}
        for p in range(a.pairs):
            order = sides if not a.variant else random.sample(sides, len(sides))
            for label, env, command in order:
                d = os.path.join(a.maildirs, f"mailgrid-pairs-{os.getpid()}-{p}") if a.maildirs else lab.path(f"md-{p}")
                for sub in ("tmp", "new", "cur"):
                    os.makedirs(os.path.join(d, sub))
                cmd = [w.replace("{dir}", d) for w in command]
                rates[label].append(block(spawn, messages, p * a.block, a.block, cmd, env, not a.file_input))
                shutil.rmtree(d)
        f = statistics.median(rates["floor"])
        if not a.variant:
            m = statistics.median(rates["maildir_deliver"])
            pairs = statistics.median(x / y for x, y in zip(rates["maildir_deliver"], rates["floor"]))
            print(f"{a.pairs} pairs of {a.block} deliveries: floor {f:.1f}/s, maildir_deliver {m:.1f}/s "
                  f"(medians of 1000/p50_ms); ratio of medians {m / f:.3f}, median of pair ratios {pairs:.3f}")
            return
        first = variants[0][0]
        print(f"{a.pairs} rounds of {a.block} deliveries, random order; floor {f:.1f}/s")
        for label, _, _ in variants:
            r = rates[label]
            vs_floor = statistics.median(x / y for x, y in zip(r, rates["floor"]))
            vs_first = statistics.median(x / y for x, y in zip(r, rates[first]))
            print(f"{label:28s} {statistics.median(r):7.1f}/s  vs floor {vs_floor:.3f}  vs {first} {vs_first:.3f}")
    finally:
        lab.close()

if __name__ == "__main__":
    main()
