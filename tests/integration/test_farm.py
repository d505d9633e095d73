#!/usr/bin/env python3
"""The whole system as a farm on one machine: hosts are network namespaces
with addresses and names of their own, configured as a real farm would be.

  ldap   slapd (the directory)            redis  Redis (shared caches, counts)
  fe1    Postfix MX + ldap_tablemap + nginx + webmail_locator
  fe2    the same
  mup    mupdate_bridge (the Murder's MUPDATE master, list in Redis)
  cy01   Cyrus IMAP/POP3/LMTP + sasl_ldap_auth, a Murder backend of mup
  cy02   the same
  md01   maildir_deliver's LMTP server: Maildir++ with quotas
  md02   the same

Mail to every user, sent at either frontend, must arrive once, in that
user's mailbox, on the backend the directory names; +extensions land in the
folder; aliases and forwards follow the directory; every user reads their
mail over IMAP and POP3 through either frontend's nginx (the Cyrus users:
the Maildir backends have no IMAP server here; dovecot-imapd would conflict
with cyrus-imapd)."""

import base64
import contextlib
import hashlib
import imaplib
import json
import os
import poplib
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from farm import Farm  # noqa: E402
from harness import (ADMIN_DN, ADMIN_PW, BUILD, SUFFIX, Cyrus, LabTestCase, NginxMail, Postfix, Redis,  # noqa: E402
                     Roundcube, Slapd, SmtpSink, WebDriver, binary, need, start_tablemap, wait_for, wait_port)

USERS = int(os.environ.get("MAILGRID_FARM_USERS", "1000"))
CYRUS = ["cy01", "cy02"]
MAILDIR = ["md01", "md02"]
CACHE_TTL = 3  # the frontends' lookup cache: how long a moved user's old route may last
BACKENDS = CYRUS + MAILDIR


def ssha(pw):
    salt = hashlib.sha1(pw.encode()).digest()[:8]
    return "{SSHA}" + base64.b64encode(hashlib.sha1(pw.encode() + salt).digest() + salt).decode()


def backend_of(i):
    return BACKENDS[i % len(BACKENDS)]


def directory(sink_host):
    out = [f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
           f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n",
           f"dn: uid=cyrus,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: cyrus\ncn: admin\nsn: admin\n"
           f"userPassword: {ssha('cyrusadminpw')}\n",
           f"dn: uid=mupdate,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: mupdate\ncn: mupdate\nsn: mupdate\n"
           f"userPassword: {ssha('mupdatepw')}\n",
           # Cyrus backends log in to each other as "proxy" to XFER mailboxes.
           f"dn: uid=proxy,ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: proxy\ncn: proxy\nsn: proxy\n"
           f"userPassword: {ssha('proxypw')}\n"]
    for i in range(USERS):
        u = f"user{i:04d}"
        out.append(f"dn: uid={u},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: mailSuiteRecipient\n"
                   f"uid: {u}\ncn: {u}\nsn: {u}\nmail: {u}@example.com\nmailacceptinggeneralid: {u}@example.com\n"
                   f"maildrop: {u}@{backend_of(i)}.example.com\nuserPassword: {ssha('pw-' + u)}\n")
    out.append(f"dn: cn=team,ou=people,{SUFFIX}\nobjectClass: organizationalRole\nobjectClass: mailSuiteRecipient\n"
               "cn: team\nmailacceptinggeneralid: team@example.com\n"
               "maildrop: user0000@cy01.example.com\nmaildrop: user0001@cy02.example.com\n")
    out.append(f"dn: cn=away,ou=people,{SUFFIX}\nobjectClass: organizationalRole\nobjectClass: mailSuiteRecipient\n"
               f"cn: away\nmailacceptinggeneralid: away@example.com\nmaildrop: someone@{sink_host}\n")
    return "\n".join(out)


class WholeFarm(LabTestCase):
    @classmethod
    def setUpLab(cls):
        lab = cls.lab
        farm = Farm(lab)
        cls.farm = farm
        ldap, redis, mup = farm.add("ldap", 10), farm.add("redis", 11), farm.add("mup", 12)
        cls.mup = mup
        cls.fronts = [farm.add("fe1", 21), farm.add("fe2", 22)]
        cls.backs = {name: farm.add(name, 41 + k) for k, name in enumerate(BACKENDS)}
        farm.write_hosts()
        # Mail for the outside world leaves through a sink on the bridge.
        cls.outside = SmtpSink(lab, address=farm.subnet + ".1")

        users = lab.write("users.ldif", directory("outside.example.net"))
        cls.slapd = Slapd(lab, [users], host=ldap, port=389)
        cls.redis = Redis(lab, host=redis, port=6379)
        sasl_conf = lab.write("saslauthd.conf", f"ldap_servers: ldap://ldap.example.com/\nldap_search_base: {SUFFIX}\n"
                                                "ldap_filter: (|(uid=%u)(mail=%u))\nldap_timeout: 5\n")

        # The Murder's master: backends log in as "mupdate" (checked against
        # the directory by sasl_ldap_auth); the list lives in Redis, where
        # the frontends' webmail_locator reads it.
        run = lab.path("mup-run")
        os.makedirs(run)
        cls.sasl, cls.sasl_args, cls.sasl_hosts = {}, {}, {"mup": mup}
        cls.sasl_args["mup"] = [binary("sasl_ldap_auth"), "-a", "ldap", "-O", sasl_conf, "-m", run, "-d"]
        cls.sasl["mup"] = cls.start_sasl("mup")
        cls.murder_store = "redis://redis.example.com:6379/1"
        bridge_cf = lab.write("mupdate.cf", f"mupdate_listen = 0.0.0.0:3905\nmupdate_servername = {mup.fqdn}\n"
                                            f"mupdate_store = {cls.murder_store}\n"
                                            f"mupdate_sasl_saslauthd_path = {run}/mux\nmupdate_auth_fail_delay = 0\n")
        cls.bridge_cf = bridge_cf
        cls.bridge = cls.start_bridge()

        # Backends: Cyrus checking passwords through sasl_ldap_auth.
        cls.cyrus = {}
        for name in CYRUS:
            host = cls.backs[name]
            run = lab.path(f"{name}-run")
            os.makedirs(run)
            cls.sasl_args[name] = [binary("sasl_ldap_auth"), "-a", "ldap", "-O", sasl_conf, "-m", run, "-d",
                                   "-c", "-t", "600"]
            cls.sasl_hosts[name] = host
            cls.sasl[name] = cls.start_sasl(name)
            cls.cyrus[name] = Cyrus(lab, name, saslauthd_path=run + "/mux", servername=f"{name}.example.com",
                                    host=host, ports=(143, 110, 24), prefork=2,
                                    extra={"lmtp_fuzzy_mailbox_match": "yes", "mupdate_server": f"{mup.fqdn}:3905",
                                           "mupdate_authname": "mupdate",
                                           "mupdate_password": "mupdatepw", "mupdate_config": "standard",
                                           "force_sasl_client_mech": "PLAIN",
                                           # XFER: the old backend logs in to the new one as
                                           # "proxy", which must be an admin there.
                                           "proxy_authname": "proxy", "proxy_password": "proxypw",
                                           "admins": "cyrus proxy",
                                           # Without proxyservers, Cyrus takes itself for a frontend.
                                           "proxyservers": "proxy"})
        # Maildir backends: maildir_deliver's LMTP server, finding each
        # recipient (user@mdNN.example.com, the maildrop) in the directory;
        # the Maildir is made on first mail, under the user's own address.
        cls.stores, cls.lmtp, cls.lmtp_cf = {}, {}, {}
        for name in MAILDIR:
            host = cls.backs[name]
            store = lab.path(f"{name}-mail")
            os.makedirs(store)
            cls.stores[name] = store
            cf = lab.write(f"{name}.cf", f"deliver_root = {store}\n"
                                         "deliver_server_host = ldap://ldap.example.com/\n"
                                         f"deliver_search_base = {SUFFIX}\ndeliver_bind = no\n"
                                         # A user moved here keeps the old maildrop as an
                                         # accepted address: mail queued under it arrives.
                                         "deliver_query_filter = (|(maildrop=%s)(mailacceptinggeneralid=%s))\n"
                                         "deliver_address_attribute = mail\n"
                                         "deliver_extension_folders = create\nrecipient_delimiter = +\n"
                                         "deliver_lmtp_listen = inet:0.0.0.0:24\n")
            cls.lmtp_cf[name] = cf
            cls.lmtp[name] = cls.start_lmtp(name)
        # Each user's mailbox on their backend, and a folder for +lists.
        for name, cy in cls.cyrus.items():
            m = imaplib.IMAP4(cy.host.address, 143)
            m.login("cyrus", "cyrusadminpw")
            # The admin may read them too, so the test can count messages.
            for i in range(USERS):
                if backend_of(i) == name:
                    m.create(f"user.user{i:04d}")
                    m.setacl(f"user.user{i:04d}", "cyrus", "lrs")
            if name == backend_of(5):
                m.create("user.user0005.lists")
                m.setacl("user.user0005.lists", "anyone", "p")
                m.setacl("user.user0005.lists", "cyrus", "lrs")
            m.logout()

        # Frontends: Postfix asks ldap_tablemap; nginx asks webmail_locator.
        virtual = lab.write("virtual.cf", f"server_host = ldap://ldap.example.com/\nversion = 3\nbind = no\n"
                                          f"search_base = {SUFFIX}\nquery_filter = (mailacceptinggeneralid=%s)\n"
                                          "result_attribute = maildrop\n")
        # Mail for a backend goes over LMTP to that backend; everything
        # else (forwards to the outside) takes the default route.
        transport = lab.write("transport.cf", f"server_host = ldap://ldap.example.com/\nversion = 3\nbind = no\n"
                                              f"search_base = {SUFFIX}\n"
                                              "query_filter = (&(mail=*)(|(maildrop=%s)(mailacceptinggeneralid=%s)))\n"
                                              f"domain = {', '.join(b + '.example.com' for b in BACKENDS)}\n"
                                              "result_attribute = maildrop\nresult_format = lmtp:[%d]:24\n")
        locate = lab.write("locate.cf", f"server_host = ldap://ldap.example.com/\nversion = 3\nbind = no\n"
                                        f"search_base = {SUFFIX}\nquery_filter = (|(uid=%s)(mail=%s))\n"
                                        "result_attribute = maildrop\n")
        cls.postfix, cls.nginx = [], []
        cls.tablemap_args = ["--table", f"virtual={virtual}", "--table", f"transport={transport}",
                             "--socketmap", "127.0.0.1:10027", "-o", "redis_server=redis://redis.example.com:6379/0",
                             "-o", f"cache_ttl={CACHE_TTL}s"]
        cls.tablemaps, cls.locators = {}, {}
        for k, fe in enumerate(cls.fronts):
            cls.tablemaps[fe.name] = cls.start_tablemap(fe)
            cls.postfix.append(Postfix(lab, name=f"{fe.name}-postfix", host=fe, smtpd_port=25, main_cf={
                "myhostname": fe.fqdn,
                "virtual_alias_domains": "example.com",
                "virtual_alias_maps": "socketmap:inet:127.0.0.1:10027:virtual",
                "transport_maps": "socketmap:inet:127.0.0.1:10027:transport",
                "relayhost": f"[{cls.outside.address}]:{cls.outside.port}",
                "recipient_delimiter": "+",
                "lmtp_destination_recipient_limit": "50",
                "mynetworks": f"127.0.0.0/8, {farm.subnet}.0/24",
            }))
            cls.locator_args = [
                binary("webmail_locator"), "-f", "-c", "/dev/null", "--listen", "127.0.0.1:10080",
                "-o", "locator_mech=ldap", "-o", f"locator_saslauthd_conf={sasl_conf}",
                "-o", f"locator_sources=murder=mupdate:{cls.murder_store}, maildrop={locate}",
                "-o", "redis_server=redis://redis.example.com:6379/0"]
            cls.locators[fe.name] = cls.start_locator(fe)
            cls.nginx.append(NginxMail(lab, "127.0.0.1:10080/auth", name=f"{fe.name}-nginx", host=fe,
                                       ports=(143, 110)))

        # The admin command, run from outside the farm: it reaches the
        # directory, Redis (the hold list) and the Cyrus backends over the
        # network and the Maildir stores as file systems.
        backends = [f"{n}.example.com=cyrus:{cls.backs[n].address}:143" for n in CYRUS]
        backends += [f"{n}.example.com=maildir:{cls.stores[n]}" for n in MAILDIR]
        cls.admin_cf = lab.write("admin.cf", f"admin_server_host = ldap://{ldap.address}/\nadmin_search_base = {SUFFIX}\n"
                                             f"admin_bind_dn = {ADMIN_DN}\nadmin_bind_pw = {ADMIN_PW}\n"
                                             f"admin_backends = {', '.join(backends)}\n"
                                             "admin_cyrus_password = cyrusadminpw\n"
                                             f"admin_state_dir = {lab.path('moves')}\n"
                                             f"redis_server = redis://{redis.address}:6379/0\n"
                                             "admin_hold_settle = 1s\n")

    @classmethod
    def start_lmtp(cls, name):
        host = cls.backs[name]
        p = cls.lab.spawn(f"{name}-lmtp", [binary("maildir_deliver"), "-c", cls.lmtp_cf[name], "--lmtp", "--foreground"],
                          host=host)
        try:
            wait_port(24, 15, host=host.address)
        except AssertionError:
            raise AssertionError(f"maildir_deliver on {name} did not start: {p.stderr()}")
        return p

    @staticmethod
    def listening_inside(host, port):
        """Whether something accepts on 127.0.0.1:port inside host's namespace."""
        return host.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"], capture_output=True).returncode == 0

    @classmethod
    def start_sasl(cls, name):
        mux = cls.sasl_args[name][cls.sasl_args[name].index("-m") + 1] + "/mux"
        p = cls.lab.spawn(f"{name}-sasl", cls.sasl_args[name], host=cls.sasl_hosts[name])

        def listening():  # a socket left by a killed daemon is there but refuses
            with socket.socket(socket.AF_UNIX) as s:
                return s.connect_ex(mux) == 0
        wait_for(listening, 10, what=f"sasl_ldap_auth's socket on {name}")
        return p

    @classmethod
    def start_locator(cls, fe):
        p = cls.lab.spawn(f"{fe.name}-locator", cls.locator_args, host=fe)
        wait_for(lambda: cls.listening_inside(fe, 10080), 10, what=f"webmail_locator on {fe.name}")
        return p

    @classmethod
    def start_bridge(cls):
        p = cls.lab.spawn("mup-bridge", [binary("mupdate_bridge"), "-f", "-c", cls.bridge_cf], host=cls.mup)
        try:
            wait_port(3905, 15, host=cls.mup.address)
        except AssertionError:
            raise AssertionError(f"mupdate_bridge did not start: {p.stderr()}")
        return p

    @classmethod
    def start_tablemap(cls, fe):
        p = start_tablemap(cls.lab, cls.tablemap_args, name=f"{fe.name}-tablemap", host=fe)
        wait_for(lambda: cls.listening_inside(fe, 10027), 10, what=f"ldap_tablemap on {fe.name}")
        return p

    def send(self, k, rcpt, subject):
        fe = self.fronts[k % 2]
        with smtplib.SMTP(fe.address, 25, timeout=60) as s:
            s.sendmail("sender@test.example", [rcpt],
                       f"From: sender@test.example\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nbody {subject}\r\n")

    def mailbox_counts(self, token):
        """{(backend, mailbox): number of messages whose subject has token}."""
        counts = {}
        for name, cy in self.cyrus.items():
            m = imaplib.IMAP4(cy.host.address, 143)
            m.login("cyrus", "cyrusadminpw")
            _, boxes = m.list('""', '"user.*"')
            for line in boxes:
                box = re.search(r'(?:"([^"]*)"|(\S+))$', line.decode())
                box = box.group(1) or box.group(2)
                typ, _ = m.select(f'"{box}"', readonly=True)
                if typ != "OK":
                    continue
                _, hits = m.search(None, "SUBJECT", token)
                n = len(hits[0].split())
                if n:
                    counts[(name, box)] = n
            m.logout()
        # Maildirs: <root>/example.com/<hash>/<user>/{new,cur} and .folder/.
        for name, store in self.stores.items():
            for dirpath, _, files in os.walk(store):
                leaf = os.path.basename(dirpath)
                if leaf not in ("new", "cur"):
                    continue
                parts = os.path.relpath(os.path.dirname(dirpath), store).split(os.sep)
                # example.com/us/user0002 or example.com/us/user0002/.lists
                box = "user." + parts[2] + ("." + parts[3][1:] if len(parts) > 3 else "")
                for f in files:
                    with open(os.path.join(dirpath, f), "rb") as fh:
                        if token.encode() in fh.read():
                            counts[(name, box)] = counts.get((name, box), 0) + 1
        return counts

    def wait_delivered(self, expected_total, token, timeout=180):
        def done():
            queues_empty = all(p.queue_empty() for p in self.postfix)
            return queues_empty and sum(self.mailbox_counts(token).values()) >= expected_total
        wait_for(done, timeout, interval=2, what=f"{expected_total} messages delivered")

    def test_1_every_user_gets_their_mail_once_on_their_backend(self):
        token = f"run{int(time.time())}"
        for i in range(USERS):
            self.send(i, f"user{i:04d}@example.com", f"{token} to user{i:04d}")
        self.wait_delivered(USERS, token)
        counts = self.mailbox_counts(token)
        for i in range(USERS):
            self.assertEqual(counts.get((backend_of(i), f"user.user{i:04d}")), 1, f"user{i:04d}")
        self.assertEqual(sum(counts.values()), USERS, "a message landed twice or in the wrong mailbox")

    def test_2_extension_alias_forward(self):
        token = f"misc{int(time.time())}"
        self.send(0, "user0002+lists@example.com", f"{token} ext")
        self.send(1, "user0005+lists@example.com", f"{token} ext")
        self.send(1, "team@example.com", f"{token} team")
        self.send(0, "away@example.com", f"{token} away")
        self.wait_delivered(4, token)
        counts = self.mailbox_counts(token)
        # Into the Maildir++ folder (made on first use), and the Cyrus folder.
        self.assertEqual(counts.get((backend_of(2), "user.user0002.lists")), 1)
        self.assertEqual(counts.get((backend_of(5), "user.user0005.lists")), 1)
        self.assertEqual(counts.get(("cy01", "user.user0000")), 1)
        self.assertEqual(counts.get(("cy02", "user.user0001")), 1)
        wait_for(lambda: any(token in d.decode(errors="replace") for _, _, d in self.outside.messages), 60,
                 what="the forward to the outside")
        forwarded = [r for _, rs, d in self.outside.messages if token in d.decode(errors="replace") for r in rs]
        self.assertEqual(forwarded, ["someone@outside.example.net"])

    def test_3_read_through_either_frontend(self):
        for k, i in enumerate([4, 5, 8, 9]):  # users on the Cyrus backends
            user = f"user{i:04d}"
            ng = self.nginx[k % 2]
            m = imaplib.IMAP4(ng.host.address, 143)
            m.login(user, f"pw-{user}")
            typ, data = m.select("INBOX", readonly=True)
            self.assertEqual(typ, "OK")
            m.logout()
            p = poplib.POP3(self.nginx[(k + 1) % 2].host.address, 110, timeout=30)
            p.user(user)
            p.pass_(f"pw-{user}")
            self.assertGreaterEqual(p.stat()[0], 0)
            p.quit()
        m = imaplib.IMAP4(self.nginx[0].host.address, 143)
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("user0004", "wrong")

    def test_4_the_murder_knows_every_cyrus_mailbox(self):
        """Every Cyrus user's INBOX reached mupdate_bridge when it was made,
        on the backend the directory names, and the frontends' locator
        answers from that list; Maildir users come from the maildrop."""
        r = subprocess.run(["ip", "netns", "exec", self.mup.netns, binary("mupdate_bridge"), "-c", self.bridge_cf,
                            "list", "user.*"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        where = {}
        for line in r.stdout.splitlines():
            name, state, location, _ = line.split("\t")
            self.assertEqual(state, "active", line)
            where[name] = location.split("!")[0]
        for i in range(USERS):
            if backend_of(i) in CYRUS:
                self.assertEqual(where.get(f"user.user{i:04d}"), f"{backend_of(i)}.example.com", f"user{i:04d}")
        self.assertFalse([n for n in where if backend_of(int(n[9:13])) in MAILDIR])
        for i in (0, 1, 2, 3):
            user = f"user{i:04d}"
            r = subprocess.run(["ip", "netns", "exec", self.fronts[i % 2].netns, binary("webmail_locator"), "-c",
                                "/dev/null", "-o", "locator_mech=ldif:/dev/null", "-o",
                                f"locator_sources=murder=mupdate:{self.murder_store}, maildrop={self.lab.path('locate.cf')}",
                                "locate", user], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            source = "murder" if backend_of(i) in CYRUS else "maildrop"
            self.assertTrue(r.stdout.startswith(f"{backend_of(i)}.example.com "), r.stdout)
            self.assertIn(f"source={source}", r.stdout)

    moved = {}  # user number -> backend, once test_5 has moved it

    def home(self, i):
        return self.moved.get(i, backend_of(i))

    def test_5_moving_a_user_to_another_backend(self):
        """The procedure a sysadmin follows without the admin tool: copy the
        Maildir to the new backend, point maildrop there, and remove the old
        copy. Within the cache TTL new mail goes to the new backend; the old
        mail came along; nothing is left behind or doubled."""
        i = 10
        user, old, new = f"user{i:04d}", backend_of(10), "md02"
        self.assertEqual(old, "md01")
        token = f"move{int(time.time())}"
        self.send(0, f"{user}@example.com", f"{token} before")
        self.wait_delivered(1, token)
        self.assertEqual(self.mailbox_counts(token), {(old, f"user.{user}"): 1})
        rel = os.path.join("example.com", user[:2], user)
        shutil.copytree(os.path.join(self.stores[old], rel), os.path.join(self.stores[new], rel))
        self.slapd.modify(f"dn: uid={user},ou=people,{SUFFIX}\nchangetype: modify\nreplace: maildrop\n"
                          f"maildrop: {user}@{new}.example.com\n")
        shutil.rmtree(os.path.join(self.stores[old], rel))
        type(self).moved[i] = new
        time.sleep(CACHE_TTL + 1)
        self.send(1, f"{user}@example.com", f"{token} after")
        self.send(0, f"{user}+lists@example.com", f"{token} after, folder")
        self.wait_delivered(3, token)
        self.assertEqual(self.mailbox_counts(token), {(new, f"user.{user}"): 2, (new, f"user.{user}.lists"): 1})

    def delivered_subjects(self, token):
        """[(backend, mailbox, subject, body ok)] of every stored message with token."""
        found = []
        for name, cy in self.cyrus.items():
            m = imaplib.IMAP4(cy.host.address, 143)
            m.login("cyrus", "cyrusadminpw")
            _, boxes = m.list('""', '"user.*"')
            for line in boxes:
                box = re.search(r'(?:"([^"]*)"|(\S+))$', line.decode())
                box = box.group(1) or box.group(2)
                if m.select(f'"{box}"', readonly=True)[0] != "OK":
                    continue
                _, hits = m.search(None, "SUBJECT", token)
                for num in hits[0].split():
                    _, data = m.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])")
                    parts = [d[1].decode(errors="replace") for d in data if isinstance(d, tuple)]
                    subject = parts[0].split(":", 1)[1].strip()
                    found.append((name, box, subject, parts[1].strip() == f"body {subject}"))
            m.logout()
        for name, store in self.stores.items():
            for dirpath, _, files in os.walk(store):
                if os.path.basename(dirpath) not in ("new", "cur"):
                    continue
                parts = os.path.relpath(os.path.dirname(dirpath), store).split(os.sep)
                box = "user." + parts[2] + ("." + parts[3][1:] if len(parts) > 3 else "")
                for f in files:
                    with open(os.path.join(dirpath, f), "rb") as fh:
                        text = fh.read().decode(errors="replace")
                    if token not in text:
                        continue
                    subject = re.search(r"^Subject: (.*)$", text, re.M).group(1).strip()
                    body = text.split("\n\n", 1)[1].strip()
                    found.append((name, box, subject, body == f"body {subject}"))
        return found

    def test_6_faults_during_a_stream_lose_nothing(self):
        """A stream of 10,000 messages at both frontends while slapd and
        Redis stop, a Cyrus backend drops off the network, and ldap_tablemap,
        maildir_deliver, mupdate_bridge, sasl_ldap_auth and webmail_locator
        are killed with -9, one after another: every message a frontend
        accepted ends up exactly once, whole, in its user's mailbox on the
        right backend; what was refused (4xx) during a fault is nowhere;
        afterwards all mail is accepted and logins work."""
        total = int(os.environ.get("MAILGRID_FARM_STREAM", "10000"))
        token = f"fault{int(time.time())}"
        accepted, refused, uncertain = set(), set(), set()
        reasons = {}
        sent = [0]

        # Paced over about 40 s, so that every fault falls inside the stream.
        rate = total / 40.0
        started = time.monotonic()

        def stream():
            sessions = [None, None]
            for n in range(total):
                ahead = started + n / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                k, i = n % 2, (n * 7) % USERS
                subject = f"{token} {n}"
                rcpt = f"user{i:04d}@example.com"
                try:
                    if sessions[k] is None:
                        sessions[k] = smtplib.SMTP(self.fronts[k].address, 25, timeout=30)
                    sessions[k].sendmail("sender@test.example", [rcpt], f"From: sender@test.example\r\nTo: {rcpt}\r\n"
                                                                       f"Subject: {subject}\r\n\r\nbody {subject}\r\n")
                    accepted.add((subject, i))
                except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
                    refused.add(subject)  # a 4xx or 5xx answer: not accepted
                    reasons[str(e)[:120]] = reasons.get(str(e)[:120], 0) + 1
                    with contextlib.suppress(Exception):
                        sessions[k].close()
                    sessions[k] = None
                except (smtplib.SMTPException, OSError) as e:
                    uncertain.add(subject)  # the connection broke: maybe accepted
                    reasons[repr(e)[:120]] = reasons.get(repr(e)[:120], 0) + 1
                    with contextlib.suppress(Exception):
                        sessions[k].close()
                    sessions[k] = None
                except Exception:
                    uncertain.add(subject)
                    with contextlib.suppress(Exception):
                        sessions[k].close()
                    sessions[k] = None
                sent[0] = n + 1
            for s in sessions:
                if s:
                    with contextlib.suppress(Exception):
                        s.quit()

        sender = threading.Thread(target=stream)
        sender.start()

        def at(fraction):
            wait_for(lambda: sent[0] >= total * fraction or not sender.is_alive(), 600, interval=0.05,
                     what=f"{fraction:.0%} of the stream")

        cls = type(self)
        at(0.1)
        self.slapd.stop()            # the directory
        time.sleep(2)
        self.slapd.start()
        at(0.25)
        self.redis.stop()            # the shared cache
        time.sleep(2)
        self.redis.start()
        at(0.4)
        self.farm.unplug(self.backs["cy02"])    # a backend drops off the network
        time.sleep(3)
        self.farm.plug(self.backs["cy02"])
        at(0.55)
        fe = self.fronts[0]          # every mailgrid daemon on the mail path, kill -9
        cls.tablemaps[fe.name].kill()
        time.sleep(1)
        cls.tablemaps[fe.name] = cls.start_tablemap(fe)
        at(0.7)
        cls.lmtp["md01"].kill()
        time.sleep(1)
        cls.lmtp["md01"] = cls.start_lmtp("md01")
        at(0.85)
        cls.bridge.kill()
        time.sleep(1)
        cls.bridge = cls.start_bridge()
        at(0.9)                      # and those on the login path
        for name in ("cy01", "mup"):
            cls.sasl[name].kill()
        cls.locators[self.fronts[1].name].kill()
        time.sleep(1)
        for name in ("cy01", "mup"):
            cls.sasl[name] = cls.start_sasl(name)
        cls.locators[self.fronts[1].name] = cls.start_locator(self.fronts[1])
        sender.join(900)
        self.assertFalse(sender.is_alive())
        self.assertLess(len(refused | uncertain), total, f"nothing accepted: {reasons}")
        # A fault on the lookup path refuses mail with 4xx (the sender
        # retries later); once the faults are over, all is accepted again.
        for n in range(total, total + 50):
            i = (n * 7) % USERS
            subject = f"{token} {n}"
            self.send(n, f"user{i:04d}@example.com", subject)
            accepted.add((subject, i))

        def settled():
            return all(p.queue_empty() for p in self.postfix) and \
                len(self.delivered_subjects(token)) >= len(accepted)
        wait_for(settled, 600, interval=3, what=f"{len(accepted)} accepted messages delivered")
        found = self.delivered_subjects(token)
        where = {}
        for backend, box, subject, whole in found:
            self.assertTrue(whole, f"{subject} in {backend} {box} is not the message sent")
            where.setdefault(subject, []).append((backend, box))
        for subject, i in accepted:
            self.assertEqual(where.get(subject), [(self.home(i), f"user.user{i:04d}")], subject)
        self.assertFalse([s for s in where if s in refused], "a refused message was delivered")
        self.assertFalse([s for s in where if len(where[s]) > 1], "a message was delivered twice")
        self.assertEqual(len(found) - len([s for s in where if s in uncertain]), len(accepted))
        # Logins work again through both frontends, on both Cyrus backends.
        for k, i in enumerate([12, 13, 16, 17]):
            user = f"user{i:04d}"
            m = imaplib.IMAP4(self.nginx[k % 2].host.address, 143)
            m.login(user, f"pw-{user}")
            self.assertEqual(m.select("INBOX", readonly=True)[0], "OK")
            m.logout()

    def mailgrid(self, *args, check=True):
        r = subprocess.run([binary("mailgrid"), "-c", self.admin_cf, *args], capture_output=True, text=True, timeout=600)
        if check and r.returncode != 0:
            self.fail(f"mailgrid {' '.join(args)}: exit {r.returncode}: {r.stderr}")
        return r

    def stream_during(self, rcpt, token, action, count=120):
        """Sends count messages to rcpt, alternating frontends, while
        action runs; returns the subjects Postfix accepted."""
        accepted, errors = [], []

        def stream():
            for n in range(count):
                subject = f"{token} {n}"
                try:
                    self.send(n, rcpt, subject)
                    accepted.append(subject)
                except Exception as e:  # a 4xx at the door: not accepted
                    errors.append(repr(e))
                time.sleep(0.05)
        t = threading.Thread(target=stream)
        t.start()
        time.sleep(1)
        result = action()
        t.join(300)
        return accepted, errors, result

    def test_7_admin_moves_a_maildir_user_during_a_stream(self):
        """mailgrid user move while mail streams in at both frontends: the
        frontends hold the user's mail (Postfix keeps it queued), the
        Maildir is copied, maildrop flips, the hold is lifted; every
        accepted message is in the new mailbox once and whole, nothing is
        left on the old backend."""
        i = 6
        user, old, new = f"user{i:04d}", backend_of(i), "md02"
        self.assertEqual(old, "md01")
        token = f"amove{int(time.time())}"
        for n in range(20):
            self.send(n, f"{user}@example.com", f"{token} before {n}")
        self.wait_delivered(20, token)
        accepted, errors, r = self.stream_during(
            f"{user}@example.com", token, lambda: self.mailgrid("user", "move", f"{user}@example.com", new))
        self.assertIn(f"{user}@example.com moved from md01.example.com to md02.example.com", r.stdout)
        type(self).moved[i] = new
        self.assertFalse(errors, errors[:3])
        self.wait_delivered(20 + len(accepted), token)
        found = self.delivered_subjects(token)
        subjects = [f for f in found]
        self.assertTrue(all(whole for _, _, _, whole in subjects), "a message is not the one sent")
        self.assertEqual(sorted(s for _, _, s, _ in subjects),
                         sorted([f"{token} before {n}" for n in range(20)] + accepted), "lost or doubled")
        self.assertEqual({(b, box) for b, box, _, _ in subjects}, {(new, f"user.{user}")})
        self.assertFalse(os.path.exists(os.path.join(self.stores[old], "example.com", user[:2], user)))
        show = json.loads(self.mailgrid("--json", "user", "show", f"{user}@example.com").stdout)
        self.assertEqual(show["backend"], "md02.example.com")
        self.assertEqual(show["maildrop"], [f"{user}@md02.example.com"])
        self.assertEqual(self.redis.cli("SMEMBERS", "mailgrid:hold").strip(), "", "the hold was not lifted")

    def test_8_admin_moves_a_cyrus_user(self):
        """A Cyrus user moved (XFER, or where these Cyrus backends refuse
        it, an IMAP copy): the mailbox and its mail are on the new backend,
        mail sent during the move arrives there, and an IMAP login through
        either frontend's nginx reaches the new backend."""
        i = 4
        user, old, new = f"user{i:04d}", backend_of(i), "cy02"
        self.assertEqual(old, "cy01")
        token = f"xmove{int(time.time())}"
        for n in range(10):
            self.send(n, f"{user}@example.com", f"{token} before {n}")
        self.wait_delivered(10, token)
        cy = imaplib.IMAP4(self.cyrus[old].host.address, 143)
        cy.login("cyrus", "cyrusadminpw")
        before = int(cy.select(f"user.{user}", readonly=True)[1][0])  # earlier tests' mail too
        cy.logout()
        accepted, errors, r = self.stream_during(
            f"{user}@example.com", token, lambda: self.mailgrid("user", "move", f"{user}@example.com", new), count=40)
        type(self).moved[i] = new
        self.assertFalse(errors, errors[:3])
        self.wait_delivered(10 + len(accepted), token)
        found = self.delivered_subjects(token)
        self.assertEqual(sorted(s for _, _, s, _ in found),
                         sorted([f"{token} before {n}" for n in range(10)] + accepted), "lost or doubled")
        self.assertEqual({(b, box) for b, box, _, _ in found}, {(new, f"user.{user}")})
        for fe in self.fronts:
            m = imaplib.IMAP4(fe.address, 143)
            m.login(user, f"pw-{user}")
            typ, data = m.select("INBOX", readonly=True)
            self.assertEqual(typ, "OK")
            self.assertEqual(int(data[0]), before + len(accepted))
            m.logout()
        cy = imaplib.IMAP4(self.cyrus[new].host.address, 143)
        cy.login("cyrus", "cyrusadminpw")
        self.assertEqual(cy.select(f"user.{user}", readonly=True)[0], "OK")
        cy.logout()

    def test_9_admin_adds_a_cyrus_user_who_gets_mail_and_logs_in(self):
        """mailgrid user add on a Cyrus backend: the entry (password
        hashed {SSHA512}, which slapd checks), the mailbox made over IMAP
        and known to the Murder; mail reaches it, and the user logs in
        through nginx with the new password."""
        r = subprocess.run([binary("mailgrid"), "-c", self.admin_cf, "user", "add", "fresh@example.com", "--backend",
                            "cy02", "--quota", "100M", "--password-stdin"], input="fresh-pw\n", capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        token = f"fresh{int(time.time())}"
        self.send(0, "fresh@example.com", token)
        self.send(1, "fresh@example.com", token + " again")

        def inbox(fe):
            m = imaplib.IMAP4(fe.address, 143)
            m.login("fresh", "fresh-pw")
            typ, data = m.select("INBOX", readonly=True)
            m.logout()
            return typ, int(data[0])
        wait_for(lambda: inbox(self.fronts[0]) == ("OK", 2), 120, interval=2, what="mail for the new user")
        self.assertEqual(inbox(self.fronts[1]), ("OK", 2))

    def test_3b_roundcube_shows_each_user_their_mail(self):
        """Roundcube, unchanged, pointed at each frontend's nginx: two
        users on two Cyrus backends log in in a real browser and each
        sees their own new message and not the other's."""
        need("chromedriver", "php")
        token = f"webmail{int(time.time())}"
        users = {0: "user0000", 1: "user0001"}  # cy01, cy02
        for i, u in users.items():
            self.send(i, f"{u}@example.com", f"{token} for {u}")
        self.wait_delivered(2, token)
        browser = WebDriver(self.lab)
        artifacts = os.path.join(BUILD, "test-artifacts")
        os.makedirs(artifacts, exist_ok=True)
        for k, fe in enumerate(self.fronts):
            rc = Roundcube(self.lab, f"{fe.address}:143", name=f"{fe.name}-roundcube")
            for i, u in users.items():
                browser.delete_cookies()
                browser.get(rc.url)
                browser.type("#rcmloginuser", u)
                browser.type("#rcmloginpwd", f"pw-{u}")
                browser.click("#rcmloginsubmit")
                browser.find("#messagelist tbody tr", timeout=30)
                wait_for(lambda u=u: f"{token} for {u}" in browser.page_text(), 30, what=f"{u}'s message")
                other = users[1 - i]
                self.assertNotIn(f"{token} for {other}", browser.page_text())
                browser.screenshot(os.path.join(artifacts, f"farm-webmail-{fe.name}-{u}.png"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
