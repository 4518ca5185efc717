"""ENIs as a named resource keyed by security-group set: the filter and the scorer.

A task's address is a secondary IP on an ENI of its security-group set, and a host has
a fixed number of ENIs, each with a fixed number of addresses (its instance type's
limits). So a task fits a host when an ENI of its set there has a free address, or when
the host has a free ENI slot for a new ENI of its set; `ipSlots` alone (addresses in
total) would let one set's tasks take ENI slots another set needs. Hosts that report no
ENI limits (`HostState.enis` None) are left to `ipSlots`.

What a host holds per set comes from `HostState.enis`; what this iteration places is
recorded by `record` (the engine calls it after every placement of a task the filter
applies to), so a run of placements never over-commits an ENI or a slot. The state lives
beside the iteration's `HostTable`, keyed by it, and goes with it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np

from titus.master.scheduler.context import TaskContext
from titus.master.scheduler.filters import Filter, Scope
from titus.master.scheduler.hosts import ALL, BoolArray, FloatArray, HostTable, Index, IntArray
from titus.master.scheduler.scorers import Kind, Scorer

#: Stands for "no limit" on hosts without ENI limits (more than any run of placements).
_UNLIMITED = np.iinfo(np.int64).max // 4


@dataclass
class _Enis:
    """The ENI counts of one iteration's hosts, as placements use them up."""

    limited: BoolArray
    #: Whether any host has limits: without, the rule answers without touching the hosts.
    any_limited: bool
    per_eni: IntArray
    #: ENI slots with no ENI of any set (or one without a task address in use).
    free_slots: IntArray
    #: Per set key: free addresses on the set's ENIs, and how many ENIs the set holds.
    room: dict[str, IntArray] = field(default_factory=dict)
    held: dict[str, IntArray] = field(default_factory=dict)


class EniState:
    """`_Enis` per scheduling iteration, made from the table's hosts when first asked."""

    def __init__(self) -> None:
        self._tables: weakref.WeakKeyDictionary[HostTable, _Enis] = weakref.WeakKeyDictionary()

    def of(self, table: HostTable) -> _Enis:
        state = self._tables.get(table)
        if state is None:
            state = self._tables[table] = self._build(table)
        return state

    @staticmethod
    def _build(table: HostTable) -> _Enis:
        n = table.size
        limited = np.zeros(n, dtype=bool)
        per_eni = np.zeros(n, dtype=np.int64)
        free = np.full(n, _UNLIMITED, dtype=np.int64)
        for row, host in enumerate(table.hosts):
            enis = host.enis
            if enis is None:
                continue
            limited[row] = True
            per_eni[row] = max(enis.ips_per_eni, 0)
            taken = sum(count for count, used in enis.sets.values() if used > 0)
            free[row] = max(enis.max_enis - taken, 0)
        return _Enis(limited, bool(limited.any()), per_eni, free)

    def room(self, table: HostTable, key: str) -> tuple[IntArray, IntArray]:
        """(free addresses on ENIs of set `key`, ENIs of the set) per host."""
        state = self.of(table)
        room = state.room.get(key)
        if room is None:
            room = np.zeros(table.size, dtype=np.int64)
            held = np.zeros(table.size, dtype=np.int64)
            for row, host in enumerate(table.hosts):
                enis = host.enis
                if enis is None:
                    room[row] = _UNLIMITED
                    continue
                count, used = enis.sets.get(key, (0, 0))
                if used > 0:
                    held[row] = count
                    room[row] = max(count * max(enis.ips_per_eni, 0) - used, 0)
            state.room[key] = room
            state.held[key] = held
        return room, state.held[key]

    def capacity(self, table: HostTable, key: str, idx: Index = ALL) -> IntArray:
        """Addresses of set `key` each host can still give: free ones on the set's ENIs,
        then whole new ENIs in the free slots."""
        state = self.of(table)
        room, _ = self.room(table, key)
        total: IntArray = room[idx] + state.free_slots[idx] * state.per_eni[idx]
        return np.where(state.limited[idx], total, _UNLIMITED)

    def record(self, table: HostTable, key: str, rows: list[int], counts: list[int]) -> None:
        """`counts[i]` tasks of set `key` placed on `rows[i]`: free addresses of the set's
        ENIs first, then new ENIs (as the agent does)."""
        state = self.of(table)
        if not state.any_limited:
            return
        room, held = self.room(table, key)
        for row, count in zip(rows, counts, strict=True):
            if not state.limited[row]:
                continue
            on_existing = min(int(room[row]), count)
            rest = count - on_existing
            room[row] -= on_existing
            if rest:
                per = max(int(state.per_eni[row]), 1)
                new = -(-rest // per)
                state.free_slots[row] -= new
                held[row] += new
                room[row] += new * per - rest


#: One state per process: the filter and the scorer read the same counts.
ENIS = EniState()


class EniFilter(Filter):
    """A task taking an address fits a host when an ENI of its security-group set there
    has a free address or a free ENI slot is left for one (instance type limits)."""

    name = "eniPerSecurityGroups"
    scope: Scope = "host"
    records = True

    def __init__(self, state: EniState = ENIS) -> None:
        self.state = state

    def applies(self, ctx: TaskContext) -> bool:
        return ctx.task.ip_slots > 0

    def accept(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> BoolArray:
        if not self.state.of(table).any_limited:
            return np.ones(table.size, dtype=bool)[idx]
        ok: BoolArray = self.state.capacity(table, ctx.task.security_groups, idx) > 0
        return ok

    def binds(self, table: HostTable, ctx: TaskContext) -> bool:
        return self.state.of(table).any_limited

    def capacity(
        self, table: HostTable, ctx: TaskContext, rows: IntArray, limit: int
    ) -> IntArray | int:
        if not self.state.of(table).any_limited:
            return limit
        left = self.state.capacity(table, ctx.task.security_groups, rows)
        result: IntArray = np.minimum(left, limit)
        return result

    def record(
        self, table: HostTable, ctx: TaskContext, rows: list[int], counts: list[int]
    ) -> None:
        self.state.record(table, ctx.task.security_groups, rows, counts)

    def explain(self, table: HostTable, ctx: TaskContext, refused: BoolArray) -> str:
        groups = ctx.task.security_groups or "default"
        return f"no ENI of security groups [{groups}] with a free address and no free ENI slot"


class EniAffinity(Scorer):
    """Prefer hosts that already hold an ENI of the task's security-group set: its
    address then needs no new ENI, and ENI slots elsewhere stay free for other sets.
    Fenzo's resource-set fit: 1 where the set's ENI is there (or the host has no ENI
    limits), 0 where one would be made. A placement never takes a set's ENI away, so the
    score of a chosen host never drops (monotone)."""

    name = "eniAffinity"
    kind: Kind = "resource"
    scope: Scope = "host"
    monotone = True

    def __init__(self, state: EniState = ENIS) -> None:
        self.state = state

    def applies(self, ctx: TaskContext) -> bool:
        return ctx.task.ip_slots > 0 and bool(ctx.task.security_groups)

    def score(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> FloatArray:
        if not self.state.of(table).any_limited:
            return np.ones(table.size, dtype=np.float64)[idx]
        _, held = self.state.room(table, ctx.task.security_groups)
        limited = self.state.of(table).limited[idx]
        result: FloatArray = np.where(limited, held[idx] > 0, True).astype(np.float64)
        return result
