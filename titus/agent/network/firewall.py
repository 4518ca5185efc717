"""Security groups as packet filters on a container's link.

A task's groups name inbound rules (protocol, port range, and a source CIDR or a source
group: the addresses of the tasks in that group); the sources (`LocalGroups` from
settings, the cloud provider from its API) say what each group allows, and a group no
source knows is refused before the task runs, as the cloud refuses it. `apply` loads
them as one iptables table in the container's own network namespace, where its link
ends: replies to what the container started pass, loopback passes, what a rule allows
passes, all other inbound traffic is dropped. Keeping the rules in the task's namespace
filters exactly its link, goes away with the container and never touches the host's
shared chains (the engine's among them); a task cannot change them, since it is never
given NET_ADMIN. Outbound traffic is open, as a group's default egress rule is. Rules
naming source groups are resolved again by the agent's network upkeep, as the groups'
members come and go.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from titus.agent.network.provider import NetworkError

PROTOCOLS = ("tcp", "udp", "icmp", "all")


class UnknownGroupError(NetworkError):
    """A security group that does not exist: the job's error, not the host's."""

    def __init__(self, groups: Sequence[str]):
        super().__init__(f"unknown security groups: {', '.join(groups)}", transient=False)


@dataclass(frozen=True)
class Rule:
    """One inbound permission; ports are inclusive and ignored for icmp and all. Its
    source is an address range (`cidr`), or a security group (`group`): the addresses of
    the tasks in that group, which a group source resolves into address rules."""

    protocol: str
    from_port: int
    to_port: int
    cidr: str
    group: str = ""

    @classmethod
    def parse(cls, text: str) -> Rule:
        """A rule from 'proto:from-to:source', the source a CIDR or a group id
        ('tcp:8080:10.0.0.0/8', 'all::0.0.0.0/0', 'tcp:5432:sg-web')."""
        try:
            protocol, ports, source = text.strip().split(":")
        except ValueError:
            raise ValueError(f"security group rule {text!r} is not proto:ports:source") from None
        protocol = protocol.lower()
        if protocol not in PROTOCOLS:
            raise ValueError(f"security group rule {text!r}: protocol is not one of {PROTOCOLS}")
        low, _, high = ports.partition("-")
        start = int(low) if low else 0
        end = int(high) if high else (start if low else 65535)
        try:
            ipaddress.ip_network(source)
        except ValueError:
            if not source or len(source) > 255:
                raise ValueError(f"security group rule {text!r}: no source") from None
            return cls(protocol, start, end, "", group=source)
        return cls(protocol, start, end, source)

    def from_addresses(self, addresses: Sequence[str]) -> list[Rule]:
        """This rule once per source address (for a rule naming a source group)."""
        return [Rule(self.protocol, self.from_port, self.to_port, f"{ip}/32") for ip in addresses]

    def iptables(self) -> str:
        """This rule as an iptables-restore line of the INPUT chain."""
        if self.protocol == "all":
            return f"-A INPUT -s {self.cidr} -j ACCEPT"
        if self.protocol == "icmp":
            return f"-A INPUT -p icmp -s {self.cidr} -j ACCEPT"
        ports = f"{self.from_port}:{self.to_port}"
        return f"-A INPUT -p {self.protocol} -s {self.cidr} --dport {ports} -j ACCEPT"


class GroupSource(Protocol):
    """What security groups allow, by group id."""

    def rules(self, groups: Sequence[str]) -> list[Rule]:
        """Every inbound rule of `groups`; UnknownGroupError when one does not exist."""
        ...


class LocalGroups:
    """Groups declared in settings (`agent_network_security_groups`). A rule naming a
    source group allows the addresses `members` gives for it (this host's tasks in it)."""

    def __init__(
        self,
        table: Mapping[str, Sequence[str]],
        members: Callable[[str], Sequence[str]] | None = None,
    ):
        self.table = {group: [Rule.parse(r) for r in rules] for group, rules in table.items()}
        self.members = members
        for group, rules in self.table.items():
            for rule in rules:
                if rule.group and rule.group not in self.table:
                    raise ValueError(
                        f"security group {group}: source group {rule.group} is not declared"
                    )

    def rules(self, groups: Sequence[str]) -> list[Rule]:
        unknown = [g for g in groups if g not in self.table]
        if unknown:
            raise UnknownGroupError(unknown)
        out: list[Rule] = []
        for rule in (rule for g in groups for rule in self.table[g]):
            if not rule.group:
                out.append(rule)
            elif self.members is not None:
                out.extend(rule.from_addresses(self.members(rule.group)))
        return out


def ruleset(rules: Sequence[Rule]) -> str:
    """The iptables-restore input for a container whose groups allow `rules`."""
    lines = [
        "*filter",
        ":INPUT DROP [0:0]",
        ":FORWARD DROP [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        *dict.fromkeys(rule.iptables() for rule in rules),
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"


def apply(pid: int, rules: Sequence[Rule]) -> None:
    """Load `rules` as the filter table of the network namespace of process `pid`."""
    done = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "iptables-restore", "-w"],
        input=ruleset(rules),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if done.returncode != 0:
        raise NetworkError(f"loading security group rules failed: {done.stderr.strip()}")
