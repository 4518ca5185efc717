"""Scorers: how good is this host for this task, in 0..1, over vectors of hosts.

Three kinds, combined as Fenzo does (weights in `SchedulerConfig`):
- "fitness": bin packing and balance, or spreading; the applicable ones are averaged, each
  counted `weight` times.
- "soft": soft constraints; their mean is the soft score (1 when the task has none).
- "resource": the resource-set fit (ENIs of the task's security groups, enis.py); their
  mean is the resource score (1 when none applies).
Scopes mean the same as for filters (see `filters.py`).

A "host"-scoped scorer may also state its `trajectory`: its scores for the next copies of
a task on some hosts, as if they were placed there one after another. With a trajectory
from every changing scorer, the engine places a run of identical tasks hosts at a time even
when a placement lowers a host's score (balance may), by merging the hosts' trajectories
in the order single placements would follow them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from titus.master.scheduler.context import TaskContext
from titus.master.scheduler.filters import (
    ConstraintFilter,
    Scope,
    ZoneBalanceFilter,
    constraint_filters,
)
from titus.master.scheduler.hosts import ALL, FloatArray, HostTable, Index, IntArray, share_gap
from titus.master.scheduler.model import SchedulerConfig

Kind = Literal["fitness", "soft", "resource"]


class Scorer:
    """Base of scorer plugins."""

    name: str = ""
    kind: Kind = "fitness"
    scope: Scope = "host"
    #: True when placing a copy of the task on a host never lowers that host's score for the
    #: next copy. With only such "host"-scoped scorers, a host chosen for a task stays the
    #: choice for the next copy of it until a filter refuses, which lets the engine give a
    #: host all the copies of a run it takes at once. False (the default) is always safe.
    monotone: bool = False
    #: How many times the scorer counts in the mean of its kind (fitness or soft).
    weight: float = 1.0

    def applies(self, ctx: TaskContext) -> bool:
        return True

    def score(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> FloatArray:
        raise NotImplementedError

    def score_row(self, table: HostTable, ctx: TaskContext, row: int) -> float:
        """`score` of one host, which the engine asks for a host whose row changed. A
        scorer may compute it with Python floats (cheaper than arrays of one element):
        the same IEEE operations in the same order give the same bits."""
        return float(self.score(table, ctx, slice(row, row + 1))[0])

    def trajectory(
        self, table: HostTable, ctx: TaskContext, rows: IntArray, copies: int
    ) -> FloatArray | None:
        """Scores of each host of `rows` for the next copy of the task after 0, 1, ...,
        `copies` - 1 copies of it were placed there one after another (each recorded by
        `HostTable.assign`), shape (copies, len(rows)). It must equal `score` on the states
        those placements leave, bit for bit: compute it from `HostTable.free_after` and
        `HostTable.packed_after`, which replay `assign`'s arithmetic. None (the default):
        not stated; runs it applies to are then placed one task at a time unless it is
        `monotone`. Only "host"-scoped scorers are asked."""
        return None


def packing(table: HostTable, ctx: TaskContext, idx: Index = ALL) -> FloatArray:
    """(used + assigned this iteration + task) / total, averaged over cpu, memory, network
    (resources the host has none of are left out of the average)."""
    added = table.pack_share(ctx.pack_demand)[idx]
    # One fresh vector, divided in place (the same arithmetic as a / b into a new one).
    result: FloatArray = table.packed[idx] + added
    np.divide(result, table.pack_count[idx], out=result)
    return result


def packing_row(table: HostTable, ctx: TaskContext, row: int) -> float:
    """`packing` of one host in Python floats (the same operations)."""
    added = float(table.pack_share(ctx.pack_demand)[row])
    return (float(table.packed[row]) + added) / float(table.pack_count[row])


def packing_after(table: HostTable, ctx: TaskContext, rows: IntArray, copies: int) -> FloatArray:
    """`packing` of `rows` after 0, 1, ..., `copies` - 1 copies of the task placed on each
    (shape (copies, len(rows))), with the arithmetic of `packing` on those states."""
    added = table.pack_share(ctx.pack_demand)[rows]
    packed = table.packed_after(rows, added, copies)
    result: FloatArray = (packed + added) / table.pack_count[rows]
    return result


class BinPacking(Scorer):
    """Fill hosts before starting new ones, for batch and Flex-tier work: leaves whole hosts
    free for big tasks and lets idle hosts be scaled down."""

    name = "binPacking"
    #: A placement only adds to the host's used resources.
    monotone = True

    def applies(self, ctx: TaskContext) -> bool:
        return not ctx.spread

    def score(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> FloatArray:
        return packing(table, ctx, idx)

    def score_row(self, table: HostTable, ctx: TaskContext, row: int) -> float:
        return packing_row(table, ctx, row)

    def trajectory(
        self, table: HostTable, ctx: TaskContext, rows: IntArray, copies: int
    ) -> FloatArray:
        return packing_after(table, ctx, rows, copies)


#: Columns the balance scorer compares (cpu, memory), in `HostTable.free` as in
#: `HostTable.pack_inverse`: the two resources whose leftovers strand each other (a host
#: with free memory and no free cpu takes nothing).
BALANCE_COLUMNS = slice(0, 2)


def balance_gain(gap: FloatArray, base: FloatArray, step: FloatArray) -> FloatArray:
    """How much closer placing a task brings a host's free cpu and free memory, each as a
    share of the host's total: |cpu share - memory share| before minus after, mapped from
    -1..1 to 0..1 (0.5: no change). `gap` is the host's cpu share minus memory share
    (`HostTable.gap`, or a trajectory's), `base` 1 + |gap|, `step` what the task moves
    the gap by (`HostTable.gap_step`): the same elementwise arithmetic for a score and a
    trajectory, so both give the same bits."""
    after = np.subtract(gap, step)
    np.abs(after, out=after)
    np.subtract(base, after, out=after)
    after *= 0.5
    return after


class Balance(Scorer):
    """Put a task where it evens out the host's free cpu and memory: memory-heavy work on a
    host whose cpu is used more than its memory, cpu-heavy work on the reverse, for the
    same tasks as bin packing.

    Packing alone fills the fullest host with whatever fits; with tasks of mixed shapes,
    hosts then run out of cpu with memory left or the reverse, and tasks wait that the
    cluster has room for in total. This scorer is the change in |free cpu share - free
    memory share| the placement makes. It is the same for every copy of a task as long as
    the host's imbalance keeps its sign, so bin packing still decides between hosts that
    the task unbalances alike (it still fills one host before the next, and a host with
    just the room the task needs still beats an empty one). Once the host passes its
    balance point further copies gain less, so it is not monotone; its trajectory lets the
    engine place runs hosts at a time all the same. Counted `weight` times against bin
    packing's once."""

    name = "balance"

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def applies(self, ctx: TaskContext) -> bool:
        return not ctx.spread and self.weight > 0

    def score(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> FloatArray:
        return balance_gain(table.gap[idx], table.gap_base[idx], table.gap_step(ctx.demand)[idx])

    def score_row(self, table: HostTable, ctx: TaskContext, row: int) -> float:
        # `balance_gain`'s operations, in its order.
        after = abs(float(table.gap[row]) - float(table.gap_step(ctx.demand)[row]))
        return (float(table.gap_base[row]) - after) * 0.5

    def trajectory(
        self, table: HostTable, ctx: TaskContext, rows: IntArray, copies: int
    ) -> FloatArray:
        free = table.free_after(rows, ctx.demand, copies, BALANCE_COLUMNS)
        gap = share_gap(free[:, 0, :], free[:, 1, :], table.pack_inverse.take(rows, axis=1))
        base = 1.0 + np.abs(gap)
        return balance_gain(gap, base, table.gap_step(ctx.demand)[rows])


class Spreading(Scorer):
    """1 - packing, for Critical-tier services: the emptiest host first, so one host's loss
    or noisy neighbour hurts as few critical instances as possible."""

    name = "spreading"

    def applies(self, ctx: TaskContext) -> bool:
        return ctx.spread

    def score(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> FloatArray:
        result = packing(table, ctx, idx)
        np.subtract(1.0, result, out=result)
        return result

    def score_row(self, table: HostTable, ctx: TaskContext, row: int) -> float:
        return 1.0 - packing_row(table, ctx, row)

    def trajectory(
        self, table: HostTable, ctx: TaskContext, rows: IntArray, copies: int
    ) -> FloatArray:
        """1 - bin packing's trajectory, the arithmetic of `score`: a run of a Critical
        service is merged over the emptiest hosts instead of placed a task at a time."""
        result: FloatArray = 1.0 - packing_after(table, ctx, rows, copies)
        return result


class SoftConstraint(Scorer):
    """A hard-constraint plugin used softly: 1 where it would accept the host, else 0."""

    kind: Kind = "soft"

    def __init__(self, rule: ConstraintFilter) -> None:
        self.rule = rule
        self.name = rule.name
        self.scope = rule.scope

    def applies(self, ctx: TaskContext) -> bool:
        return self.name in ctx.soft

    def score(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> FloatArray:
        ok = self.rule.check(table, ctx, ctx.soft[self.name], idx)
        return ok.astype(np.float64)

    def trajectory(
        self, table: HostTable, ctx: TaskContext, rows: IntArray, copies: int
    ) -> FloatArray | None:
        """1 for the copies the rule's bound admits, 0 after (soft uniqueHost: 1 for the
        first copy on a host without the job, then 0), so such runs are merged too."""
        if self.scope != "host":
            return None
        bound = self.rule.check_bound(table, ctx, ctx.soft[self.name], rows, copies)
        if bound is None:
            return None
        admitted: FloatArray = (np.arange(copies)[:, None] < bound).astype(np.float64)
        if admitted.shape[1] != len(rows):
            admitted = np.repeat(admitted, len(rows), axis=1)
        return admitted


class SoftZoneBalance(Scorer):
    """Zone balance used softly, graded: 1 / (1 + count in the zone - count in the least-used
    zone), so the emptiest zones score 1, one above 0.5, and so on; zones without usable
    hosts score 0."""

    name = "zoneBalance"
    kind: Kind = "soft"
    scope: Scope = "volatile"

    def applies(self, ctx: TaskContext) -> bool:
        return self.name in ctx.soft

    def score(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> FloatArray:
        counts = table.job_zones(ctx.task.job_id)
        zones = table.balance_zones
        if not zones.any():
            return np.zeros(table.size, dtype=np.float64)[idx]
        balanced = counts[zones]
        low = balanced.min()
        # Zones without usable hosts score 0 (they may hold fewer tasks than `low`).
        per_zone = np.zeros(counts.shape[0], dtype=np.float64)
        per_zone[zones] = 1.0 / (1.0 + balanced - low)
        result: FloatArray = per_zone[table.zone[idx]]
        return result


class SoftExclusiveHost(Scorer):
    """exclusiveHost used softly: prefer empty hosts."""

    name = "exclusiveHost"
    kind: Kind = "soft"

    def applies(self, ctx: TaskContext) -> bool:
        return self.name in ctx.soft

    def score(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> FloatArray:
        empty = (table.task_count[idx] == 0) & ~table.held[idx]
        return empty.astype(np.float64)


def default_scorers(config: SchedulerConfig | None = None) -> list[Scorer]:
    from titus.master.scheduler.enis import EniAffinity  # a plugin module built on this one

    config = config or SchedulerConfig()
    soft: list[Scorer] = [
        SoftZoneBalance() if isinstance(rule, ZoneBalanceFilter) else SoftConstraint(rule)
        for rule in constraint_filters()
    ]
    return [
        BinPacking(),
        Balance(config.balance_weight),
        Spreading(),
        *soft,
        SoftExclusiveHost(),
        EniAffinity(),
    ]
