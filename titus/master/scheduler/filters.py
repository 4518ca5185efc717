"""Filters: can this host take this task? One named plugin per rule, over vectors of hosts.

A filter answers for a set of host rows at once (`idx`: all hosts or some rows) with a boolean
array. Its `scope` tells the engine when an answer can be reused within an iteration:

- "static": depends on nothing an assignment changes (health, attributes): computed once
  per task shape.
- "host": depends on the host's own row (free resources, task counts): recomputed only for
  rows changed by assignments since last time.
- "volatile": depends on other hosts too (zone balance): recomputed at every placement.

A filter may also state its own bound with `capacity`: how many copies of the task each of
some hosts takes, one after another, before the rule refuses it. With a bound from every
changing rule, the engine places a run of identical tasks hosts at a time instead of a task
at a time, and knows its cached answer for those hosts afterwards without re-running every
plugin. A rule without `capacity` is honoured all the same; the runs it applies to are
placed one by one.

A new rule is a new filter class added to `default_filters`, never an `if` in the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from titus.master.scheduler.context import KNOWN_CONSTRAINTS, TaskContext
from titus.master.scheduler.hosts import (
    ALL,
    EPSILON,
    HOST_ID,
    ZONE_ATTRIBUTE,
    BoolArray,
    HostTable,
    Index,
    IntArray,
    columns,
)
from titus.master.scheduler.model import RESOURCES, SchedulerConfig

Scope = Literal["static", "host", "volatile"]


class Filter:
    """Base of filter plugins."""

    name: str = ""
    scope: Scope = "static"

    def applies(self, ctx: TaskContext) -> bool:
        """Whether the rule concerns this task at all (skipped otherwise)."""
        return True

    def accept(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> BoolArray:
        raise NotImplementedError

    def accepts_row(self, table: HostTable, ctx: TaskContext, row: int) -> bool:
        """`accept` for one host, which the engine asks for the host a run chose last. A
        rule may answer it with Python scalars (cheaper than arrays of one element); the
        answer must be `accept`'s."""
        return bool(self.accept(table, ctx, slice(row, row + 1))[0])

    def binds(self, table: HostTable, ctx: TaskContext) -> bool:
        """False when the rule accepts every host as the table stands (no host at a cap,
        none held), told without touching the hosts: the engine then skips `accept` when
        it refreshes a cached answer. True (the default) is always safe."""
        return True

    def capacity(
        self, table: HostTable, ctx: TaskContext, rows: IntArray, limit: int
    ) -> IntArray | int | None:
        """For each host of `rows`: how many copies of the task it accepts by this rule when
        they are placed on it one after another (each recorded by `HostTable.assign` before
        the next is checked), i.e. the copies before the first refusal, at most `limit`. It
        must agree exactly with `accept` on the states those placements leave. A plain int
        is the same bound for every host of `rows` (a rule that cannot bind here says so
        without touching the hosts). None: the rule does not say (the default), and runs
        it applies to are placed one task at a time. Only "host"-scoped rules are asked:
        "static" ones cannot change within an iteration and "volatile" ones depend on
        other hosts."""
        return None

    def explain(self, table: HostTable, ctx: TaskContext, refused: BoolArray) -> str:
        """A short detail for the pending summary, given the hosts this filter refused."""
        return ""

    #: Whether the engine calls `record` after placements (set by rules that override it).
    records: bool = False

    def record(
        self, table: HostTable, ctx: TaskContext, rows: list[int], counts: list[int]
    ) -> None:
        """`counts[i]` copies of the task were placed on `rows[i]` (recorded in `table`
        already): for a rule that counts something the table does not (ENIs per
        security-group set). Called only when `records` is True."""


class HealthFilter(Filter):
    """Unhealthy hosts (failing health checks) get no new work."""

    name = "health"

    def accept(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> BoolArray:
        return table.healthy[idx]


class SchedulableFilter(Filter):
    """Quarantined hosts and hosts of a phased-out instance group get no new work."""

    name = "schedulable"

    def accept(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> BoolArray:
        return table.schedulable[idx]


class ExclusiveHostFilter(Filter):
    """A host held exclusively by a job takes nobody else; an exclusive task needs an empty
    host. Always applies, because the first half protects the holder from every other task."""

    name = "exclusiveHost"
    scope: Scope = "host"

    def accept(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> BoolArray:
        ok: BoolArray = ~table.held[idx]
        if ctx.exclusive:
            ok = ok & (table.task_count[idx] == 0) & (table.launching[idx] == 0)
        return ok

    def binds(self, table: HostTable, ctx: TaskContext) -> bool:
        return ctx.exclusive or table.any_held

    def capacity(
        self, table: HostTable, ctx: TaskContext, rows: IntArray, limit: int
    ) -> IntArray | int:
        if not ctx.exclusive and not table.any_held:
            return limit
        free: BoolArray = ~table.held[rows]
        if ctx.exclusive:
            # The first copy takes the host and holds it, which refuses the next one.
            free &= (table.task_count[rows] == 0) & (table.launching[rows] == 0)
            return free * min(1, limit)
        return free * limit


class MaxTasksFilter(Filter):
    """A cap on tasks per host, whatever its size (kernel, ENI and daemon limits)."""

    name = "maxTasksPerHost"
    scope: Scope = "host"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def accept(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> BoolArray:
        return table.task_count[idx] < self.limit

    def binds(self, table: HostTable, ctx: TaskContext) -> bool:
        return table.most_tasks >= self.limit

    def capacity(
        self, table: HostTable, ctx: TaskContext, rows: IntArray, limit: int
    ) -> IntArray | int:
        if self.limit - table.most_tasks >= limit:
            return limit
        left: IntArray = np.minimum(self.limit - table.task_count[rows], limit)
        return np.maximum(left, 0, out=left)


class MaxLaunchingFilter(Filter):
    """At most N tasks starting at once on a host, this iteration's placements included, so
    one host is not flooded with image pulls and network setup at the same moment."""

    name = "maxLaunchingPerHost"
    scope: Scope = "host"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def accept(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> BoolArray:
        return table.launching[idx] < self.limit

    def binds(self, table: HostTable, ctx: TaskContext) -> bool:
        return table.most_launching >= self.limit

    def capacity(
        self, table: HostTable, ctx: TaskContext, rows: IntArray, limit: int
    ) -> IntArray | int:
        if self.limit - table.most_launching >= limit:
            return limit
        left: IntArray = np.minimum(self.limit - table.launching[rows], limit)
        return np.maximum(left, 0, out=left)


class ResourcesFilter(Filter):
    """used + assigned this iteration + task <= total, for every resource."""

    name = "resources"
    scope: Scope = "host"

    def accept(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> BoolArray:
        fits = columns(table.slack, idx) >= ctx.demand[:, None]
        ok: BoolArray = np.logical_and.reduce(fits, axis=0)
        return ok

    def accepts_row(self, table: HostTable, ctx: TaskContext, row: int) -> bool:
        slack = table.slack[:, row].tolist()
        demand = ctx.demand_values or tuple(ctx.demand.tolist())
        return all(s >= d for s, d in zip(slack, demand, strict=True))

    def capacity(self, table: HostTable, ctx: TaskContext, rows: IntArray, limit: int) -> IntArray:
        # Free resources after 0, 1, ... copies, subtracted copy by copy in float64 as
        # `assign` does (not divided): the count must match what `accept` says after that
        # many placements, rounding included. Division only says how many copies to replay
        # (whole copies that fit, plus one for rounding); more are replayed only while some
        # host still fits them all.
        demand = ctx.demand[:, None]
        start = table.free.take(rows, axis=1)
        values = ctx.demand.tolist()
        falling = min(values) >= 0
        depth = min(limit, 4)
        if falling and max(values) > 0 and depth < limit:
            # As many as division says fit (plus one for rounding, plus one to see the
            # refusal): one replay for most runs instead of a short one and a long one.
            needed = ctx.demand > 0
            whole = np.floor((start[needed] + EPSILON) / demand[needed]).min(axis=0).max()
            depth = int(min(limit, max(whole, 0.0) + 2))
        while True:
            free = np.empty((depth, len(RESOURCES), len(rows)), dtype=np.float64)
            free[0] = start
            free[1:] = demand
            np.subtract.accumulate(free, axis=0, out=free)
            # As `accept` on each state (the replayed values are not needed afterwards).
            free += EPSILON
            fits = np.logical_and.reduce(free >= demand, axis=1)
            count: IntArray
            if falling:
                count = fits.sum(axis=0)
            else:
                every = fits.all(axis=0)
                count = np.where(every, depth, fits.argmin(axis=0))
            if depth >= limit or int(count.max()) < depth:
                return count
            # Some host fits them all: replay as many as division says fit (plus one for
            # rounding), and at least twice as many, so this ends.
            grown = limit
            if falling and max(values) > 0:
                needed = ctx.demand > 0
                whole = np.floor((start[needed] + EPSILON) / demand[needed]).min(axis=0).max()
                grown = int(min(limit, max(whole, 0.0) + 2))
            depth = min(limit, max(grown, 2 * depth))

    def explain(self, table: HostTable, ctx: TaskContext, refused: BoolArray) -> str:
        short = (table.slack[:, refused] < ctx.demand[:, None]).sum(axis=1)
        if not short.any():
            return ""
        return RESOURCES[int(np.argmax(short))]


class ConstraintFilter(Filter):
    """A hard constraint: applies when the task names it; `check` is shared with the soft
    variant (`SoftConstraint`) so a constraint means the same whichever way it is used."""

    def applies(self, ctx: TaskContext) -> bool:
        return self.name in ctx.hard

    def accept(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> BoolArray:
        return self.check(table, ctx, ctx.hard[self.name], idx)

    def check(self, table: HostTable, ctx: TaskContext, value: str, idx: Index) -> BoolArray:
        raise NotImplementedError

    def capacity(
        self, table: HostTable, ctx: TaskContext, rows: IntArray, limit: int
    ) -> IntArray | int | None:
        return self.check_bound(table, ctx, ctx.hard[self.name], rows, limit)

    def check_bound(
        self, table: HostTable, ctx: TaskContext, value: str, rows: IntArray, limit: int
    ) -> IntArray | int | None:
        """`capacity` for `check` with `value`: shared with the soft variant, whose
        trajectory it gives (see `SoftConstraint`). None: not stated."""
        return None


class UniqueHostFilter(ConstraintFilter):
    """No other task of the same job on the host."""

    name = "uniqueHost"
    scope: Scope = "host"

    def check(self, table: HostTable, ctx: TaskContext, value: str, idx: Index) -> BoolArray:
        return table.job_hosts(ctx.task.job_id)[idx] == 0

    def check_bound(
        self, table: HostTable, ctx: TaskContext, value: str, rows: IntArray, limit: int
    ) -> IntArray:
        # A copy of the job on the host refuses the next one.
        result: IntArray = (table.job_hosts(ctx.task.job_id)[rows] == 0) * min(1, limit)
        return result


class AttributeFilter(ConstraintFilter):
    """Host attribute equals the constraint's value (any of several attribute names)."""

    def __init__(self, name: str, attributes: Sequence[str]) -> None:
        self.name = name
        self.attributes = tuple(attributes)

    def check(self, table: HostTable, ctx: TaskContext, value: str, idx: Index) -> BoolArray:
        return table.attribute_equals(self.attributes, value)[idx]


class ActiveHostFilter(ConstraintFilter):
    """Only hosts of active (schedulable) instance groups. The lifecycle filter already does
    this for everyone; the constraint exists because Titus jobs send it."""

    name = "activeHost"

    def check(self, table: HostTable, ctx: TaskContext, value: str, idx: Index) -> BoolArray:
        return table.schedulable[idx]


class ZoneBalanceFilter(ConstraintFilter):
    """The job's task count in the chosen zone must not exceed the least-used zone's count
    plus one after placement: only zones at the minimum may take the next task. Zones are
    those with a usable host, so an empty or drained zone does not block the job."""

    name = "zoneBalance"
    scope: Scope = "volatile"

    def allowed_zones(self, table: HostTable, ctx: TaskContext) -> BoolArray:
        counts = table.job_zones(ctx.task.job_id)
        zones = table.balance_zones
        if not zones.any():
            return zones
        low = counts[zones].min()
        allowed: BoolArray = zones & (counts <= low)
        return allowed

    def check(self, table: HostTable, ctx: TaskContext, value: str, idx: Index) -> BoolArray:
        return self.allowed_zones(table, ctx)[table.zone[idx]]


class UnknownConstraintFilter(Filter):
    """A hard constraint the scheduler does not know cannot be honoured, so it refuses every
    host rather than silently ignoring what the job demanded."""

    name = "unknownConstraint"

    def applies(self, ctx: TaskContext) -> bool:
        return any(name not in _CANONICAL for name in ctx.hard)

    def accept(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> BoolArray:
        return np.zeros(table.size, dtype=bool)[idx]

    def explain(self, table: HostTable, ctx: TaskContext, refused: BoolArray) -> str:
        return ", ".join(sorted(name for name in ctx.hard if name not in _CANONICAL))


_CANONICAL = frozenset(KNOWN_CONSTRAINTS.values())


def constraint_filters() -> list[ConstraintFilter]:
    """The hard-constraint plugins, which also serve as soft constraints."""
    return [*_attribute_constraints(), UniqueHostFilter(), ZoneBalanceFilter()]


def _attribute_constraints() -> list[ConstraintFilter]:
    return [
        AttributeFilter("availabilityZone", (ZONE_ATTRIBUTE,)),
        AttributeFilter("machineId", ("instanceId", "host", HOST_ID)),
        AttributeFilter("machineGroup", ("machineGroup",)),
        AttributeFilter("machineType", ("itype",)),
        ActiveHostFilter(),
    ]


def default_filters(config: SchedulerConfig) -> list[Filter]:
    """The pipeline in order. Order matters only for the pending summary (a host is counted
    under the first filter refusing it): what the host is comes first (health, lifecycle,
    attributes), then how full it is, then where the job already runs."""
    from titus.master.scheduler.enis import EniFilter  # a plugin module built on this one

    return [
        HealthFilter(),
        SchedulableFilter(),
        UnknownConstraintFilter(),
        *_attribute_constraints(),
        ExclusiveHostFilter(),
        MaxTasksFilter(config.max_tasks_per_host),
        MaxLaunchingFilter(config.max_launching_per_host),
        ResourcesFilter(),
        EniFilter(),
        UniqueHostFilter(),
        ZoneBalanceFilter(),
    ]
