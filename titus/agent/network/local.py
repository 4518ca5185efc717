"""The `local` provider: addresses from a configured pool, for one machine without a cloud.

Allocations are kept in a JSON file under the agent's state directory, written whole
under an exclusive file lock, so that a restarted agent finds (and adopts) the addresses
its running tasks hold, and two agents sharing one pool file never hand out one address
twice. The pool is a range inside the subnet: hosts that share a subnet get disjoint
ranges (or one shared file).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from titus.agent.network.provider import Allocation, AllocationFile, NetworkError

#: The interface id the local provider reports: one "interface", the host's bridge.
LOCAL_INTERFACE_ID = "local"


class LocalPoolProvider:
    """Addresses from `pool` (a range in `subnet`; empty: the subnet's hosts after the
    first, which is the gateway's by convention)."""

    def __init__(self, subnet: str, pool: str, state_file: Path, owner: str = ""):
        self.subnet = ipaddress.ip_network(subnet)
        self.pool = ipaddress.ip_network(pool) if pool else self.subnet
        if not self.pool.subnet_of(self.subnet):  # type: ignore[arg-type]
            raise ValueError(f"address pool {pool} is not inside subnet {subnet}")
        self.file = AllocationFile(state_file)
        self.owner = owner

    def _in_pool(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        gateway = next(self.subnet.hosts())
        return address in self.pool and address not in (gateway, self.subnet.broadcast_address)

    def _candidates(self) -> Iterator[str]:
        gateway = next(self.subnet.hosts())
        for address in self.pool.hosts():
            if address != gateway and address != self.subnet.broadcast_address:
                yield str(address)

    def allocate(self, task_id: str, security_groups: Sequence[str]) -> Allocation:
        with self.file.locked() as table:
            if task_id in table:
                return table[task_id]
            taken = {a.ip for a in table.values()}
            for ip in self._candidates():
                if ip not in taken:
                    return self._record(table, task_id, ip, security_groups)
        raise NetworkError(f"address pool {self.pool} is exhausted")

    def release(self, task_id: str) -> None:
        with self.file.locked() as table:
            table.pop(task_id, None)

    def allocations(self) -> dict[str, Allocation]:
        with self.file.locked() as table:
            return dict(table)

    def sweep(self) -> None:
        """Nothing to give back: a released address is free at once."""

    def release_absent(self, running: Iterable[str]) -> list[str]:
        """Release at once the addresses this agent gave to tasks not running (a released
        address has no grace period here); those of other agents sharing the file stay."""
        alive = set(running)
        with self.file.locked() as table:
            gone = [
                task for task, a in table.items() if task not in alive and a.owner == self.owner
            ]
            for task in gone:
                del table[task]
        return gone

    def adopt(self, task_id: str, ip: str, security_groups: Sequence[str]) -> Allocation | None:
        """A running task's address, taken back when it is in the pool and free."""
        with self.file.locked() as table:
            if task_id in table:
                return table[task_id]
            if not self._in_pool(ip) or any(a.ip == ip for a in table.values()):
                return None
            return self._record(table, task_id, ip, security_groups)

    def _record(
        self, table: dict[str, Allocation], task_id: str, ip: str, security_groups: Sequence[str]
    ) -> Allocation:
        """`ip` is this agent's task's from now on (in the locked table)."""
        allocation = Allocation(
            task_id=task_id,
            ip=ip,
            subnet=str(self.subnet),
            interface_id=LOCAL_INTERFACE_ID,
            security_groups=tuple(security_groups),
            owner=self.owner,
        )
        table[task_id] = allocation
        return allocation

    def task_slots(self) -> int | None:
        return None  # the pool's size, which the settings already say

    def instance_type(self) -> str:
        return ""

    def published(self) -> dict[str, Any]:
        return {}  # one interface without a per-interface limit

    def group_addresses(self, group: str) -> list[str]:
        """Addresses of this host's tasks in security group `group` (the sources a rule
        naming the group allows)."""
        with self.file.locked() as table:
            return sorted(a.ip for a in table.values() if group in a.security_groups)
