#!/usr/bin/env python3
"""maildir_deliver against Courier's deliverquota, dovecot-lda, a minimal
safe C delivery, and Dovecot's LMTP, in the same run.

Per process (one delivery per process, as pipe(8) and local(8) run it):
2,000 realistic messages (2-50 KB, 1% of 1 MB) into one Maildir with a
quota, by
  - maildir_floor: write, fsync, rename into new/, fsync new/ (the floor
    for a safe per-process delivery),
  - maildir_deliver --maildir DIR --quota Q (like deliverquota),
  - maildir_deliver -c mailgrid.cf -d user@domain (mailbox found through
    the layout, limit cached in maildirsize, directory = LDIF file),
  - deliverquota DIR Q (Courier: no fsync at all),
  - dovecot-lda -d user (Maildir++ quota, mail_fsync=optimized),
run interleaved in blocks so every program sees the same drift of the
machine. deliver_spawn (bench/deliver_spawn.c) starts each process and
gives it the message through a pipe, as local(8) and pipe(8) do
(--file-input: standard input opened on the message file instead).

LMTP: maildir_deliver --lmtp against Dovecot's LMTP service (Maildir++
quota, mail_fsync=optimized) at 1, 4 and 16 connections with 1 and 5
recipients per transaction (64 mailboxes), by lmtpgen (bench/lmtpgen.c),
each configuration interleaved over several rounds; medians reported. A
third server, maildir_deliver with deliver_lmtp_duplicate_window = 0, runs
in the same rounds to show what the delivery journal costs.

    python3 bench/maildir_deliver_bench.py [--messages 2000] [--block 100]
        [--lmtp-deliveries 1200] [--rounds 3] [--file-input]
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from harness import BUILD, SUFFIX, Lab, binary, free_port, mailgrid_cf, need, wait_port  # noqa: E402
from maildir_deliver_peers import DOVECOT_LDA, Dovecot, maildir_messages  # noqa: E402

WORDS = ("the mail system delivers every message into a maildir with quota and fsync before it reports "
         "success to postfix so that nothing is lost when power fails during a busy afternoon").split()


def realistic_messages(directory, n, seed=7):
    """Headers like a real message's, a text body; 2-50 KB, 1% of 1 MB."""
    rnd = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    sizes = []
    for i in range(n):
        size = 1_000_000 if rnd.random() < 0.01 else int(rnd.triangular(2_000, 50_000, 6_000))
        head = (f"Return-Path: <list-{i % 17}@lists.example.org>\n"
                f"Received: from mx{i % 5}.example.org (mx{i % 5}.example.org [192.0.2.{i % 250}])\n"
                f"\tby mx.example.com (Postfix) with ESMTPS id {i:010X}\n\tfor <bench@example.com>; "
                f"Mon, 23 Nov 2026 10:{i % 60:02d}:00 +0000\n"
                f"From: Sender {i % 31} <sender{i % 31}@example.org>\nTo: bench@example.com\n"
                f"Subject: benchmark message {i} about {rnd.choice(WORDS)}\nDate: Mon, 23 Nov 2026 10:00:00 +0000\n"
                f"Message-Id: <{i}.{rnd.getrandbits(32):x}@example.org>\nMIME-Version: 1.0\n"
                "Content-Type: text/plain; charset=utf-8\n\n")
        lines = [head]
        total = len(head)
        while total < size:
            line = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(6, 14))) + "\n"
            if rnd.random() < 0.02:
                line = "." + line  # dot-stuffing must be undone over LMTP
            lines.append(line)
            total += len(line)
        with open(os.path.join(directory, f"m{i:05d}"), "w") as f:
            f.write("".join(lines))
        sizes.append(total)
    return sizes


def spawn(count, start, msgdir, cmd, through_pipe=True):
    r = subprocess.run([os.path.join(BUILD, "bench", "deliver_spawn"), *(["-p"] if through_pipe else []), "-n",
                        str(count), "-s", str(start), "-d", msgdir, "--", *cmd], capture_output=True, text=True)
    out = dict(kv.split("=", 1) for kv in r.stdout.split())
    if r.returncode != 0 or int(out.get("failures", "1")) != 0:
        raise RuntimeError(f"{cmd[0]}: {r.stdout}{r.stderr}")
    return float(out["seconds"])


def lmtpgen(port, conns, rcpts, transactions, msgdir, addrs):
    r = subprocess.run([os.path.join(BUILD, "bench", "lmtpgen"), "-p", str(port), "-c", str(conns), "-r",
                        str(rcpts), "-n", str(transactions), "-m", msgdir, "-a", addrs], capture_output=True,
                       text=True)
    out = dict(kv.split("=", 1) for kv in r.stdout.split())
    if r.returncode != 0:
        raise RuntimeError(f"lmtpgen: {r.stdout}{r.stderr}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--block", type=int, default=100)
    ap.add_argument("--lmtp-deliveries", type=int, default=1200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-process", action="store_true")
    ap.add_argument("--skip-lmtp", action="store_true")
    ap.add_argument("--file-input", action="store_true", help="stdin opened on the message file, not a pipe")
    a = ap.parse_args()
    need("deliverquota", "maildirmake", "dovecot", DOVECOT_LDA)
    md_bin = binary("maildir_deliver")

    lab = Lab("bench-maildir")
    out = []
    try:
        msgdir = lab.path("messages")
        sizes = realistic_messages(msgdir, a.messages)
        users = 64
        ldif = lab.write("users.ldif", f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
                                       f"dc: example\no: Example\n\n" + "".join(
                                           f"dn: uid=bench{i:03d},{SUFFIX}\nobjectClass: inetOrgPerson\n"
                                           f"uid: bench{i:03d}\ncn: b\nsn: b\nmail: bench{i:03d}@example.com\n"
                                           f"mailQuotaBytes: 100000000000\n\n" for i in range(users)))
        addrs = lab.write("addresses", "".join(f"bench{i:03d}@example.com\n" for i in range(users)))
        store = lab.path("store")
        os.makedirs(store)
        lmtp_port = free_port()
        cf = mailgrid_cf(lab, {"deliver_root": store, "deliver_server_host": "ldif:" + ldif,
                               "deliver_search_base": SUFFIX, "deliver_lmtp_threads": "16",
                               "deliver_lmtp_listen": f"inet:127.0.0.1:{lmtp_port}"})
        # The same server without its delivery journal, for what the
        # journal (duplicate suppression after a lost reply) costs.
        plain_port = free_port()
        plain_cf = mailgrid_cf(lab, {"deliver_root": store, "deliver_server_host": "ldif:" + ldif,
                                     "deliver_search_base": SUFFIX, "deliver_lmtp_threads": "16",
                                     "deliver_lmtp_duplicate_window": "0",
                                     "deliver_lmtp_listen": f"inet:127.0.0.1:{plain_port}"}, name="plain.cf")
        # Dovecot's mail belongs to nobody (it refuses uid 0); Dovecot's LMTP
        # keeps 4 processes ready, as a tuned site would.
        dovecot = Dovecot(lab, storage="100G", lmtp=True)
        out.append(f"# maildir_deliver benchmark\n\n{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores; "
                   f"{a.messages} messages, {sum(sizes) / len(sizes) / 1024:.1f} KB on average "
                   f"({sum(1 for s in sizes if s >= 1_000_000)} of 1 MB).\n")

        if not a.skip_process:
            quota = "100000000000S"
            dirs = {}
            for name in ("floor", "explicit", "config", "deliverquota"):
                dirs[name] = lab.path(f"pp-{name}")
            for d in (dirs["floor"], dirs["deliverquota"]):
                subprocess.run(["maildirmake", d], check=True)
            # The config run's Maildir exists already, as a user's would.
            subprocess.run([md_bin, "-c", cf, "-d", "bench000@example.com"], input=b"Subject: seed\n\nx\n",
                           check=True)
            configs = [
                ("maildir_floor (write, fsync, rename, fsync dir)",
                 [os.path.join(BUILD, "bench", "maildir_floor"), dirs["floor"]]),
                ("maildir_deliver --maildir DIR --quota Q", [md_bin, "--maildir", dirs["explicit"], "--quota", quota]),
                ("maildir_deliver -c mailgrid.cf -d user@domain", [md_bin, "-c", cf, "-d", "bench000@example.com"]),
                ("deliverquota DIR Q (Courier, no fsync)", [shutil.which("deliverquota"), dirs["deliverquota"], quota]),
                ("dovecot-lda -d user (mail_fsync=optimized)", [DOVECOT_LDA, "-c", dovecot.conf, "-d", "lda"]),
            ]
            totals = {name: 0.0 for name, _ in configs}
            block_rates = {name: [] for name, _ in configs}
            for start in range(0, a.messages, a.block):
                n = min(a.block, a.messages - start)
                order = configs[:] if (start // a.block) % 2 == 0 else configs[::-1]
                for name, cmd in order:
                    s = spawn(n, start, msgdir, cmd, not a.file_input)
                    totals[name] += s
                    block_rates[name].append(n / s)
            floor = statistics.median(block_rates[configs[0][0]])
            out.append("## One process per message\n")
            out.append(f"{a.messages} messages into one Maildir each, interleaved in blocks of {a.block}; "
                       "messages/s over the whole run and the median of the blocks.\n")
            out.append("| program | seconds | messages/s | median of blocks | vs floor | fsync-safe |")
            out.append("|---|---:|---:|---:|---:|---|")
            for name, _ in configs:
                med = statistics.median(block_rates[name])
                safe = "no" if "deliverquota" in name else "yes"
                out.append(f"| {name} | {totals[name]:.2f} | {a.messages / totals[name]:.0f} | {med:.0f} | "
                           f"{med / floor:.2f}x | {safe} |")
            out.append("")
            explicit = statistics.median(block_rates[configs[1][0]]) / floor
            config_mode = statistics.median(block_rates[configs[2][0]]) / floor
            out.append(f"maildir_deliver per process: {explicit:.0%} (--maildir) and {config_mode:.0%} (-d) of the "
                       "safe floor (goal: 90%).\n")
            # Every message of each run must be there.
            for name in ("explicit", "floor", "deliverquota"):
                assert len(maildir_messages(dirs[name])) == a.messages, name
            print("\n".join(out), flush=True)

        if not a.skip_lmtp:
            server = lab.spawn("lmtp", [md_bin, "-c", cf, "--lmtp"])
            plain = lab.spawn("lmtp-plain", [md_bin, "-c", plain_cf, "--lmtp"])
            wait_port(lmtp_port, 10)
            wait_port(plain_port, 10)
            # Warm up: every mailbox exists before anything is timed.
            lmtpgen(lmtp_port, 1, 1, users, msgdir, addrs)
            lmtpgen(dovecot.lmtp_port, 1, 1, users, msgdir, addrs)
            shapes = [(1, 1), (4, 1), (16, 1), (1, 5), (4, 5), (16, 5)]
            results = {}
            for rnd in range(a.rounds):
                for conns, rcpts in shapes:
                    txns = max(a.lmtp_deliveries // rcpts, conns * 4)
                    pair = [("maildir_deliver", lmtp_port), ("dovecot", dovecot.lmtp_port), ("plain", plain_port)]
                    pair = pair[rnd % 3:] + pair[:rnd % 3]
                    for name, port in pair:
                        r = lmtpgen(port, conns, rcpts, txns, msgdir, addrs)
                        results.setdefault((name, conns, rcpts), []).append(r)
            assert server.alive(), server.stderr()
            assert plain.alive(), plain.stderr()
            out.append("## LMTP\n")
            out.append(f"{a.rounds} rounds, interleaved; about {a.lmtp_deliveries} deliveries per run into 64 "
                       "Maildirs; medians. Latency is per transaction (MAIL to the last reply after DATA).\n")
            out.append("| connections | recipients/txn | maildir_deliver /s | Dovecot LMTP /s | ratio | "
                       "ours p50 / p99 ms | Dovecot p50 / p99 ms | without journal /s |")
            out.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
            worst = None
            for conns, rcpts in shapes:
                ours = results[("maildir_deliver", conns, rcpts)]
                dove = results[("dovecot", conns, rcpts)]
                bare = results[("plain", conns, rcpts)]
                med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
                ratio = med(ours, "per_s") / med(dove, "per_s")
                worst = ratio if worst is None else min(worst, ratio)
                out.append(f"| {conns} | {rcpts} | {med(ours, 'per_s'):.0f} | {med(dove, 'per_s'):.0f} | "
                           f"{ratio:.2f}x | {med(ours, 'p50_ms'):.1f} / {med(ours, 'p99_ms'):.1f} | "
                           f"{med(dove, 'p50_ms'):.1f} / {med(dove, 'p99_ms'):.1f} | {med(bare, 'per_s'):.0f} |")
            out.append("")
            out.append(f"Lowest ratio against Dovecot's LMTP: {worst:.2f}x (goal: 2x at every concurrency).\n")
            print("\n".join(out[-(len(shapes) + 6):]), flush=True)
    finally:
        lab.close()


if __name__ == "__main__":
    main()
