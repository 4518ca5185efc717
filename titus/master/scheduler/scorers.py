"""Scorers: how good is this host for this task, in 0..1, over vectors of hosts.

Three kinds, combined as Fenzo does (weights in `SchedulerConfig`):
- "fitness": bin packing or spreading; the applicable ones are averaged.
- "soft": soft constraints; their mean is the soft score (1 when the task has none).
- "resource": the resource-set fit (ENIs of the task's security groups, enis.py); their
  mean is the resource score (1 when none applies).
Scopes mean the same as for filters (see `filters.py`).
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
from titus.master.scheduler.hosts import ALL, FloatArray, HostTable, Index

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

    def applies(self, ctx: TaskContext) -> bool:
        return True

    def score(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> FloatArray:
        raise NotImplementedError


def packing(table: HostTable, ctx: TaskContext, idx: Index = ALL) -> FloatArray:
    """(used + assigned this iteration + task) / total, averaged over cpu, memory, network
    (resources the host has none of are left out of the average)."""
    added = table.pack_share(ctx.pack_demand)[idx]
    result: FloatArray = (table.packed[idx] + added) / table.pack_count[idx]
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


class Spreading(Scorer):
    """1 - packing, for Critical-tier services: the emptiest host first, so one host's loss
    or noisy neighbour hurts as few critical instances as possible."""

    name = "spreading"

    def applies(self, ctx: TaskContext) -> bool:
        return ctx.spread

    def score(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> FloatArray:
        result: FloatArray = 1.0 - packing(table, ctx, idx)
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


def default_scorers() -> list[Scorer]:
    from titus.master.scheduler.enis import EniAffinity  # a plugin module built on this one

    soft: list[Scorer] = [
        SoftZoneBalance() if isinstance(rule, ZoneBalanceFilter) else SoftConstraint(rule)
        for rule in constraint_filters()
    ]
    return [BinPacking(), Spreading(), *soft, SoftExclusiveHost(), EniAffinity()]
