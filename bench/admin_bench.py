#!/usr/bin/env python3
"""mailgrid (the admin command) against what a sysadmin would otherwise
use, side by side in one run.

Import: N users (CSV with a plaintext password column, 1 GB quota, one in
ten with an alias) provisioned with `mailgrid import users.csv` into a
fresh slapd, placed over 16 Maildir backends, each Maildir created; and
the same entries (the LDIF mailgrid would write: inetOrgPerson +
mailSuiteRecipient, uid, cn, sn, mail, mailacceptinggeneralid, maildrop,
mailQuotaBytes, userPassword {SSHA512} computed beforehand) loaded into a
second fresh slapd with `ldapadd -x -f` (one synchronous connection), no
Maildirs. The users go in --batches parts, the two tools interleaved
(alternating which goes first), so both see the same drift of the
machine; every batch is one `mailgrid import` run. `mailgrid import
--dry-run` of all N (read, check, place, hash) is timed too, and the
change times of the new Maildirs split each real import into its
directory and Maildir phases. Afterwards both directories are counted and
compared (every attribute but the salted userPassword), a few users'
stored hashes are checked and they bind with their passwords in both,
and the Maildirs are counted (must be N).

Move: a Maildir of about --move-mb MB (messages of 10-90 KB, random text,
in cur/, new/ and the folder .lists) for bench@example.com, moved with
`mailgrid user move` (hold list in a file, admin_hold_settle = 0,
tablemap_hold_poll = 100ms), and the same tree copied with
`cp -a SRC DST && sync`; page cache dropped before each run; rounds
alternate which goes first, and the user moves back and forth between
md01 and md02. The move's steps are timed from its log lines; `rm -rf`
of cp's copy is timed for comparison with the move's cleanup.

    python3 bench/admin_bench.py [--users 100000] [--batches 4] [--move-mb 1024] [--move-rounds 3]
    python3 bench/admin_bench.py --users 2000 --move-mb 50      # a quick check
"""

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
from harness import ADMIN_DN, ADMIN_PW, SUFFIX, Lab, Slapd, binary, need  # noqa: E402

BACKENDS = 16
PEOPLE = "ou=people," + SUFFIX
QUOTA = "1G"
QUOTA_BYTES = 1 << 30
HOLD_POLL = "100ms"
FIRST = ("ann anna ben carl clara david eva frank greta hans ida jan julia karl lena lukas maria max nina olaf "
         "paul petra rita sven tina uwe vera walter xenia yusuf zoe").split()
LAST = ("adler bauer becker braun fischer fuchs hahn hoffmann jung keller klein koch krause lange lehmann maier "
        "meyer neumann richter schmidt schneider schulz schwarz wagner weber wolf zimmermann").split()


def backend_name(i):
    return f"md{i + 1:02d}.example.com"


# ---------------------------------------------------------------- helpers


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    """(user, system) CPU seconds of the children waited for so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime, r.ru_stime


def cpu_since(before):
    now = children_cpu()
    return now[0] - before[0], now[1] - before[1]


def drop_caches():
    """Write back and forget the page cache; False if this host forbids it."""
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def ssha512(password):
    salt = os.urandom(16)
    return "{SSHA512}" + base64.b64encode(hashlib.sha512(password.encode() + salt).digest() + salt).decode()


def ldap_count(slapd, base, flt):
    r = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", slapd.uri, "-b", base, flt, "1.1"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"ldapsearch: {r.stderr}")
    return sum(1 for line in r.stdout.splitlines() if line.startswith("dn:"))


COMPARED = ("objectClass", "uid", "cn", "sn", "mail", "mailacceptinggeneralid", "maildrop", "mailQuotaBytes")


def ldap_entries(slapd):
    """{normalised dn: {attribute: sorted values}} of the users, userPassword
    reduced to its scheme."""
    r = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", slapd.uri, "-D", ADMIN_DN, "-w",
                        ADMIN_PW, "-b", PEOPLE, "-s", "one", "(objectClass=*)", *COMPARED, "userPassword"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"ldapsearch: {r.stderr}")
    out = {}
    for block in r.stdout.strip().split("\n\n"):
        attrs = {}
        dn = None
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name.endswith(":"):  # base64
                name, value = name[:-1], base64.b64decode(value.strip()).decode()
            if name == "dn":
                dn = value.lower().replace(", ", ",")
                continue
            key = name.lower()
            if key == "userpassword":
                value = value.split("}")[0] + "}"
            elif key in ("objectclass", "mail", "mailacceptinggeneralid", "maildrop"):
                value = value.lower()
            attrs.setdefault(key, []).append(value)
        if dn:
            out[dn] = {k: sorted(v) for k, v in attrs.items()}
    return out


def stored_hash_matches(slapd, dn, password):
    """The userPassword slapd holds is {SSHA512} of password."""
    r = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", slapd.uri, "-D", ADMIN_DN, "-w",
                        ADMIN_PW, "-b", dn, "-s", "base", "(objectClass=*)", "userPassword"], capture_output=True,
                       text=True, timeout=20)
    for line in r.stdout.splitlines():
        if line.startswith("userPassword:: "):
            value = base64.b64decode(line.split(" ", 1)[1]).decode()
        elif line.startswith("userPassword: "):
            value = line.split(" ", 1)[1]
        else:
            continue
        if not value.startswith("{SSHA512}"):
            return False
        raw = base64.b64decode(value[9:])
        return hashlib.sha512(password.encode() + raw[64:]).digest() == raw[:64]
    return False


def can_bind(slapd, dn, password):
    r = subprocess.run(["ldapwhoami", "-x", "-H", slapd.uri, "-D", dn, "-w", password], capture_output=True,
                       text=True, timeout=20)
    return r.returncode == 0


def count_maildirs(roots, since=None):
    """Maildirs (cur, new and tmp present) under each backend root
    (domain/hash/user), and the first and last change time among them
    (with since: only among those made since then)."""
    per = {}
    first, last = None, None
    for name, root in roots.items():
        n = 0
        for domain in os.scandir(root):
            if not domain.is_dir() or domain.name.startswith("."):
                continue
            for h in os.scandir(domain.path):
                if not h.is_dir():
                    continue
                for user in os.scandir(h.path):
                    if not user.is_dir():
                        continue
                    try:
                        st = [os.stat(os.path.join(user.path, s)) for s in ("cur", "new", "tmp")]
                    except FileNotFoundError:
                        continue
                    n += 1
                    t0 = min(s.st_ctime for s in st)
                    t1 = max(s.st_ctime for s in st)
                    if since is not None and t0 < since:
                        continue
                    first = t0 if first is None else min(first, t0)
                    last = t1 if last is None else max(last, t1)
        per[name] = n
    return per, first, last


def tree_size(path):
    files, total = 0, 0
    for d, _, names in os.walk(path):
        for n in names:
            files += 1
            total += os.lstat(os.path.join(d, n)).st_size
    return files, total


def mailgrid(cf, *args, timeout=7200, input=None):
    r = subprocess.run([binary("mailgrid"), "-c", cf, "-o", f"tablemap_hold_poll={HOLD_POLL}", *args],
                       capture_output=True, text=True, timeout=timeout, input=input)
    return r


# ---------------------------------------------------------------- import


def make_users(n, seed=11):
    rnd = random.Random(seed)
    users = []
    for i in range(n):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        local = f"{first}.{last}{i}"
        aliases = [f"{first[0]}{last}{i}@example.com"] if i % 10 == 0 else []
        password = "".join(rnd.choice("abcdefghijkmnopqrstuvwxyzACDEFGHJKLMNPQRTUVWXY34679") for _ in range(12))
        users.append({"local": local, "address": f"{local}@example.com", "password": password,
                      "name": f"{first.title()} {last.title()}", "aliases": aliases,
                      "backend": backend_name(i % BACKENDS)})
    return users


def write_csv(path, users):
    with open(path, "w") as f:
        f.write("address,password,quota,backend,name,aliases\n")
        for u in users:
            f.write(f"{u['address']},{u['password']},{QUOTA},,{u['name']},{';'.join(u['aliases'])}\n")


def write_ldif(path, users):
    """The entries mailgrid writes (admin_user_dn uid=%u,ou=people,...;
    maildrop %u@%b), placed as its fewest_users policy places them."""
    with open(path, "w") as f:
        for u in users:
            sn = u["name"].rsplit(" ", 1)[-1]
            accepts = "".join(f"mailacceptinggeneralid: {a}\n" for a in [u["address"], *u["aliases"]])
            f.write(f"dn: uid={u['local']},{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: mailSuiteRecipient\n"
                    f"uid: {u['local']}\ncn: {u['name']}\nsn: {sn}\nmail: {u['address']}\n{accepts}"
                    f"maildrop: {u['local']}@{u['backend']}\nmailQuotaBytes: {QUOTA_BYTES}\n"
                    f"userPassword: {ssha512(u['password'])}\n\n")


def run_import(lab, a, out, results):
    users = make_users(a.users)
    base = lab.write("base.ldif", f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\n"
                                  f"o: Example\n\ndn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n")
    s_mg = Slapd(lab, [base], name="slapd-mailgrid")
    s_la = Slapd(lab, [base], name="slapd-ldapadd")
    roots = {backend_name(i): lab.path("store", f"md{i + 1:02d}") for i in range(BACKENDS)}
    for r in roots.values():
        os.makedirs(r)
    cf = lab.write("mailgrid.cf", "".join(f"{k} = {v}\n" for k, v in {
        "admin_server_host": s_mg.uri,
        "admin_search_base": SUFFIX,
        "admin_bind_dn": ADMIN_DN,
        "admin_bind_pw": ADMIN_PW,
        "admin_backends": ", ".join(f"{n}=maildir:{r}" for n, r in roots.items()),
        "admin_state_dir": lab.path("state"),
        "hold_file": lab.path("hold"),
        "admin_hold_settle": "0",
    }.items()), mode=0o600)
    csv_all = lab.path("users.csv")
    write_csv(csv_all, users)
    batches = max(1, min(a.batches, a.users))
    bounds = [a.users * b // batches for b in range(batches + 1)]
    parts = []
    for b in range(batches):
        chunk = users[bounds[b]:bounds[b + 1]]
        csv_path, ldif_path = lab.path(f"users-{b + 1}.csv"), lab.path(f"users-{b + 1}.ldif")
        write_csv(csv_path, chunk)
        write_ldif(ldif_path, chunk)
        parts.append((len(chunk), csv_path, ldif_path))
    print(f"import: {a.users} users generated, {batches} batch(es)", flush=True)

    # Dry run of the whole file into the empty directory: read, check,
    # place and hash; nothing written.
    t0 = time.monotonic()
    r = mailgrid(cf, "--json", "import", csv_all, "--dry-run")
    dry_wall = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError(f"mailgrid import --dry-run exited {r.returncode}: {r.stdout[-2000:]}{r.stderr[-2000:]}")
    dry = json.loads(r.stdout)
    print(f"import: dry run {dry_wall:.1f} s", flush=True)

    tot = {k: 0.0 for k in ("mg", "la", "mg_user", "mg_sys", "la_user", "la_sys", "mg_slapd", "la_slapd",
                           "mg_own", "dir_phase", "md_phase")}
    rates = {"mg": [], "la": []}
    reports = []
    for b, (n, csv_path, ldif_path) in enumerate(parts):
        order = ["mg", "la"] if b % 2 == 0 else ["la", "mg"]
        for who in order:
            subprocess.run(["sync"], check=True)
            slapd = s_mg if who == "mg" else s_la
            slapd_cpu0, cpu0 = cpu_seconds(slapd.proc.pid), children_cpu()
            start_epoch = time.time()
            t0 = time.monotonic()
            if who == "mg":
                r = mailgrid(cf, "--json", "import", csv_path)
            else:
                r = subprocess.run(["ldapadd", "-x", "-H", s_la.uri, "-D", ADMIN_DN, "-w", ADMIN_PW, "-f", ldif_path],
                                   capture_output=True, text=True, timeout=7200)
            wall = time.monotonic() - t0
            cpu = cpu_since(cpu0)
            tot[who] += wall
            tot[who + "_user"] += cpu[0]
            tot[who + "_sys"] += cpu[1]
            tot[who + "_slapd"] += cpu_seconds(slapd.proc.pid) - slapd_cpu0
            rates[who].append(n / wall)
            if r.returncode != 0:
                what = "mailgrid import" if who == "mg" else "ldapadd"
                raise RuntimeError(f"{what} exited {r.returncode}: {r.stdout[-2000:]}{r.stderr[-2000:]}")
            if who == "mg":
                rep = json.loads(r.stdout)
                reports.append(rep)
                tot["mg_own"] += rep["seconds"]
                # Every entry is added before the first Maildir is made
                # (import.cpp): the new Maildirs' change times split the run.
                _, first_md, last_md = count_maildirs(roots, since=start_epoch)
                if first_md:
                    tot["dir_phase"] += first_md - start_epoch
                    tot["md_phase"] += last_md - first_md
            print(f"import batch {b + 1}/{batches}: {'mailgrid' if who == 'mg' else 'ldapadd'} {n} users "
                  f"{wall:.1f} s ({n / wall:,.0f}/s)", flush=True)

    # What a sysadmin would check.
    n_mg = ldap_count(s_mg, PEOPLE, "(mail=*)")
    n_la = ldap_count(s_la, PEOPLE, "(mail=*)")
    per, _, _ = count_maildirs(roots)
    n_md = sum(per.values())
    e_mg, e_la = ldap_entries(s_mg), ldap_entries(s_la)
    differ = sum(1 for dn in set(e_mg) | set(e_la) if e_mg.get(dn) != e_la.get(dn))
    example = next((dn for dn in sorted(set(e_mg) | set(e_la)) if e_mg.get(dn) != e_la.get(dn)), None)
    rnd = random.Random(5)
    sample = rnd.sample(users, min(5, len(users)))
    hashes_mg = sum(stored_hash_matches(s_mg, f"uid={u['local']},{PEOPLE}", u["password"]) for u in sample)
    binds_mg = sum(can_bind(s_mg, f"uid={u['local']},{PEOPLE}", u["password"]) for u in sample)
    binds_la = sum(can_bind(s_la, f"uid={u['local']},{PEOPLE}", u["password"]) for u in sample)
    added = sum(r["added"] for r in reports)
    failed = sum(r["failed"] for r in reports)
    ok = (n_mg == n_la == n_md == a.users and added == a.users and failed == 0 and differ == 0
          and hashes_mg == len(sample) and binds_mg == binds_la)

    mg, la = tot["mg"], tot["la"]
    med_mg, med_la = statistics.median(rates["mg"]), statistics.median(rates["la"])
    results["import"] = dict(mg=mg, la=la, med_mg=med_mg, med_la=med_la, ok=ok)
    fmt = lambda xs: " / ".join(f"{x:,.0f}" for x in xs)
    out.append(f"#### Import of {a.users:,} users (16 Maildir backends, fewest_users placement, {{SSHA512}}), in "
               f"{batches} batch(es) of {a.users // batches:,}, the two tools interleaved\n")
    out.append("| tool | seconds (sum) | users/s (all) | users/s per batch | median of batches | own CPU s (user / sys) "
               "| slapd CPU s | entries in slapd | Maildirs | vs ldapadd (all / median) |")
    out.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    out.append(f"| ldapadd -x -f users.ldif (hashes precomputed, no Maildirs) | {la:.1f} | {a.users / la:,.0f} | "
               f"{fmt(rates['la'])} | {med_la:,.0f} | {tot['la_user']:.1f} / {tot['la_sys']:.1f} | "
               f"{tot['la_slapd']:.1f} | {n_la:,} | - | 1.00x / 1.00x |")
    out.append(f"| mailgrid import users.csv (hash, place, add, make Maildirs) | {mg:.1f} | {a.users / mg:,.0f} | "
               f"{fmt(rates['mg'])} | {med_mg:,.0f} | {tot['mg_user']:.1f} / {tot['mg_sys']:.1f} | "
               f"{tot['mg_slapd']:.1f} | {n_mg:,} | {n_md:,} | {la / mg:.2f}x / {med_mg / med_la:.2f}x |")
    out.append(f"| mailgrid import --dry-run, all {a.users:,} at once (read, check, place, hash) | {dry_wall:.1f} | "
               f"{a.users / dry_wall:,.0f} | - | - | - | - | - | - | - |")
    out.append("")
    dp, mp = tot["dir_phase"], tot["md_phase"]
    out.append(f"- mailgrid's own report: {added:,} added, {failed} failed, {tot['mg_own']:.1f} s; dry run "
               f"{dry['seconds']:.1f} s.")
    out.append(f"- Phases of the real import (from the Maildirs' change times, summed over the batches): reading, "
               f"placing, hashing and the directory adds {dp:.1f} s ({a.users / max(dp, 1e-9):,.0f} entries/s), "
               f"Maildir creation {mp:.1f} s ({a.users / max(mp, 1e-9):,.0f}/s).")
    out.append(f"- Maildirs per backend: {min(per.values()):,} to {max(per.values()):,}. Entries that differ between "
               f"the two directories (all attributes but the salt): {differ}"
               + (f" (first: {example}: {e_mg.get(example)} vs {e_la.get(example)})" if example else "") +
               f"; of {len(sample)} sampled users, {hashes_mg} stored hashes match the CSV's password, and "
               f"{binds_mg} (mailgrid) and {binds_la} (ldapadd) bind with it.")
    out.append(f"- Checks: {'passed' if ok else 'FAILED'}.\n")
    print("\n".join(out[1:]), flush=True)
    return s_mg, cf, roots


# ---------------------------------------------------------------- move

WORDS = ("the mail system delivers every message into a maildir with quota and fsync before it reports success to "
         "postfix so that nothing is lost when power fails during a busy afternoon meeting agenda invoice report "
         "attached please find below regards thanks").split()


def build_maildir(path, megabytes, seed=3):
    """Messages of 10-90 KB (random text) until megabytes: 60% in cur/
    (seen), 25% in new/, 15% in the folder .lists (cur/)."""
    rnd = random.Random(seed)
    pool_lines = []
    size = 0
    while size < 4 << 20:
        line = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(6, 14))) + "\n"
        pool_lines.append(line)
        size += len(line)
    pool = "".join(pool_lines).encode()
    for sub in ("cur", "new", "tmp", ".lists/cur", ".lists/new", ".lists/tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    open(os.path.join(path, ".lists", "maildirfolder"), "w").close()
    with open(os.path.join(path, "subscriptions"), "w") as f:
        f.write("lists\n")
    target = megabytes << 20
    total, i, t = 0, 0, 1796000000
    while total < target:
        body_len = rnd.randint(10_000, 90_000)
        head = (f"Return-Path: <list-{i % 17}@lists.example.org>\nReceived: from mx{i % 5}.example.org\n"
                f"\tby mx.example.com (Postfix) with ESMTPS id {i:010X}\n\tfor <bench@example.com>\n"
                f"From: Sender {i % 31} <sender{i % 31}@example.org>\nTo: bench@example.com\n"
                f"Subject: message {i}\nMessage-Id: <{i}.{rnd.getrandbits(32):x}@example.org>\n"
                "Content-Type: text/plain; charset=utf-8\n\n").encode()
        off = rnd.randrange(0, len(pool) - body_len)
        data = head + pool[off:off + body_len]
        x = rnd.random()
        folder, flags = ("cur", ":2,S") if x < 0.60 else ("new", "") if x < 0.85 else (".lists/cur", ":2,S")
        name = f"{t + i}.M{rnd.randrange(1000000)}P{1000 + i % 30000}Q{i}.mx.example.com,S={len(data)}{flags}"
        with open(os.path.join(path, folder, name), "wb") as f:
            f.write(data)
        total += len(data)
        i += 1
    return i, total


def timed_move(cf, address, to, data_bytes):
    """mailgrid user move: the time at which each step's log line came, and
    the copy step split by the process's I/O counters (/proc/PID/io,
    sampled every 10 ms): the copy loop (until it has written the data),
    syncfs with the pass that drops the copies from the page cache, and
    the read-back that checks every copy against its checksum."""
    import threading
    args = [binary("mailgrid"), "-c", cf, "-o", f"tablemap_hold_poll={HOLD_POLL}", "-v", "--json", "user", "move",
            address, to]
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []  # (time, rchar, wchar)

    def sample():
        while p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/io") as f:
                    io = dict(line.split(": ") for line in f.read().splitlines())
                samples.append((time.monotonic(), int(io["rchar"]), int(io["wchar"])))
            except (OSError, KeyError, ValueError):
                pass
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    steps, at, errs, prev = {}, {}, [], t0
    for line in p.stderr:
        now = time.monotonic()
        errs.append(line)
        if ": move " in line and line.rstrip().endswith(" done"):
            step = line.rstrip()[:-5].rsplit(": ", 1)[-1]
            steps[step] = now - prev
            at[step] = now
            prev = now
    stdout = p.stdout.read()
    rc = p.wait()
    wall = time.monotonic() - t0
    sampler.join()
    if rc != 0:
        raise RuntimeError(f"mailgrid user move exited {rc}: {stdout}{''.join(errs)[-3000:]}")
    split = {}
    if "hold" in at and "copy" in at:
        during = [s for s in samples if at["hold"] <= s[0] <= at["copy"]]
        if during:
            # The copies are all written when wchar stops growing; the
            # read-back begins when rchar grows again and ends when it stops.
            w_max, r_max = max(s[2] for s in during), max(s[1] for s in during)
            written = next(s for s in during if s[2] >= w_max - (64 << 10))
            if w_max - during[0][2] >= 0.99 * data_bytes:
                rb = [s for s in during if s[0] > written[0] and s[1] - written[1] > (256 << 10)]
                rb_end = next((s for s in during if s[1] >= r_max - (64 << 10)), None)
                if rb and rb_end and rb_end[1] - written[1] >= 0.99 * data_bytes:
                    split = {"copy loop": written[0] - at["hold"], "syncfs + drop cache": rb[0][0] - written[0],
                             "read-back": rb_end[0] - rb[0][0], "rest": at["copy"] - rb_end[0]}
    return wall, json.loads(stdout.strip().splitlines()[-1]), steps, split


def run_move(lab, a, out, results, slapd=None, cf=None, roots=None):
    if slapd is None:
        base = lab.write("base.ldif", f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
                                      f"dc: example\no: Example\n\ndn: {PEOPLE}\nobjectClass: organizationalUnit\n"
                                      "ou: people\n\n")
        slapd = Slapd(lab, [base], name="slapd-mailgrid")
        roots = {backend_name(i): lab.path("store", f"md{i + 1:02d}") for i in range(2)}
        for r in roots.values():
            os.makedirs(r)
        cf = lab.write("mailgrid.cf", "".join(f"{k} = {v}\n" for k, v in {
            "admin_server_host": slapd.uri, "admin_search_base": SUFFIX, "admin_bind_dn": ADMIN_DN,
            "admin_bind_pw": ADMIN_PW,
            "admin_backends": ", ".join(f"{n}=maildir:{r}" for n, r in roots.items()),
            "admin_state_dir": lab.path("state"), "hold_file": lab.path("hold"), "admin_hold_settle": "0",
        }.items()), mode=0o600)
    address = "bench@example.com"
    r = mailgrid(cf, "user", "add", address, "--backend", "md01", "--no-password")
    if r.returncode != 0:
        raise RuntimeError(f"mailgrid user add exited {r.returncode}: {r.stdout}{r.stderr}")
    r = mailgrid(cf, "--json", "user", "show", address)
    path = json.loads(r.stdout)["maildir"]
    messages, msg_bytes = build_maildir(path, a.move_mb)
    files, total = tree_size(path)
    print(f"move: {messages:,} messages, {msg_bytes / 1e6:.0f} MB in {path}", flush=True)
    names = list(roots)
    where = 0  # md01
    runs = {"cp": [], "mailgrid": [], "rm": []}
    step_runs, split_runs = [], []
    dropped = True
    for rnd in range(a.move_rounds):
        order = ["cp", "mailgrid"] if rnd % 2 == 0 else ["mailgrid", "cp"]
        for what in order:
            src = json.loads(mailgrid(cf, "--json", "user", "show", address).stdout)["maildir"]
            dropped &= drop_caches()
            if what == "cp":
                dst = lab.path("cp-target", "bench")
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                t0 = time.monotonic()
                subprocess.run(["sh", "-c", 'cp -a "$1" "$2" && sync', "sh", src, dst], check=True)
                wall = time.monotonic() - t0
                got = tree_size(dst)
                assert got == (files, total), (got, files, total)
                t1 = time.monotonic()
                subprocess.run(["rm", "-rf", dst], check=True)
                runs["rm"].append(time.monotonic() - t1)
                shutil.rmtree(lab.path("cp-target"))
                runs["cp"].append(wall)
            else:
                to = names[1 - where]
                wall, rep, steps, split = timed_move(cf, address, to.split(".")[0], total)
                where = 1 - where
                now = json.loads(mailgrid(cf, "--json", "user", "show", address).stdout)
                got = tree_size(now["maildir"])
                # maildirsize and other non-message files are counted too
                assert now["backend"] == to and got[1] == total and not os.path.exists(src), (now, got, total)
                assert rep["messages"] == messages, rep
                runs["mailgrid"].append(wall)
                step_runs.append(steps)
                if split:
                    split_runs.append(split)
            print(f"move round {rnd + 1}: {what} {wall:.1f} s", flush=True)
    mb = total / 1e6
    med_cp, med_mg = statistics.median(runs["cp"]), statistics.median(runs["mailgrid"])
    results["move"] = dict(cp=med_cp, mg=med_mg)
    fmt = lambda xs: " / ".join(f"{x:.1f}" for x in xs)
    out.append(f"#### Moving a Maildir of {mb:,.0f} MB ({messages:,} messages, {files:,} files) between two "
               f"backends on the same file system; median of {a.move_rounds} rounds, "
               f"page cache {'dropped' if dropped else 'NOT dropped (not permitted)'} before each run\n")
    out.append("| tool | seconds (each round) | seconds (median) | MB/s | vs cp -a |")
    out.append("|---|---|---:|---:|---:|")
    out.append(f"| cp -a SRC DST && sync | {fmt(runs['cp'])} | {med_cp:.1f} | {mb / med_cp:.0f} | 1.00x |")
    out.append(f"| mailgrid user move (hold, copy + verify, flip, sync, release, verify, cleanup) | "
               f"{fmt(runs['mailgrid'])} | {med_mg:.1f} | {mb / med_mg:.0f} | {med_cp / med_mg:.2f}x |")
    out.append("")
    keys = ["hold", "copy", "flip", "sync", "release", "verify", "cleanup"]
    med_steps = {k: statistics.median(s.get(k, 0.0) for s in step_runs) for k in keys}
    out.append("Steps of the move (medians, seconds, from its log lines; hold includes the start, the user's "
               "lookup and the plan): " + ", ".join(f"{k} {med_steps[k]:.2f}" for k in keys) + ". "
               f"For comparison, `rm -rf` of cp's copy right after it was made: {statistics.median(runs['rm']):.2f} s "
               f"(each round: {' / '.join(f'{x:.2f}' for x in runs['rm'])}).")
    if split_runs:
        out.append("The copy step, split by the process's I/O counters (medians, seconds): " + ", ".join(
            f"{k} {statistics.median(s[k] for s in split_runs):.2f}" for k in split_runs[0]) + ".")
    fixed = 3 * (2 * 0.1 + 0.1)
    out.append(f"Of these, the hold list waits are fixed: hold, flip and release each wait 2 x tablemap_hold_poll "
               f"+ 100 ms = 0.3 s for a file hold list ({fixed:.1f} s in all; admin_hold_settle = 0).\n")
    print("\n".join(out[-9:]), flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--batches", type=int, default=4, help="import in this many interleaved batches")
    ap.add_argument("--move-mb", type=int, default=1024)
    ap.add_argument("--move-rounds", type=int, default=3)
    ap.add_argument("--skip-import", action="store_true")
    ap.add_argument("--skip-move", action="store_true")
    a = ap.parse_args()
    need("ldapadd", "ldapsearch", "ldapwhoami", "cp", "sync")
    binary("mailgrid")
    lab = Lab("bench-admin")
    out = []
    results = {}
    try:
        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        except (OSError, StopIteration):
            pass
        out.append(f"# mailgrid (admin) benchmark\n\n{time.strftime('%Y-%m-%d %H:%M')}; {os.cpu_count()} cores "
                   f"({cpu}), {platform.system()} {platform.release()}; lab in {lab.dir}.\n")
        print(out[-1], flush=True)
        slapd = cf = roots = None
        if not a.skip_import:
            load0 = loadavg()
            slapd, cf, roots = run_import(lab, a, out, results)
            out.append(f"Load average before the import {load0}, after it {loadavg()}.\n")
        if not a.skip_move:
            load0 = loadavg()
            run_move(lab, a, out, results, slapd, cf, roots)
            out.append(f"Load average before the moves {load0}, after them {loadavg()}.\n")
        parts = []
        if "import" in results:
            i = results["import"]
            parts.append(f"import {i['la'] / i['mg']:.2f}x ldapadd over the whole run ({a.users / i['mg']:,.0f} vs "
                         f"{a.users / i['la']:,.0f} users/s), {i['med_mg'] / i['med_la']:.2f}x by the median batch"
                         f"{'' if i['ok'] else ', CHECKS FAILED'}")
        if "move" in results:
            m = results["move"]
            parts.append(f"move {m['cp'] / m['mg']:.2f}x cp -a && sync ({m['mg']:.1f} s vs {m['cp']:.1f} s)")
        print("\n".join(l for l in out if l.startswith("Load average")))
        print("\nRatios: " + "; ".join(parts) + ".")
    finally:
        lab.close()


if __name__ == "__main__":
    main()
