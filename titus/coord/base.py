"""The coordination protocol: leader election, an agent registry and wake-ups.

Two implementations: `local.py` for one process (the all-in-one platform) and
`zookeeper.py` (kazoo) when api, masters and agents run as separate processes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class AgentInfo:
    """What an agent publishes about itself; the master sees the cluster through these."""

    id: str
    address: str
    resources: dict[str, float]
    attributes: dict[str, str] = field(default_factory=dict)
    healthy: bool = True
    health_reasons: list[str] = field(default_factory=list)
    #: The host's ENIs when its addresses come from them (vpc networking): instance type
    #: limits and ENIs per security-group set, `{"maxEnis", "ipsPerEni", "sets": {key:
    #: [enis, addresses in use]}}`; empty otherwise. The scheduler counts ENIs from it.
    network: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = {
            "id": self.id,
            "address": self.address,
            "resources": self.resources,
            "attributes": self.attributes,
            "healthy": self.healthy,
            "healthReasons": self.health_reasons,
        }
        if self.network:
            data["network"] = self.network
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentInfo:
        return cls(
            id=data["id"],
            address=data["address"],
            resources={k: float(v) for k, v in data["resources"].items()},
            attributes=dict(data.get("attributes", {})),
            healthy=bool(data.get("healthy", True)),
            health_reasons=list(data.get("healthReasons", [])),
            network=dict(data.get("network") or {}),
        )


class Leadership:
    """Held by the elected master. `epoch` grows with every election and fences writes.

    `active` is cleared while the coordination session is suspended (the leader must not
    launch or kill then); `lost` is set once leadership is gone for good.
    """

    def __init__(self, epoch: int):
        self.epoch = epoch
        self.active = threading.Event()
        self.active.set()
        self.lost = threading.Event()

    @property
    def is_leader(self) -> bool:
        return not self.lost.is_set()

    def can_act(self) -> bool:
        return self.active.is_set() and not self.lost.is_set()


class Coordinator(Protocol):
    def campaign(self, candidate_id: str, address: str, stop: threading.Event) -> Leadership | None:
        """Block until elected (returns the leadership) or `stop` is set (returns None)."""
        ...

    def resign(self, leadership: Leadership) -> None: ...

    def leader_address(self) -> str | None: ...

    def register_agent(self, info: AgentInfo) -> None:
        """Publish or refresh an agent; it disappears when its process or session dies."""
        ...

    def unregister_agent(self, agent_id: str) -> None: ...

    def agents(self) -> list[AgentInfo]: ...

    def wake(self) -> None:
        """Nudge the master: new work was written."""
        ...

    def wait_wake(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a wake; True if woken."""
        ...

    def close(self) -> None: ...
