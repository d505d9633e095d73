#!/usr/bin/env python3
"""The Debian package: cpack -G DEB builds it, dpkg installs it into
Debian's paths, the programs, man pages, units and the mailgrid user are
there and a daemon starts from the installed files; purging removes it."""

import glob
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, LabTestCase, free_port, need, need_root, tcp_lookup, wait_port

DAEMONS = ["ldap_tablemap", "sasl_ldap_auth", "webmail_locator", "mupdate_bridge", "mailgrid_policy"]
# The admin command runs when a sysadmin runs it: no unit.
PROGRAMS = DAEMONS + ["mailgrid"]
# Run by Postfix (local(8) .forward, pipe(8)), not started by hand: not in /usr/sbin.
LIBEXEC = ["maildir_deliver"]


class Package(LabTestCase):
    @classmethod
    def setUpLab(cls):
        need_root()
        need("cpack", "dpkg", "dpkg-deb")
        if subprocess.run(["dpkg", "-s", "mailgrid"], capture_output=True).returncode == 0:
            raise unittest.SkipTest("a mailgrid package is already installed here; not touching it")
        out = cls.lab.path("pkg")
        os.makedirs(out)
        r = subprocess.run(["cpack", "-G", "DEB", "--config", os.path.join(BUILD, "CPackConfig.cmake"), "-B", out],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"cpack: {r.stdout}{r.stderr}")
        cls.deb = glob.glob(os.path.join(out, "mailgrid_*.deb"))[0]

    def test_install_run_purge(self):
        contents = subprocess.run(["dpkg-deb", "-c", self.deb], capture_output=True, text=True).stdout
        for p in PROGRAMS:
            self.assertIn(f"./usr/sbin/{p}", contents)
            self.assertIn(f"./usr/share/man/man8/{p}.8", contents)
            if p in DAEMONS:
                self.assertIn(f"./usr/lib/systemd/system/{p}.service", contents)
        for p in LIBEXEC:
            self.assertIn(f"./usr/lib/mailgrid/{p}", contents)
            self.assertIn(f"./usr/share/man/man8/{p}.8", contents)
        self.assertIn("./usr/share/mailgrid/ldap/mailsuite.schema", contents)
        r = subprocess.run(["dpkg", "-i", self.deb], capture_output=True, text=True, timeout=300)
        daemon = None
        try:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            for p in PROGRAMS:
                v = subprocess.run([f"/usr/sbin/{p}", "--version"], capture_output=True, text=True)
                self.assertEqual(v.returncode, 0, p)
                self.assertIn(p, v.stdout + v.stderr)
                self.assertEqual(subprocess.run(["man", "-w", p], capture_output=True).returncode, 0, p)
            for p in LIBEXEC:
                v = subprocess.run([f"/usr/lib/mailgrid/{p}", "--version"], capture_output=True, text=True)
                self.assertEqual(v.returncode, 0, p + ": " + v.stderr)
            self.assertEqual(subprocess.run(["getent", "passwd", "mailgrid"], capture_output=True).returncode, 0)
            self.assertTrue(os.path.exists("/etc/mailgrid/mailgrid.cf"))
            # The installed program, the installed examples: a lookup.
            examples = "/usr/share/doc/mailgrid/examples"
            with open(f"{examples}/virtual.cf") as f:
                example = f.read()
            cf = self.lab.write("virtual.cf", example.replace(
                "server_host = ldap://ldap1.example.com/ ldap://ldap2.example.com/",
                f"server_host = ldif:{examples}/users.ldif"))
            port = free_port()
            daemon = self.lab.spawn("installed", ["/usr/sbin/ldap_tablemap", "-f", "-c", "/dev/null", "--table",
                                         f"virtual={cf}", "--tcp", f"virtual=127.0.0.1:{port}",
                                         "-o", "daemon_user=mailgrid"])
            wait_port(port)
            self.assertEqual(tcp_lookup(port, "alice@example.com"), (200, "alice@mail01.example.com"))
        finally:
            if daemon:
                daemon.stop()  # the user cannot be removed while it runs
            r = subprocess.run(["dpkg", "-P", "mailgrid"], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertFalse(os.path.exists("/usr/sbin/ldap_tablemap"))
        self.assertFalse(os.path.exists("/etc/mailgrid"))
        self.assertNotEqual(subprocess.run(["getent", "passwd", "mailgrid"], capture_output=True).returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
