"""A mail farm on one machine: each host is a network namespace with an
address of its own on one bridge, and the names of the farm resolve inside
every host (ip-netns bind-mounts /etc/netns/<ns>/hosts over /etc/hosts).

    farm = Farm(lab)
    ldap = farm.add("ldap", 10)              # Host("10.x.y.10", netns)
    farm.write_hosts()                       # after all hosts are added
    Slapd(lab, [...], host=ldap, port=389)

Everything is removed again in lab.close(): processes in the namespaces,
the namespaces, the bridge, the /etc/netns entries.
"""

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time

from harness import Host, need_root, need

DOMAIN = "example.com"


def ip(*args, check=True):
    return subprocess.run(["ip", *map(str, args)], capture_output=True, text=True, check=check)


class Farm:
    def __init__(self, lab):
        need_root()
        need("ip")
        self.lab = lab
        tag = "".join(random.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(4))
        self.tag = tag
        self.subnet = f"10.{random.randint(64, 127)}.{random.randint(1, 254)}"
        self.bridge = f"mgbr{tag}"
        self.hosts = {}
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        lab.on_close(self.teardown)

    def add(self, name, octet, aliases=()):
        ns = f"mg{self.tag}-{name}"
        outside, inside = f"mg{self.tag}{octet}a", f"mg{self.tag}{octet}b"
        ip("netns", "add", ns)
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", outside, "master", self.bridge)
        ip("link", "set", outside, "up")
        ip("link", "set", inside, "netns", ns)
        address = f"{self.subnet}.{octet}"
        ip("netns", "exec", ns, "ip", "addr", "add", f"{address}/24", "dev", inside)
        ip("netns", "exec", ns, "ip", "link", "set", inside, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        host = Host(address, ns, name)
        host.link = outside
        host.fqdn = f"{name}.{DOMAIN}"
        host.aliases = list(aliases)
        self.hosts[name] = host
        return host

    def unplug(self, host):
        """The host drops off the network (its processes keep running), as
        a crashed or partitioned machine does for everyone else."""
        ip("link", "set", host.link, "down")

    def plug(self, host):
        ip("link", "set", host.link, "up")

    def write_hosts(self):
        lines = ["127.0.0.1 localhost"]
        for h in self.hosts.values():
            lines.append(" ".join([h.address, h.fqdn, h.name, *h.aliases]))
        text = "\n".join(lines) + "\n"
        for h in self.hosts.values():
            d = f"/etc/netns/{h.netns}"
            os.makedirs(d, exist_ok=True)
            with open(f"{d}/hosts", "w") as f:
                f.write(text)

    def teardown(self):
        for h in self.hosts.values():
            pids = ip("netns", "pids", h.netns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.2)
        for h in self.hosts.values():
            ip("netns", "del", h.netns, check=False)
            shutil.rmtree(f"/etc/netns/{h.netns}", ignore_errors=True)
        ip("link", "del", self.bridge, check=False)
