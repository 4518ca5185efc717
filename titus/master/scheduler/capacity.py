"""Capacity groups: reservations, usage, shares and the protection of Critical reservations.

A Critical group's reservation (instance size x count) is guaranteed: work of any other group
may only take cluster capacity that leaves every Critical group able to get the unused part
of its reservation. The check is on cluster-wide free resources of usable hosts, which is
what a reservation promises (capacity, not particular hosts); it does not model
fragmentation across hosts.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from titus.master.scheduler.filters import EPSILON
from titus.master.scheduler.hosts import FloatArray
from titus.master.scheduler.model import CRITICAL, DEFAULT_GROUP, FLEX, RESOURCES, CapacityGroup

RESERVATION_RULE = "criticalReservation"


def is_critical(group: CapacityGroup) -> bool:
    return group.tier.strip().lower() == CRITICAL.lower()


class CapacityLedger:
    """Per-group reservation and usage for one iteration, charged as tasks are placed."""

    def __init__(
        self,
        groups: Mapping[str, CapacityGroup] | None = None,
        usage: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self.groups: dict[str, CapacityGroup] = dict(groups or {})
        if DEFAULT_GROUP not in self.groups:
            self.groups[DEFAULT_GROUP] = CapacityGroup(DEFAULT_GROUP, tier=FLEX)
        self.reserved: dict[str, FloatArray] = {
            name: np.array(g.reservation(), dtype=np.float64) for name, g in self.groups.items()
        }
        self.usage: dict[str, FloatArray] = {
            name: np.zeros(len(RESOURCES), dtype=np.float64) for name in self.groups
        }
        for name, used in (usage or {}).items():
            key = self.resolve(name).name
            self.usage[key] += np.array([float(used.get(r, 0.0)) for r in RESOURCES])
        self.critical = {name for name, g in self.groups.items() if is_critical(g)}
        self.unused: dict[str, FloatArray] = {
            name: np.clip(self.reserved[name] - self.usage[name], 0.0, None)
            for name in self.critical
        }
        self.protected: FloatArray = sum(
            self.unused.values(), np.zeros(len(RESOURCES), dtype=np.float64)
        )

    def resolve(self, name: str | None) -> CapacityGroup:
        """The task's group; unset or unknown groups fall into DEFAULT."""
        group = self.groups.get(name or "")
        return group if group is not None else self.groups[DEFAULT_GROUP]

    def share(self, name: str) -> float:
        """How much of its reservation a group uses (dominant resource); inf without one, so
        groups without a reservation come after every group still below its share."""
        reserved = self.reserved[name]
        has = reserved > 0
        if not has.any():
            return float("inf")
        return float((self.usage[name][has] / reserved[has]).max())

    def admits(self, group: str, demand: FloatArray, cluster_free: FloatArray) -> str | None:
        """None if placing `demand` for `group` leaves every other Critical group's unused
        reservation (and its own, net of this task) coverable by free capacity; else the name
        of the first resource that would fall short."""
        if not self.protected.any():
            return None
        need = self.protected
        own = self.unused.get(group)
        if own is not None:
            need = need - np.minimum(own, demand)
        short = (need > 0) & (cluster_free - demand + EPSILON < need)
        if not short.any():
            return None
        return RESOURCES[int(np.argmax(short))]

    def charge(self, group: str, demand: FloatArray) -> None:
        """Count a placement against its group's usage (and unused reservation)."""
        self.usage[group] += demand
        if group in self.unused:
            before = self.unused[group]
            after = np.clip(self.reserved[group] - self.usage[group], 0.0, None)
            self.protected = np.clip(self.protected - (before - after), 0.0, None)
            self.unused[group] = after
