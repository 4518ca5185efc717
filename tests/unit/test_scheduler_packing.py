"""Packing quality: on tasks of mixed shapes cut out of 95% of every host (so a packing of
all of them exists), the scheduler, taking them in queue order, places at least 95% of
them and more than bin packing alone and the textbook baselines (tests/support/packing.py)
on the same input. Counts of placed tasks, never time."""

from __future__ import annotations

import random

import pytest

from tests.support.packing import dot_product_best_fit, first_fit_decreasing, packed_tasks
from titus.master.scheduler import HostState, Scheduler, SchedulerConfig, TaskRequest

#: Three host shapes: 4 GiB per cpu, 8 GiB per cpu, 2 GiB per cpu.
TYPES = {
    "m": {"cpu": 8, "memoryMB": 32_768, "diskMB": 200_000, "networkMbps": 2_500, "ipSlots": 30},
    "r": {"cpu": 16, "memoryMB": 131_072, "diskMB": 200_000, "networkMbps": 5_000, "ipSlots": 60},
    "c": {"cpu": 16, "memoryMB": 32_768, "diskMB": 200_000, "networkMbps": 5_000, "ipSlots": 60},
}
#: No throttle or task cap binds: only how the tasks are packed counts.
UNTHROTTLED = {"max_launching_per_host": 1_000, "max_tasks_per_host": 1_000}


def cluster(seed: int) -> tuple[list[HostState], list[TaskRequest]]:
    rng = random.Random(seed)
    hosts = [
        HostState(f"h{i}", dict(TYPES["mrc"[i % 3]]), attributes={"zone": "a"}) for i in range(60)
    ]
    return hosts, packed_tasks(rng, hosts, 0.95)


def placed(hosts: list[HostState], tasks: list[TaskRequest], **config: float) -> int:
    settings = SchedulerConfig(**UNTHROTTLED, tasks_per_iteration=len(tasks), **config)  # type: ignore[arg-type]
    return len(Scheduler(settings).schedule(tasks, hosts).assignments)


@pytest.mark.parametrize("seed", range(3))
def test_mixed_shapes_are_packed_better_than_by_the_baselines(seed: int) -> None:
    hosts, tasks = cluster(seed)
    ours = placed(hosts, tasks)
    assert ours >= 0.95 * len(tasks)
    assert ours > placed(hosts, tasks, balance_weight=0.0)  # bin packing alone
    assert ours > first_fit_decreasing(hosts, tasks)
    assert ours > dot_product_best_fit(hosts, tasks)
    assert ours > dot_product_best_fit(hosts, tasks, decreasing=True)


def task(tid: str, cpu: float, memory_mb: float) -> TaskRequest:
    return TaskRequest(tid, tid, cpu=cpu, memory_mb=memory_mb, disk_mb=0, network_mbps=0)


def test_a_task_goes_where_it_evens_out_cpu_and_memory() -> None:
    """Two equally full hosts, one short of cpu, one short of memory: a memory-heavy task
    goes to the one with memory left, a cpu-heavy one to the one with cpu left."""
    total = {"cpu": 16, "memoryMB": 65_536, "ipSlots": 8}
    hosts = [
        HostState("cpu-used", dict(total), used={"cpu": 12, "memoryMB": 16_384}),
        HostState("memory-used", dict(total), used={"cpu": 4, "memoryMB": 49_152}),
    ]
    config = SchedulerConfig(**UNTHROTTLED)  # type: ignore[arg-type]
    memory_heavy = Scheduler(config).schedule([task("m", 1, 16_384)], hosts)
    cpu_heavy = Scheduler(config).schedule([task("c", 4, 4_096)], hosts)
    assert [(a.task_id, a.host_id) for a in memory_heavy.assignments] == [("m", "cpu-used")]
    assert [(a.task_id, a.host_id) for a in cpu_heavy.assignments] == [("c", "memory-used")]
    # Bin packing alone sees two equally full hosts and takes the first for both.
    plain = Scheduler(SchedulerConfig(**UNTHROTTLED, balance_weight=0.0))  # type: ignore[arg-type]
    assert plain.schedule([task("c", 4, 4_096)], hosts).assignments[0].host_id == "cpu-used"
