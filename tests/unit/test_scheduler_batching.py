"""Batched placement gives exactly the placements and refusals of the one-by-one plugin path.

The engine places a run of identical tasks a host at a time, using each filter's `capacity`
bound and the scorers' `monotone` flag, or merges the scorers' trajectories when a
placement may lower a host's score (balance). The reference here is the same pipeline with every
filter wrapped so that it states no bound: the engine then places one task at a time and
re-evaluates the chosen host through every plugin, as it did before batching existed.
Random small clusters put many hosts at the edge of fitting (fractional cpus, full hosts,
throttles, unique and exclusive hosts, zone balance, Critical reservations).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest

from titus.master.scheduler import (
    CapacityGroup,
    CapacityLedger,
    Filter,
    HostEnis,
    HostState,
    HostTable,
    Scheduler,
    SchedulerConfig,
    ScheduleResult,
    Scorer,
    TaskContext,
    TaskRequest,
    default_filters,
    default_scorers,
    engine,
)
from titus.master.scheduler.context import make_context
from titus.master.scheduler.engine import _ranked
from titus.master.scheduler.filters import ResourcesFilter
from titus.master.scheduler.hosts import ALL, BoolArray, Index

ZONES = ("a", "b", "c")
SIZES: dict[str, dict[str, float]] = {
    "small": {"cpu": 2, "memoryMB": 8_192, "diskMB": 50_000, "networkMbps": 500, "ipSlots": 6},
    "odd": {"cpu": 0.9, "memoryMB": 3_000.5, "diskMB": 9_999, "networkMbps": 330, "ipSlots": 4},
    "big": {
        "cpu": 16,
        "memoryMB": 65_536,
        "diskMB": 400_000,
        "networkMbps": 5_000,
        "gpu": 2,
        "ipSlots": 30,
    },
}


class Unbounded(Filter):
    """The same rule, stating no bound: its runs are placed one task at a time."""

    def __init__(self, rule: Filter) -> None:
        self.rule = rule
        self.name = rule.name
        self.scope = rule.scope

    def applies(self, ctx: TaskContext) -> bool:
        return self.rule.applies(ctx)

    def accept(self, table: HostTable, ctx: TaskContext, idx: Index = ALL) -> BoolArray:
        return self.rule.accept(table, ctx, idx)

    def explain(self, table: HostTable, ctx: TaskContext, refused: BoolArray) -> str:
        return self.rule.explain(table, ctx, refused)

    @property
    def records(self) -> bool:  # type: ignore[override]
        return self.rule.records

    def record(
        self, table: HostTable, ctx: TaskContext, rows: list[int], counts: list[int]
    ) -> None:
        self.rule.record(table, ctx, rows, counts)


GROUP_SETS = ("", "sg-a", "sg-a,sg-b", "sg-c")


def random_enis(rng: random.Random) -> HostEnis | None:
    """ENI limits on some hosts, some ENIs of some sets in use, a few full."""
    if rng.random() < 0.4:
        return None
    max_enis, per_eni = rng.choice((1, 2, 3)), rng.choice((1, 2, 5))
    sets: dict[str, tuple[int, int]] = {}
    for key in GROUP_SETS:
        if rng.random() < 0.3 and sum(c for c, _ in sets.values()) < max_enis:
            sets[key] = (1, rng.randint(1, per_eni))
    return HostEnis(max_enis, per_eni, sets)


def random_hosts(rng: random.Random) -> list[HostState]:
    hosts: list[HostState] = []
    for _ in range(rng.randint(1, 12)):
        size = rng.choice(list(SIZES))
        total = dict(SIZES[size])
        frac = rng.choice((0.0, 0.0, 0.3, 0.5, 0.9, 1.0))
        used = {k: v * frac for k, v in total.items() if rng.random() < 0.9}
        tasks = rng.choice((0, 0, 1, 3, 9))
        job_counts = {f"j{rng.randrange(6)}": 1} if tasks and rng.random() < 0.5 else {}
        state = {
            "attributes": {"zone": rng.choice(ZONES), "itype": size},
            "healthy": rng.random() > 0.1,
            "schedulable": rng.random() > 0.1,
            "launching": rng.choice((0, 0, 1, 2)),
            "task_count": tasks,
            "job_counts": job_counts,
            "exclusive_job": "jx" if rng.random() < 0.05 else None,
            "enis": random_enis(rng),
        }
        # Identical hosts score alike: ties that only the host order may break.
        for _ in range(rng.choice((1, 1, 1, 3, 8))):
            hosts.append(HostState(f"h{len(hosts)}", dict(total), used=dict(used), **state))  # type: ignore[arg-type]
    rng.shuffle(hosts)
    return hosts


def random_tasks(rng: random.Random) -> list[TaskRequest]:
    tasks: list[TaskRequest] = []
    for job in range(rng.randint(1, 6)):
        cpu = rng.choice((0.1, 0.3, 0.45, 0.5, 1, 2, 3))
        hard: dict[str, str] = {}
        soft: dict[str, str] = {}
        for name, value in (
            ("uniqueHost", "true"),
            ("zoneBalance", "true"),
            ("exclusiveHost", "true"),
            ("availabilityZone", rng.choice(ZONES)),
            ("machineType", rng.choice(list(SIZES))),
        ):
            r = rng.random()
            if r < 0.12:
                hard[name] = value
            elif r < 0.24:
                soft[name] = value
        group = rng.choice(("", "crit", "crit2", "flex", "flex2"))
        kind = rng.choice(("BATCH", "SERVICE"))
        gpu = rng.choice((0, 0, 0, 1))
        groups = rng.choice(GROUP_SETS)
        ip_slots = rng.choice((1, 1, 1, 0))
        # Memory per cpu below and above the hosts' own (so balance turns both ways).
        per_cpu = rng.choice((1_000, 1_000, 6_000))
        for _ in range(rng.choice((1, 2, 5, 12, 40))):
            n = len(tasks)
            tasks.append(
                TaskRequest(
                    f"t{n}",
                    f"j{job}",
                    cpu=cpu,
                    memory_mb=cpu * rng.choice((1_000, 1_000.5, 4_096))
                    if n % 7 == 0
                    else cpu * per_cpu,
                    disk_mb=1_000,
                    network_mbps=rng.choice((10, 33.3, 100)) if n % 5 == 0 else 10,
                    gpu=gpu,
                    ip_slots=ip_slots,
                    security_groups=groups,
                    job_type=kind,
                    capacity_group=group,
                    hard_constraints=dict(hard),
                    soft_constraints=dict(soft),
                    enqueued_at=float(n),
                )
            )
    return tasks


def random_groups(rng: random.Random) -> dict[str, CapacityGroup]:
    return {
        "crit": CapacityGroup(
            "crit", tier="Critical", instance_cpu=1, instance_count=rng.randint(0, 8)
        ),
        "crit2": CapacityGroup(
            "crit2", tier="Critical", instance_cpu=2, instance_memory_mb=2_000, instance_count=3
        ),
        "flex": CapacityGroup("flex", instance_cpu=1, instance_count=5),
        "flex2": CapacityGroup("flex2"),
    }


def random_config(rng: random.Random) -> SchedulerConfig:
    return SchedulerConfig(
        max_launching_per_host=rng.choice((1, 2, 5, 1_000)),
        max_tasks_per_host=rng.choice((3, 10, 120)),
        good_enough_score=rng.choice((1.0, 1.0, 0.8, 0.5)),
        tasks_per_iteration=rng.choice((7, 500)),
        queue_run=rng.choice((1, 4, 32)),
        balance_weight=rng.choice((0.0, 1.0, 20.0, 20.0)),
    )


def outcome(result: ScheduleResult) -> tuple[object, ...]:
    return (
        [(a.task_id, a.host_id) for a in result.assignments],
        {k: (v.hosts_considered, v.refused_by, v.message) for k, v in result.unplaced.items()},
        result.deferred,
    )


@pytest.mark.parametrize("seed", range(400))
def test_batched_placement_equals_one_by_one(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Half the seeds batch from a single copy on, so the small runs of these clusters take
    # the batched path too (by default runs shorter than `_BATCH_MIN` go one by one).
    if seed % 2:
        monkeypatch.setattr(engine, "_BATCH_MIN", 1)
    rng = random.Random(seed)
    hosts = random_hosts(rng)
    tasks = random_tasks(rng)
    groups = random_groups(rng)
    config = random_config(rng)
    running = {"crit": {"cpu": float(rng.randint(0, 4))}} if rng.random() < 0.5 else None
    fast = Scheduler(config).schedule(tasks, hosts, groups, running)
    plain = Scheduler(config, filters=[Unbounded(f) for f in default_filters(config)])
    slow = plain.schedule(tasks, hosts, groups, running)
    assert outcome(fast) == outcome(slow)


def test_resources_bound_counts_copies_as_sequential_placements_do() -> None:
    """0.1 cpu ten times does not fit in 1.0 free by float subtraction alone; the slack makes
    it fit, and the bound agrees with `accept` after each copy."""
    host = HostState("h", {"cpu": 1.0, "memoryMB": 100, "ipSlots": 100}, used={"cpu": 0.3})
    table = HostTable([host])
    task = TaskRequest("t", "j", cpu=0.1, memory_mb=7, disk_mb=0, network_mbps=0)
    ctx = make_context(task, "DEFAULT", "Flex")
    rows = np.array([0], dtype=np.intp)
    bound = int(ResourcesFilter().capacity(table, ctx, rows, 50)[0])
    accepted = 0
    while ResourcesFilter().accept(table, ctx)[0]:
        table.assign(0, ctx.demand, ctx.pack_demand, "j", False)
        accepted += 1
    assert bound == accepted == 7


@pytest.mark.parametrize("seed", range(200))
def test_ledger_counts_and_charges_runs_as_single_placements_do(seed: int) -> None:
    """`admitted` and `charge(count)` against `admits` and `charge` one copy at a time."""
    rng = random.Random(seed)
    groups = {
        f"g{i}": CapacityGroup(
            f"g{i}",
            tier=rng.choice(("Critical", "Flex")),
            instance_cpu=rng.choice((0, 0.5, 1, 4)),
            instance_memory_mb=rng.choice((0, 1_000, 4_096)),
            instance_count=rng.randint(0, 30),
        )
        for i in range(3)
    }
    usage = {name: {"cpu": float(rng.randint(0, 20))} for name in groups if rng.random() < 0.5}
    group = rng.choice(list(groups))
    demand = np.array(
        [rng.choice((0.1, 0.5, 1, 3)), rng.choice((0, 100.5, 1_000)), 0, 0, 0, 1], dtype=np.float64
    )
    free = np.array(
        [rng.uniform(0, 60), rng.uniform(0, 60_000), 0, 0, 0, rng.randint(0, 100)],
        dtype=np.float64,
    )
    count = rng.randint(1, 40)
    shrinks = rng.random() < 0.8

    fast = CapacityLedger(groups, usage)
    got = fast.admitted(group, demand, free, count, shrinks)

    slow = CapacityLedger(groups, usage)
    left = free.copy()
    expected = 0
    while expected < count and slow.admits(group, demand, left) is None:
        slow.charge(group, demand)
        if shrinks:
            left -= demand
        expected += 1
    assert got == expected

    fast.charge(group, demand, expected)
    for name in groups:
        assert fast.usage[name].tobytes() == slow.usage[name].tobytes()
    assert fast.protected.tolist() == slow.protected.tolist()
    assert {k: v.tolist() for k, v in fast.unused.items()} == {
        k: v.tolist() for k, v in slow.unused.items()
    }


@pytest.mark.parametrize("seed", range(100))
def test_ranking_hosts_at_once_gives_the_order_of_repeated_picks(seed: int) -> None:
    """`_ranked` (one partition) against `argmax` repeated, each pick then refused: values
    with many ties (identical hosts), refused hosts, fewer usable hosts than asked for."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(2, 60))
    eff = rng.choice([0.2, 0.5, 0.5, 0.7, 0.9, float("-inf")], size=size)
    count = int(rng.integers(1, size))
    threshold = float(rng.choice([1.0, 0.8]))
    expected: list[int] | None = []
    left = eff.copy()
    for _ in range(count):
        row = int(left.argmax())
        if left[row] == float("-inf"):
            break
        if left[row] >= threshold:
            expected = None  # the good-enough rule decides one pick at a time
            break
        assert expected is not None
        expected.append(row)
        left[row] = float("-inf")
    ranked = _ranked(eff, count, threshold)
    assert (None if ranked is None else ranked.tolist()) == expected


def _placed_one_by_one(
    seed: int,
) -> Iterator[tuple[HostTable, TaskContext, list[Filter], list[Scorer]]]:
    """A random cluster with its plugins, before each of random tasks is placed on a
    random host (caps, held hosts and ENI limits recorded as the engine records them)."""
    rng = random.Random(seed)
    hosts = random_hosts(rng)
    tasks = random_tasks(rng)
    config = random_config(rng)
    table = HostTable(hosts)
    filters = default_filters(config)
    scorers = default_scorers(config)
    for task in tasks:
        ctx = make_context(task, "DEFAULT", rng.choice(("Flex", "Critical")))
        yield table, ctx, filters, scorers
        row = rng.randrange(table.size)
        table.assign(row, ctx.demand, ctx.pack_demand, task.job_id, ctx.exclusive)
        for f in filters:
            if f.records and f.applies(ctx):
                f.record(table, ctx, [row], [1])


@pytest.mark.parametrize("seed", range(100))
def test_a_rule_that_says_it_cannot_bind_accepts_every_host(seed: int) -> None:
    """`Filter.binds` False lets the engine skip `accept`: it must then accept all hosts,
    before and after placements (random clusters, caps, held hosts, ENI limits)."""
    for table, ctx, filters, _ in _placed_one_by_one(seed):
        for f in filters:
            if f.applies(ctx) and not f.binds(table, ctx):
                assert f.accept(table, ctx).all(), f.name


@pytest.mark.parametrize("seed", range(100))
def test_one_host_answers_are_the_vector_answers(seed: int) -> None:
    """`Filter.accepts_row` and `Scorer.score_row` (Python scalars) against `accept` and
    `score` over all hosts, bit for bit, before and after placements."""
    for table, ctx, filters, scorers in _placed_one_by_one(seed):
        for f in filters:
            if f.applies(ctx):
                accepted = f.accept(table, ctx).tolist()
                assert [f.accepts_row(table, ctx, r) for r in range(table.size)] == accepted
        for s in scorers:
            if s.applies(ctx):
                scores = s.score(table, ctx).tolist()
                assert [s.score_row(table, ctx, r) for r in range(table.size)] == scores
