"""A task's `networkMbps` as HTB classes on both ends of its link.

The container's end (`eth0`, in its namespace) holds what it sends, the host's end holds
what it receives, so the limit holds both ways without an ingress redirect device. The
class's rate is the task's share; its ceiling is the host's burst setting when that is
higher (a task may borrow idle bandwidth up to it), else the rate. The classes go away
with the link.
"""

from __future__ import annotations

from collections.abc import Sequence

from titus.agent.network.plumbing import CONTAINER_IFNAME, in_container, run


def htb_commands(dev: str, mbps: int, burst_mbps: int) -> list[list[str]]:
    """The tc commands (without the `tc` and namespace prefix) that shape `dev`."""
    ceil = max(mbps, burst_mbps)
    return [
        ["qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "10"],
        [
            "class", "replace", "dev", dev, "parent", "1:", "classid", "1:10", "htb",
            "rate", f"{mbps}mbit", "ceil", f"{ceil}mbit",
        ],
    ]  # fmt: skip


def shape(pid: int, host_link: str, host_netns: str, mbps: int, burst_mbps: int) -> None:
    """Hold the container of `pid` (on `host_link`) to `mbps` each way."""
    netns: Sequence[str] = ["-n", host_netns] if host_netns else []
    if host_link:  # an ipvlan link has no host end: its container's end alone is shaped
        for args in htb_commands(host_link, mbps, burst_mbps):
            run(["tc", *netns, *args])
    for args in htb_commands(CONTAINER_IFNAME, mbps, burst_mbps):
        in_container(pid, ["tc", *args])
