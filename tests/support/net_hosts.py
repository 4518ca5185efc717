"""Agent "hosts" on one machine, each in a network namespace of its own, on one subnet.

`net_subnet` (function) makes a namespace holding a bridge that plays the VPC subnet, and
returns a `Subnet`; `Subnet.host(name)` adds a host: a namespace with its own bridge,
joined to the subnet's by a veth pair. An agent given `agent_network_host_netns=<the
host's namespace>` puts its tasks' links there, so containers of different hosts reach
each other only through the subnet bridge. Everything lives in namespaces the test made
(names start with "tn" and a per-test tag): no traffic leaves the machine and nothing
touches the engine's own bridge or packet filter. Teardown deletes the namespaces,
which takes their links with them. Tests fail, saying why, when the machine cannot make namespaces.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

HOST_BRIDGE = "br0"
#: What a command needing the network did before the start gate (kept: it costs nothing
#: now, and the tests that use it do not depend on the gate).
WAIT_NET = "until ip addr show eth0 2>/dev/null | grep -q inet; do sleep 0.05; done; "


def serve(*ports: int) -> str:
    """A command that answers 'hi' on each of `ports`, one connection after another."""
    listed = " ".join(map(str, ports))
    return WAIT_NET + (
        f"for p in {listed}; do (while true; do echo hi | nc -l -p $p; done) & done; wait"
    )


def reaches(ip: str, port: int, tries: int = 3) -> str:
    """A command that exits 0 when it reads 'hi' from ip:port within `tries` tries. A
    server's command starts as it is reported Started (it waits behind the start gate
    until then), and a refused connection answers at once: the first client of a server
    gives it more tries, time to listen on a busy machine."""
    return WAIT_NET + (
        f'for i in $(seq {tries}); do [ "$(nc -w 1 {ip} {port})" = hi ] && exit 0; '
        "sleep 0.2; done; exit 1"
    )


def sh(*args: str) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, check=True).stdout


def netns_capable() -> str:
    """Why namespaced hosts cannot be made here, or "" when they can."""
    if shutil.which("ip") is None or shutil.which("nsenter") is None:
        return "needs iproute2 and nsenter"
    probe = f"tnp{uuid.uuid4().hex[:8]}"
    try:
        sh("ip", "netns", "add", probe)
    except (subprocess.CalledProcessError, OSError):
        return "needs root (CAP_NET_ADMIN) to make network namespaces"
    sh("ip", "netns", "del", probe)
    return ""


@dataclass
class Subnet:
    tag: str
    cidr: str
    namespaces: list[str] = field(default_factory=list)

    @property
    def netns(self) -> str:
        return f"tn{self.tag}s"

    def host(self, name: str) -> str:
        """A new host namespace on this subnet; its name."""
        ns = f"tn{self.tag}{name}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        up, down = f"tn{self.tag}{name}u", f"tn{self.tag}{name}d"
        sh("ip", "link", "add", up, "type", "veth", "peer", "name", down)
        sh("ip", "link", "set", up, "netns", self.netns)
        sh("ip", "link", "set", down, "netns", ns)
        sh("ip", "-n", ns, "link", "add", HOST_BRIDGE, "type", "bridge")
        sh("ip", "-n", ns, "link", "set", HOST_BRIDGE, "up")
        sh("ip", "-n", ns, "link", "set", down, "master", HOST_BRIDGE, "up")
        sh("ip", "-n", self.netns, "link", "set", up, "master", "sub", "up")
        return ns

    def links(self, ns: str, prefix: str) -> list[str]:
        out = sh("ip", "-n", ns, "-o", "link", "show")
        names = (line.split(":")[1].strip().split("@")[0] for line in out.splitlines())
        return [n for n in names if n.startswith(prefix)]


@pytest.fixture
def net_subnet() -> Iterator[Subnet]:
    reason = netns_capable()
    if reason:
        pytest.fail(reason)
    subnet = Subnet(tag=uuid.uuid4().hex[:6], cidr="100.64.7.0/24")
    sh("ip", "netns", "add", subnet.netns)
    subnet.namespaces.append(subnet.netns)
    try:
        sh("ip", "-n", subnet.netns, "link", "add", "sub", "type", "bridge")
        sh("ip", "-n", subnet.netns, "link", "set", "sub", "up")
        yield subnet
    finally:
        for ns in reversed(subnet.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
