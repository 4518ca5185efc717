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
from titus.master.scheduler.hosts import FloatArray, repeated
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
        #: (resource index, amount) of each group's non-zero reservations, for `share`, which
        #: ranks groups after every run and is cheaper on a few floats than on arrays.
        self._reserved_parts: dict[str, list[tuple[int, float]]] = {
            name: [(i, a) for i, a in enumerate(r.tolist()) if a > 0]
            for name, r in self.reserved.items()
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
        reserved = self._reserved_parts[name]
        if not reserved:
            return float("inf")
        usage = self.usage[name].tolist()
        return max(usage[i] / amount for i, amount in reserved)

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

    def admitted(
        self, group: str, demand: FloatArray, cluster_free: FloatArray, count: int, shrinks: bool
    ) -> int:
        """How many of `count` copies of `demand` for `group`, placed one after another,
        `admits` lets through before it first refuses.

        `shrinks`: whether each placement comes out of `cluster_free` (placements on usable
        hosts do). The states replayed are bit for bit those that `charge` and
        `HostTable.assign` leave after each copy, so a batch stops exactly where placing the
        copies one by one would. Assuming `shrinks` gives a count that holds whatever hosts
        the copies go to: free capacity only falls faster that way, and the rest of the
        check does not depend on where the copies go.
        """
        if count < 1 or not self.protected.any():
            return max(count, 0)
        if self._ample(demand, cluster_free, count):
            return count
        own = self.unused.get(group)
        if own is None:
            acc = np.empty((count, len(RESOURCES)), dtype=np.float64)
            acc[0] = cluster_free
            acc[1:] = demand if shrinks else 0.0
            free = np.subtract.accumulate(acc, axis=0)
            need = self.protected
            short = ((need > 0) & (free - demand + EPSILON < need)).any(axis=1)
            return int(short.argmax()) if short.any() else count
        _, unused, protected = self._replay(group, demand, count - 1)
        free = np.empty((count, len(RESOURCES)), dtype=np.float64)
        free[0] = cluster_free
        free[1:] = demand if shrinks else 0.0
        np.subtract.accumulate(free, axis=0, out=free)
        need = protected - np.minimum(unused, demand)
        # No protection left means no positive need: `admits`' early return is implied.
        short = ((need > 0) & (free - demand + EPSILON < need)).any(axis=1)
        return int(short.argmax()) if short.any() else count

    def _ample(self, demand: FloatArray, cluster_free: FloatArray, count: int) -> bool:
        """Whether free capacity so exceeds the protected amount that `count` copies pass
        `admits` whatever rounding does: free - (count + 1) x demand stays above the
        protected amount by a margin far wider than float error. The protected amount (and
        the need `admits` derives from it) only falls as a group places, so the test on
        today's value holds for every copy (demand is not negative: usage only grows). The
        common case, where capacity is not short, then costs a few float operations instead
        of replaying each copy."""
        amounts = demand.tolist()
        if min(amounts) < 0:
            return False
        for free, need, amount in zip(
            cluster_free.tolist(), self.protected.tolist(), amounts, strict=True
        ):
            if need <= 0:
                continue
            spent = (count + 1) * amount
            margin = 1e-6 * (abs(free) + spent + need) + 1e-6
            if free - spent - need < margin:
                return False
        return True

    def _replay(
        self, group: str, demand: FloatArray, count: int
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """A protecting group's usage, unused reservation and the total protected amount
        after 0, 1, ..., `count` further placements of `demand` (rows), computed as `charge`
        computes them one placement after the other."""
        rows = count + 1
        usage = np.empty((rows, len(RESOURCES)), dtype=np.float64)
        usage[0] = self.usage[group]
        usage[1:] = demand
        np.add.accumulate(usage, axis=0, out=usage)
        unused = np.clip(self.reserved[group] - usage, 0.0, None)
        unused[0] = self.unused[group]
        protected = np.empty_like(usage)
        protected[0] = self.protected
        protected[1:] = unused[:-1] - unused[1:]
        np.subtract.accumulate(protected, axis=0, out=protected)
        if (protected < 0).any():
            # `charge` clips at zero after each placement; replay it step by step.
            for i in range(1, rows):
                protected[i] = np.clip(protected[i - 1] - (unused[i - 1] - unused[i]), 0.0, None)
        return usage, unused, protected

    def charge(self, group: str, demand: FloatArray, count: int = 1) -> None:
        """Count `count` placements against the group's usage (and unused reservation)."""
        if count < 1:
            return
        if group not in self.unused:
            if count == 1:
                self.usage[group] += demand
            else:
                self.usage[group] = repeated(np.add, self.usage[group], demand, count)
            return
        if count == 1:
            self.usage[group] += demand
            before = self.unused[group]
            after = np.clip(self.reserved[group] - self.usage[group], 0.0, None)
            self.protected = np.clip(self.protected - (before - after), 0.0, None)
            self.unused[group] = after
            return
        usage, unused, protected = self._replay(group, demand, count)
        self.usage[group] = usage[-1]
        self.unused[group] = unused[-1]
        self.protected = protected[-1]
