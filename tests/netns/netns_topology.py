"""The network of the namespace fault test: one namespace per daemon, each with a veth whose
peer sits on a Linux bridge in one more namespace (nothing is added to the root namespace).
Faults: nftables rules inside the daemons' namespaces that drop traffic between two sides, and
a veth's bridge end set down. Everything created is named after the creating process, so two
runs at once do not meet, and destroy() removes exactly that.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import List, Optional, Sequence, Tuple

SUBNET = "10.78.0"
NFT_TABLE = "agent_fault"


class Unavailable(Exception):
    """Namespaces, veths, bridges or nftables cannot be used here: the test skips."""


def run(*cmd: str, stdin: Optional[str] = None) -> None:
    p = subprocess.run(cmd, input=stdin, text=True, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=20)
    if p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stdout.strip()))


def run_all(cmds: Sequence[Tuple[Sequence[str], str]]) -> None:
    """Runs the (command, stdin) pairs at once (a cut or heal lands in every namespace within
    a few ms, not one `ip netns exec` after the other) and raises on the first that failed."""
    procs = [subprocess.Popen(c, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for c, _ in cmds]
    outs = [p.communicate(stdin, timeout=20)[0] for p, (_, stdin) in zip(procs, cmds)]
    for (c, _), p, out in zip(cmds, procs, outs):
        if p.returncode != 0:
            raise RuntimeError("%s: exit %d: %s" % (" ".join(c), p.returncode, out.strip()))


def check_available() -> None:
    """Raises Unavailable with a sentence saying what is missing."""
    if os.geteuid() != 0:
        raise Unavailable("needs root (network namespaces, veths, nftables)")
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            raise Unavailable("'%s' not found (apt-get install %s, or scripts/install-deps.sh)"
                              % (tool, pkg))


class Topology:
    def __init__(self, daemons: int, tag: str):
        self.n = daemons
        self.tag = tag
        self.bridge_ns = "%s-br" % tag
        self.created: List[str] = []  # namespaces, in creation order

    def ns(self, i: int) -> str:
        """The namespace of daemon i (1-based)."""
        return "%s-d%d" % (self.tag, i)

    @staticmethod
    def address(i: int) -> str:
        return "%s.%d" % (SUBNET, 10 + i)

    def _add_ns(self, name: str) -> None:
        p = subprocess.run(["ip", "netns", "add", name], text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
        if p.returncode != 0:
            raise Unavailable("ip netns add failed (no CAP_SYS_ADMIN, or no namespaces here): "
                              + p.stdout.strip())
        self.created.append(name)
        try:
            run("ip", "-n", name, "link", "set", "lo", "up")
        except RuntimeError as e:
            # e.g. in a chroot, where / is no mount point and `ip -n` cannot enter a namespace
            raise Unavailable("cannot work inside a network namespace here: %s" % e)

    def create(self) -> None:
        self._add_ns(self.bridge_ns)
        try:
            run("ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        except RuntimeError as e:
            raise Unavailable("cannot create a Linux bridge: %s" % e)
        run("ip", "-n", self.bridge_ns, "link", "set", "br0", "up")
        for i in range(1, self.n + 1):
            self._add_ns(self.ns(i))
            try:
                run("ip", "-n", self.bridge_ns, "link", "add", "v%d" % i, "type", "veth",
                    "peer", "name", "eth0", "netns", self.ns(i))
            except RuntimeError as e:
                raise Unavailable("cannot create a veth pair: %s" % e)
            run("ip", "-n", self.bridge_ns, "link", "set", "v%d" % i, "master", "br0", "up")
            run("ip", "-n", self.ns(i), "addr", "add", self.address(i) + "/24", "dev", "eth0")
            run("ip", "-n", self.ns(i), "link", "set", "eth0", "up")
        # nftables must work inside a namespace: probe it once, before anything starts.
        try:
            run("ip", "netns", "exec", self.ns(1), "nft", "list", "tables")
        except RuntimeError as e:
            raise Unavailable("nftables does not work in a namespace: %s" % e)

    def partition(self, sides: Sequence[Sequence[int]]) -> None:
        """Drops IPv4 traffic between daemons on different sides, in each daemon's namespace
        (input and output: the cut is symmetric whatever a packet's path)."""
        cmds = []
        for side in sides:
            others = [self.address(j) for s in sides if s is not side for j in s]
            cut = "{ %s }" % ", ".join(others)
            rules = ("table inet %s {\n"
                     " chain in { type filter hook input priority 0; policy accept;"
                     " ip saddr %s drop; }\n"
                     " chain out { type filter hook output priority 0; policy accept;"
                     " ip daddr %s drop; }\n"
                     "}\n") % (NFT_TABLE, cut, cut)
            cmds += [(["ip", "netns", "exec", self.ns(i), "nft", "-f", "-"], rules) for i in side]
        run_all(cmds)

    def heal(self) -> None:
        run_all([(["ip", "netns", "exec", self.ns(i), "nft", "delete", "table", "inet",
                   NFT_TABLE], "") for i in range(1, self.n + 1)])

    def set_link(self, i: int, up: bool) -> None:
        """Daemon i's veth end on the bridge, down (cut off from every other daemon) or up."""
        run("ip", "-n", self.bridge_ns, "link", "set", "v%d" % i, "up" if up else "down")

    def destroy(self) -> List[str]:
        """Removes the namespaces this topology created (their veths and bridge go with them).
        Returns the errors, if any: cleanup goes on past one."""
        errors = []
        for name in reversed(self.created):
            p = subprocess.run(["ip", "netns", "del", name], text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=20)
            if p.returncode != 0:
                errors.append("ip netns del %s: %s" % (name, p.stdout.strip()))
        self.created.clear()
        return errors
