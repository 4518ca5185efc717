"""The links that put a container on its host's subnet.

A container starts with a network namespace of its own and no interface but loopback
(the engine's `network_mode=none`). `attach` makes a link pair, moves one end into the
container's namespace by its PID (renamed `eth0`) and puts the other end on the host's
bridge, which stands for the subnet; `address` then gives `eth0` the task's address and
so a route to its subnet only (no default route: nothing outside is reachable). When
the container ends its namespace goes and the link with it; `detach` removes what is
left either way.

Link names come from the task id (`tv` + a hash, within the kernel's 15 characters), so
an agent after a restart finds a task's link without having to remember it.

Two link types, one setting (`agent_network_link_type`): `veth` (the default) is a pair
whose host end sits on the bridge; `ipvlan` (what production EC2 hosts use) is an L2
ipvlan link on the host interface of the task's ENI (`agent_network_ipvlan_parent`, with
`{index}` standing for the ENI's device index), with no host end to shape or filter:
its bandwidth classes and packet filter live in the container's namespace only. A
kernel without ipvlan (this one has none) refuses the setting when the agent starts
(`link_type_unsupported`), never at a task's launch.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Sequence

from titus.agent.network.provider import Allocation, NetworkError

#: Prefix of every host-side task link (leak checks look for it).
HOST_LINK_PREFIX = "tv"
CONTAINER_IFNAME = "eth0"
LINK_TYPES = ("veth", "ipvlan")


class NetworkConfigError(ValueError):
    """A network setting this host cannot honour: the agent refuses to start with it."""


def link_type_unsupported(link_type: str, host_netns: str = "") -> str:
    """Why links of `link_type` cannot be made here, or "" when they can. ipvlan is
    probed by making one link (without a parent, which the kernel checks after the type):
    a kernel without the type says so."""
    if link_type not in LINK_TYPES:
        return f"not one of {', '.join(LINK_TYPES)}"
    if link_type == "veth":
        return ""
    probe = "tq" + os.urandom(5).hex()
    netns = ["-n", host_netns] if host_netns else []
    done = subprocess.run(
        ["ip", *netns, "link", "add", probe, "type", "ipvlan", "mode", "l2"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if done.returncode == 0:
        run_quietly(["ip", *netns, "link", "del", probe])
        return ""
    said = done.stderr.strip()
    if "Unknown device type" in said or "not supported" in said.lower():
        return f"this kernel has no ipvlan links ({said})"
    return ""  # the type is known; it only lacked a parent


def host_link_name(task_id: str) -> str:
    return HOST_LINK_PREFIX + hashlib.sha1(task_id.encode()).hexdigest()[:11]


def _peer_name(task_id: str) -> str:
    return "tp" + hashlib.sha1(task_id.encode()).hexdigest()[:11]


def run(args: Sequence[str]) -> str:
    """Run one command; its failure is a NetworkError carrying what it said."""
    done = subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise NetworkError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def in_container(pid: int, args: Sequence[str]) -> str:
    """Run a command in the network namespace of the process `pid`."""
    return run(["nsenter", "-t", str(pid), "-n", *args])


class Plumbing:
    """Links of tasks on one bridge, in the agent's network namespace or in `host_netns`."""

    def __init__(
        self,
        bridge: str,
        host_netns: str = "",
        link_type: str = "veth",
        ipvlan_parent: str = "eth{index}",
    ):
        if link_type not in LINK_TYPES:
            raise NetworkConfigError(f"link type {link_type!r} is not one of {LINK_TYPES}")
        self.bridge = bridge
        self.host_netns = host_netns
        self.link_type = link_type
        self.ipvlan_parent = ipvlan_parent

    def _ip(self, *args: str) -> str:
        netns = ["-n", self.host_netns] if self.host_netns else []
        return run(["ip", *netns, *args])

    def ensure_bridge(self) -> None:
        """The bridge exists and is up (made when missing)."""
        try:
            self._ip("link", "show", self.bridge)
        except NetworkError:
            self._ip("link", "add", self.bridge, "type", "bridge")
        self._ip("link", "set", self.bridge, "up")

    def attach(self, task_id: str, pid: int, allocation: Allocation | None = None) -> str:
        """Put a link into the namespace of process `pid` (as `eth0`, down, no address
        yet); the host-side link's name ("" for ipvlan, which has none). On a failure
        nothing is left behind."""
        if self.link_type == "ipvlan":
            return self._attach_ipvlan(task_id, pid, allocation)
        host, peer = host_link_name(task_id), _peer_name(task_id)
        self.ensure_bridge()
        self.detach(task_id)
        run(["ip", "link", "add", host, "type", "veth", "peer", "name", peer])
        try:
            run(["ip", "link", "set", peer, "netns", str(pid)])
            if self.host_netns:
                run(["ip", "link", "set", host, "netns", self.host_netns])
            self._ip("link", "set", host, "master", self.bridge, "up")
            in_container(pid, ["ip", "link", "set", peer, "name", CONTAINER_IFNAME])
            in_container(pid, ["ip", "link", "set", "lo", "up"])
        except BaseException:
            self.detach(task_id)
            run_quietly(["ip", "link", "del", host])
            raise
        return host

    def _attach_ipvlan(self, task_id: str, pid: int, allocation: Allocation | None) -> str:
        index = allocation.interface_index if allocation is not None else 0
        parent = self.ipvlan_parent.format(index=index)
        peer = _peer_name(task_id)
        self._ip("link", "add", peer, "link", parent, "type", "ipvlan", "mode", "l2")
        try:
            netns = ["-n", self.host_netns] if self.host_netns else []
            run(["ip", *netns, "link", "set", peer, "netns", str(pid)])
            in_container(pid, ["ip", "link", "set", peer, "name", CONTAINER_IFNAME])
            in_container(pid, ["ip", "link", "set", "lo", "up"])
        except BaseException:
            with contextlib.suppress(NetworkError):
                self._ip("link", "del", peer)
            raise
        return ""

    @staticmethod
    def container_address(pid: int) -> str:
        """The IPv4 address the container of `pid` has on `eth0`; "" when none."""
        try:
            out = in_container(pid, ["ip", "-o", "-4", "addr", "show", "dev", CONTAINER_IFNAME])
        except NetworkError:
            return ""
        for line in out.splitlines():
            fields = line.split()
            if "inet" in fields:
                return fields[fields.index("inet") + 1].split("/")[0]
        return ""

    @staticmethod
    def address(pid: int, allocation: Allocation) -> None:
        """Bring the container's link up, then give it its address: the address is the
        very last step, so a process that waits for it finds its filters and limits in
        place, and one that ends the moment it sees it leaves no step after it to fail
        (which lost the address from what the task reports)."""
        address = f"{allocation.ip}/{allocation.prefix_len}"
        in_container(pid, ["ip", "link", "set", CONTAINER_IFNAME, "up"])
        in_container(pid, ["ip", "addr", "add", address, "dev", CONTAINER_IFNAME])

    def detach(self, task_id: str) -> None:
        """Remove the task's link; a link already gone (with its container) is fine."""
        with contextlib.suppress(NetworkError):
            self._ip("link", "del", host_link_name(task_id))

    def host_links(self) -> list[str]:
        """Names of the task links on this host (for leak checks and sweeps)."""
        out = self._ip("-o", "link", "show")
        names = (line.split(":")[1].strip().split("@")[0] for line in out.splitlines())
        return [n for n in names if n.startswith(HOST_LINK_PREFIX)]


def run_quietly(args: Sequence[str]) -> None:
    with contextlib.suppress(NetworkError):
        run(args)
