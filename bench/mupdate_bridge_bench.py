#!/usr/bin/env python3
"""mupdate_bridge against Cyrus's own MUPDATE master (`mupdate -m` under
cyrmaster, Debian's cyrus-murder 3.6), side by side in one run, on the same
list: N mailboxes on 20 backends ("srvNN:2143!default").

Measured, every configuration in each round, interleaved; medians:
  - updates/s: pipelined ACTIVATEs (4 connections, 256 in flight each), and
    one connection per create as a backend's imapd does (banner,
    AUTHENTICATE, RESERVE, ACTIVATE, LOGOUT; 16 at once);
  - a new follower's full UPDATE, while 8 clients FIND and one writes
    (their worst latency shows who waits for whom);
  - FIND latency at 1, 8 and 32 connections;
  - a backend's LIST "srv01:2143!" (1/20 of the list);
  - delay from a write to the change on a follower's stream, without NOOP;
  - connections held (10,000 opened; each must get the banner, log in and
    answer NOOP while all are open).
The bridge is loaded through MUPDATE itself (pipelined); Cyrus's list is
written into its mailboxes.db with cvt_cyrusdb (loading it through MUPDATE
would take hours).

    python3 bench/mupdate_bridge_bench.py [--mailboxes 100000] [--rounds 3]
"""

import argparse
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from harness import BUILD, Lab  # noqa: E402
from mupdate_peers import CyrusMaster, SaslDb, start_bridge  # noqa: E402

SERVERS = 20


def load(port, *args, timeout=3600):
    r = subprocess.run([os.path.join(BUILD, "bench", "mupdate_load"), "-p", str(port), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0 and "mode=" not in r.stdout:
        raise RuntimeError(f"mupdate_load {args}: {r.stdout}{r.stderr}")
    return dict(kv.split("=", 1) for kv in r.stdout.split())


def fill_cyrus(master, n):
    """Cyrus's master list written directly: N entries of its mailboxes.db."""
    master.stop()
    lines = []
    for i in range(n):
        u = f"b{i:07d}"
        value = f"%(T er P default S srv{i % SERVERS:02d}:2143 M 1 A %({u} lrswipkxtecdan))"
        lines.append(b"Nuser\x1f" + u.encode() + b"\t" + value.encode() + b"\n")
    flat = master.lab.path("cyrus.flat")
    with open(flat, "wb") as f:
        f.write(b"".join(sorted(lines)))
    subprocess.run(["chown", "cyrus:mail", flat], check=True)
    db = os.path.join(master.dir, "config", "mailboxes.db")
    if os.path.exists(db):
        os.unlink(db)
    r = master.tool("cvt_cyrusdb", flat, "flat", db, "twoskip", timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    os.unlink(flat)
    master.start()


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mailboxes", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hold", type=int, default=10000)
    ap.add_argument("--creates", type=int, default=2000)
    a = ap.parse_args()
    n = a.mailboxes
    lab = Lab("bench-mupdate")
    out = []
    try:
        db = SaslDb(lab)
        t0 = time.monotonic()
        cyrus = CyrusMaster(lab, "cyrus-master", db, extra={"mupdate_connections_max": "128"})
        fill_cyrus(cyrus, n)
        cyrus_fill = time.monotonic() - t0
        bridge = start_bridge(lab, {"syslog_name": "mailgrid-bench"}, sasldb=db)
        fill = load(bridge.port, "-m", "pipeline", "-c", 4, "-W", 256, "-n", n, "-x", "b", "-S", SERVERS)
        targets = [("Cyrus mupdate -m", cyrus.port), ("mupdate_bridge", bridge.port)]
        res = {name: {} for name, _ in targets}

        def add(name, key, value):
            res[name].setdefault(key, []).append(value)

        for rnd in range(a.rounds):
            for name, port in targets:
                cyrus_side = port == cyrus.port
                # Updates: new names each round (offset), the same work for both.
                pipe_n = 2000 if cyrus_side else 50000
                r = load(port, "-m", "pipeline", "-c", 4, "-W", 256, "-n", pipe_n, "-x", "p", "-o", rnd * 100000,
                         "-S", SERVERS)
                add(name, "pipelined", float(r["rps"]))
                creates = min(a.creates, 600) if cyrus_side else a.creates
                r = load(port, "-m", "percreate", "-c", 16, "-n", creates, "-x", "c", "-o", rnd * 100000, "-S", SERVERS)
                add(name, "percreate", float(r["rps"]))
                add(name, "percreate_p99", float(r["lat_p99_us"]) / 1000)
                r = load(port, "-m", "sync", "-c", 8, "-x", "b", "-r", n, "-S", SERVERS, "-o", rnd * 100000)
                add(name, "sync_s", float(r["seconds"]))
                add(name, "sync_n", int(r["mailboxes"]))
                add(name, "sync_find_max", float(r.get("find_during_max_us", 0)) / 1000)
                add(name, "sync_write_max", float(r.get("write_during_max_us", 0)) / 1000)
                for c in (1, 8, 32):
                    r = load(port, "-m", "find", "-c", c, "-n", 20000, "-x", "b", "-r", n)
                    add(name, f"find{c}_p50", float(r["lat_p50_us"]) / 1000)
                    add(name, f"find{c}_p99", float(r["lat_p99_us"]) / 1000)
                    add(name, f"find{c}_rps", float(r["rps"]))
                r = load(port, "-m", "list", "-s", "srv01:2143!", "-n", 3)
                add(name, "list_ms", float(r["list_p50_us"]) / 1000)
                add(name, "list_n", int(r["mailboxes"]))
                r = load(port, "-m", "delay", "-n", 10, "-i", 50, "-x", "d", "-o", rnd * 100000)
                add(name, "delay_p50", float(r["delay_p50_us"]) / 1000)
                add(name, "delay_max", float(r["delay_max_us"]) / 1000)
        for name, port in targets:
            r = load(port, "-m", "hold", "-c", a.hold)
            add(name, "hold_banner", int(r["banners"]))
            add(name, "hold_noop", int(r["noop_answered"]))
        bridge_rss = rss_mb(bridge.pid)

        c, b = res["Cyrus mupdate -m"], res["mupdate_bridge"]
        m = {k: median(v) for k, v in c.items()}
        mb = {k: median(v) for k, v in b.items()}

        def row(what, key, unit, fmt="{:,.0f}", higher_better=True):
            cv, bv = m[key], mb[key]
            ratio = (bv / cv if higher_better else cv / bv) if cv and bv else float("nan")
            each_c = " / ".join(fmt.format(x) for x in c[key])
            each_b = " / ".join(fmt.format(x) for x in b[key])
            out.append(f"| {what} | {fmt.format(cv)} {unit} ({each_c}) | {fmt.format(bv)} {unit} ({each_b}) | "
                       f"{ratio:.1f}x |")

        out.append(f"### {n:,} mailboxes on {SERVERS} backends; median of {a.rounds} interleaved rounds "
                   "(each round's figures in parentheses)\n")
        out.append("| measure | Cyrus mupdate -m | mupdate_bridge | bridge better by |")
        out.append("|---|---:|---:|---:|")
        row("updates/s, pipelined (4 conns x 256 in flight)", "pipelined", "/s")
        row("updates/s, a connection per create (16 at once)", "percreate", "/s")
        row("  p99 of one create (connect..LOGOUT)", "percreate_p99", "ms", "{:,.1f}", False)
        row(f"new follower's full UPDATE ({mb['sync_n']:,} mailboxes)", "sync_s", "s", "{:,.2f}", False)
        row("  worst FIND during that UPDATE (8 clients)", "sync_find_max", "ms", "{:,.1f}", False)
        row("  worst write during that UPDATE", "sync_write_max", "ms", "{:,.1f}", False)
        for cc in (1, 8, 32):
            row(f"FIND p50, {cc} connection(s)", f"find{cc}_p50", "ms", "{:,.2f}", False)
            row(f"FIND p99, {cc} connection(s)", f"find{cc}_p99", "ms", "{:,.2f}", False)
            row(f"FINDs/s, {cc} connection(s)", f"find{cc}_rps", "/s")
        row(f"a backend's LIST \"srv01:2143!\" ({mb['list_n']:,} of {mb['sync_n']:,})", "list_ms", "ms", "{:,.1f}", False)
        row("change -> follower's stream, p50 (no NOOP)", "delay_p50", "ms", "{:,.1f}", False)
        row("change -> follower's stream, worst", "delay_max", "ms", "{:,.1f}", False)
        row(f"connections held of {a.hold:,} (banner)", "hold_banner", "", "{:,.0f}")
        row(f"connections held of {a.hold:,} (logged in, answered NOOP)", "hold_noop", "", "{:,.0f}")
        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        except (OSError, StopIteration):
            pass
        with open("/proc/loadavg") as f:
            loadavg = f.read().split()[:3]
        out.append(f"\nLoading: mupdate_bridge took {n:,} pipelined ACTIVATEs in {float(fill['seconds']):.1f} s "
                   f"({float(fill['rps']):,.0f}/s, file store, fsync on); Cyrus's list was written with cvt_cyrusdb "
                   f"in {cyrus_fill:.1f} s. Bridge RSS at the end: {bridge_rss:,.0f} MB.")
        out.append(f"Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
                   f"load average at the end {' '.join(loadavg)} (shared with other work: figures are noisy).")
    finally:
        lab.close()
    print("\n".join(out))


if __name__ == "__main__":
    main()
