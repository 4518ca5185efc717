"""The scheduler's public behaviour: placements, packing, and why a task is pending."""

from __future__ import annotations

from titus.master.scheduler import HostState, Scheduler, SchedulerConfig, TaskRequest

FULL = {"cpu": 8, "memoryMB": 32_000, "diskMB": 100_000, "networkMbps": 1_000, "ipSlots": 8}


def host(name: str, zone: str = "a", **kw: object) -> HostState:
    return HostState(name, dict(FULL), attributes={"zone": zone}, **kw)  # type: ignore[arg-type]


def task(tid: str, job: str = "j", cpu: float = 2, **kw: object) -> TaskRequest:
    return TaskRequest(tid, job, cpu=cpu, memory_mb=1_000, disk_mb=1_000, network_mbps=10, **kw)  # type: ignore[arg-type]


def test_bin_packing_fills_one_host_before_the_next() -> None:
    scheduler = Scheduler(SchedulerConfig(max_launching_per_host=10))
    result = scheduler.schedule(
        [task(f"t{i}", enqueued_at=i) for i in range(6)], [host("h1"), host("h2")]
    )
    placed = [(a.task_id, a.host_id) for a in result.assignments]
    assert placed == [
        ("t0", "h1"),
        ("t1", "h1"),
        ("t2", "h1"),
        ("t3", "h1"),
        ("t4", "h2"),
        ("t5", "h2"),
    ]


def test_unplaced_task_says_which_rule_refused_how_many_hosts() -> None:
    result = Scheduler().schedule([task("big", cpu=16)], [host("h1"), host("h2")])
    assert result.assignments == []
    summary = result.unplaced["big"]
    assert summary.hosts_considered == 2
    assert summary.refused_by == {"resources": 2}
    assert summary.message == "no host fits: 2 hosts, resources refused 2 (cpu)"


def test_a_task_asking_for_gpus_goes_only_to_a_host_with_that_many_free() -> None:
    """A host offers its GPUs like any other resource: `gpu: 2` lands where two are free,
    and waits, naming the gpu rule, when no host has them."""
    gpu_host = HostState("g", {**FULL, "gpu": 2}, used={"gpu": 0}, attributes={"zone": "a"})
    result = Scheduler(SchedulerConfig(max_launching_per_host=10)).schedule(
        [task("t-gpu", gpu=2), task("t-more", gpu=2, enqueued_at=1)], [host("h1"), gpu_host]
    )
    assert [(a.task_id, a.host_id) for a in result.assignments] == [("t-gpu", "g")]
    assert result.unplaced["t-more"].message == ("no host fits: 2 hosts, resources refused 2 (gpu)")
