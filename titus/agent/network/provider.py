"""What an address provider promises, whatever hands out the addresses.

A provider gives a task one address on an interface of this host (`allocate`), takes it
back (`release`) and remembers what it gave across agent restarts (`allocations`), so a
restarted agent adopts running tasks' addresses instead of handing them out again. The
`local` provider draws from a configured pool; a cloud provider draws from the host's
network interfaces. The hook (hook.py) only speaks this protocol.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol


class NetworkError(Exception):
    """An address or link that cannot be had; `transient` when trying again may work."""

    def __init__(self, message: str, transient: bool = True):
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Allocation:
    """One task's address: where it sits (`interface_id`, `interface_index` on the host)
    and the subnet it belongs to (the container gets a route to that subnet only)."""

    task_id: str
    ip: str
    subnet: str
    interface_id: str
    interface_index: int = 0
    security_groups: tuple[str, ...] = field(default_factory=tuple)
    #: The agent that handed it out, where agents share one record file ("" otherwise).
    owner: str = ""

    @property
    def prefix_len(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["security_groups"] = list(self.security_groups)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Allocation:
        return cls(
            task_id=str(data["task_id"]),
            ip=str(data["ip"]),
            subnet=str(data["subnet"]),
            interface_id=str(data["interface_id"]),
            interface_index=int(data.get("interface_index", 0)),
            security_groups=tuple(str(g) for g in data.get("security_groups", ())),
            owner=str(data.get("owner", "")),
        )


class AddressProvider(Protocol):
    """Hands out one address per task on this host."""

    def allocate(self, task_id: str, security_groups: Sequence[str]) -> Allocation:
        """The task's address; the same one again when the task already has one."""
        ...

    def release(self, task_id: str) -> None:
        """Give the task's address back; a task without one is a no-op."""
        ...

    def allocations(self) -> dict[str, Allocation]:
        """Every address given out and not yet released, by task id."""
        ...

    def sweep(self) -> None:
        """Give back to the cloud what was released longer ago than its grace period."""
        ...

    def release_absent(self, running: Iterable[str]) -> list[str]:
        """Release the addresses of tasks not among `running` (after the provider's grace
        period); the task ids released."""
        ...

    def adopt(self, task_id: str, ip: str, security_groups: Sequence[str]) -> Allocation | None:
        """Take back `ip` for a running task the records do not know (they were lost), if
        this provider handed it out; None otherwise."""
        ...

    def task_slots(self) -> int | None:
        """Task addresses this host can hold, or None to keep the configured count."""
        ...

    def instance_type(self) -> str:
        """The host's instance type as the cloud says it ("" when there is none)."""
        ...

    def published(self) -> dict[str, Any]:
        """What the scheduler is told of the host's address interfaces (`AgentInfo.network`);
        empty when nothing limits addresses per interface."""
        ...


class AllocationFile:
    """A provider's allocations in a JSON file, read and written whole under an exclusive
    file lock: a restarted agent finds what its running tasks hold, and two processes
    sharing the file never hand out one address twice."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def locked(self) -> Iterator[dict[str, Allocation]]:
        """The allocations under the lock; what the block leaves in them is written."""
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                table = self._read()
                before = dict(table)
                yield table
                if table != before:
                    self._write(table)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, Allocation]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return {task: Allocation.from_json(item) for task, item in raw.items()}

    def _write(self, table: dict[str, Allocation]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v.to_json() for k, v in table.items()}, indent=1))
        os.replace(tmp, self.path)
