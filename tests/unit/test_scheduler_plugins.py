"""Each scheduler plugin refuses a host that breaks its rule and accepts one that just passes."""

from __future__ import annotations

from typing import Any

import pytest

from titus.master.scheduler import (
    CapacityGroup,
    HostState,
    Scheduler,
    SchedulerConfig,
    TaskRequest,
    queue_order,
)

FULL = {"cpu": 8, "memoryMB": 32_000, "diskMB": 100_000, "networkMbps": 1_000, "ipSlots": 8}


def host(name: str, zone: str = "a", **kw: object) -> HostState:
    attributes = {"zone": zone, "itype": "m5.2xlarge", "machineGroup": "asg1", "instanceId": name}
    extra = kw.pop("attributes", {})
    assert isinstance(extra, dict)
    attributes.update(extra)
    return HostState(name, dict(FULL), attributes=attributes, **kw)  # type: ignore[arg-type]


def task(tid: str, *, job: str = "j", **kw: Any) -> TaskRequest:
    request: dict[str, object] = {
        "cpu": 1,
        "memory_mb": 1_000,
        "disk_mb": 1_000,
        "network_mbps": 10,
    }
    request.update(kw)
    return TaskRequest(tid, job, **request)  # type: ignore[arg-type]


def place(tasks: list[TaskRequest], hosts: list[HostState], **config: object) -> dict[str, str]:
    cfg = SchedulerConfig(**{"max_launching_per_host": 100, **config})  # type: ignore[arg-type]
    result = Scheduler(cfg).schedule(tasks, hosts)
    return {a.task_id: a.host_id for a in result.assignments}


def refused(t: TaskRequest, hosts: list[HostState], **config: object) -> dict[str, int]:
    cfg = SchedulerConfig(**{"max_launching_per_host": 100, **config})  # type: ignore[arg-type]
    return Scheduler(cfg).schedule([t], hosts).unplaced[t.task_id].refused_by


@pytest.mark.parametrize(
    ("resource", "field"),
    [
        ("cpu", "cpu"),
        ("memoryMB", "memory_mb"),
        ("diskMB", "disk_mb"),
        ("networkMbps", "network_mbps"),
        ("gpu", "gpu"),
        ("ipSlots", "ip_slots"),
    ],
)
def test_resources_filter_counts_used_and_requested(resource: str, field: str) -> None:
    h = host("h1", used={resource: FULL.get(resource, 0) - 2})
    h.total.setdefault("gpu", 0)
    if resource == "gpu":
        h.total["gpu"] = 4
        h.used = {"gpu": 2}
    exact_amount: dict[str, Any] = {field: 2}
    exact = task("fits", **exact_amount)
    assert place([exact], [h]) == {"fits": "h1"}
    over_amount: dict[str, Any] = {field: 2.5}
    over = task("over", **over_amount)
    assert refused(over, [h]) == {"resources": 1}


def test_assignments_of_the_iteration_count_against_free_resources() -> None:
    placed = place([task(f"t{i}", cpu=3, enqueued_at=i) for i in range(3)], [host("h1")])
    assert set(placed) == {"t0", "t1"}


def test_unique_host_refuses_a_host_running_the_job() -> None:
    busy = host("h1", job_counts={"j": 1}, task_count=1)
    assert refused(task("t", hard_constraints={"UniqueHost": "true"}), [busy]) == {"uniqueHost": 1}
    placed = place(
        [task(f"t{i}", hard_constraints={"uniqueHost": "true"}) for i in range(3)],
        [host("h1"), host("h2")],
    )
    assert sorted(placed.values()) == ["h1", "h2"]
    assert place([task("t", hard_constraints={"uniqueHost": "false"})], [busy]) == {"t": "h1"}


def test_exclusive_host_needs_an_empty_host_and_keeps_it() -> None:
    assert refused(
        task("x", hard_constraints={"exclusiveHost": "true"}), [host("h1", task_count=1)]
    ) == {"exclusiveHost": 1}
    placed = place(
        [
            task("x", hard_constraints={"exclusiveHost": "true"}),
            task("y", job="other", enqueued_at=1),
        ],
        [host("h1")],
    )
    assert placed == {"x": "h1"}
    assert refused(task("y"), [host("h1", exclusive_job="k")]) == {"exclusiveHost": 1}


def test_zone_balance_only_allows_the_least_used_zones() -> None:
    hosts = [host("a1", "a", job_counts={"j": 1}, task_count=1), host("b1", "b")]
    t = task("t", hard_constraints={"zoneBalance": "true"})
    assert place([t], hosts) == {"t": "b1"}
    hosts[1].attributes["zone"] = "a"  # one zone only: balance is trivially kept
    assert place([t], [hosts[0]]) == {"t": "a1"}
    full_b = [hosts[0], host("b1", "b", used={"cpu": 8})]
    assert refused(t, full_b) == {"resources": 1, "zoneBalance": 1}
    placed = place(
        [task(f"t{i}", hard_constraints={"zoneBalance": "true"}, enqueued_at=i) for i in range(6)],
        [host("a1", "a"), host("b1", "b"), host("c1", "c")],
    )
    assert sorted(placed.values()) == ["a1", "a1", "b1", "b1", "c1", "c1"]


@pytest.mark.parametrize(
    ("name", "value", "attribute"),
    [
        ("availabilityZone", "b", "zone"),
        ("machineId", "i-2", "instanceId"),
        ("machineGroup", "asg2", "machineGroup"),
        ("machineType", "r5.8xlarge", "itype"),
    ],
)
def test_attribute_constraints_match_the_host_attribute(
    name: str, value: str, attribute: str
) -> None:
    plain = host("h1")
    match = host("h2", attributes={attribute: value})
    t = task("t", hard_constraints={name.upper(): value})
    assert refused(t, [plain]) == {name: 1}
    assert place([t], [plain, match]) == {"t": "h2"}


def test_machine_id_also_matches_the_host_id() -> None:
    assert place(
        [task("t", hard_constraints={"machineId": "h2"})],
        [host("h1"), host("h2", attributes={"instanceId": ""})],
    ) == {"t": "h2"}


def test_lifecycle_health_and_throttles() -> None:
    assert refused(task("t"), [host("h1", healthy=False)]) == {"health": 1}
    assert refused(task("t"), [host("h1", schedulable=False)]) == {"schedulable": 1}
    assert refused(task("t"), [host("h1", launching=1)], max_launching_per_host=1) == {
        "maxLaunchingPerHost": 1
    }
    assert place([task("t")], [host("h1", launching=1)], max_launching_per_host=2) == {"t": "h1"}
    assert refused(task("t"), [host("h1", task_count=3)], max_tasks_per_host=3) == {
        "maxTasksPerHost": 1
    }
    assert place([task("t")], [host("h1", task_count=2)], max_tasks_per_host=3) == {"t": "h1"}
    placed = place([task("a"), task("b", enqueued_at=1)], [host("h1")], max_launching_per_host=1)
    assert placed == {"a": "h1"}


def test_active_host_constraint_and_unknown_constraints() -> None:
    t = task("t", hard_constraints={"activeHost": "true"})
    assert place([t], [host("h1")]) == {"t": "h1"}
    assert refused(task("t", hard_constraints={"gpuModel": "v100"}), [host("h1")]) == {
        "unknownConstraint": 1
    }


def test_pending_summary_counts_each_host_under_the_first_rule_refusing_it() -> None:
    hosts = [host(f"h{i}", used={"cpu": 8}) for i in range(38)]
    hosts += [host("u1", job_counts={"j": 1}), host("u2", job_counts={"j": 2})]
    result = Scheduler().schedule([task("t", hard_constraints={"uniqueHost": "true"})], hosts)
    summary = result.unplaced["t"]
    assert summary.hosts_considered == 40
    assert summary.refused_by == {"resources": 38, "uniqueHost": 2}
    assert (
        summary.message
        == "no host fits: 40 hosts, resources refused 38 (cpu), uniqueHost refused 2"
    )


def test_soft_constraints_steer_but_do_not_refuse() -> None:
    t = task("t", soft_constraints={"availabilityZone": "b"})
    assert place([t], [host("a1", "a"), host("b1", "b")]) == {"t": "b1"}
    assert place([t], [host("a1", "a")]) == {"t": "a1"}
    spread = [
        task(f"t{i}", soft_constraints={"zoneBalance": "true"}, enqueued_at=i) for i in range(3)
    ]
    placed = place(spread, [host("a1", "a"), host("b1", "b"), host("c1", "c")])
    assert sorted(placed.values()) == ["a1", "b1", "c1"]


def test_bin_packing_fills_a_host_before_the_next() -> None:
    placed = place(
        [task(f"t{i}", cpu=2, enqueued_at=i) for i in range(6)],
        [host("h1"), host("h2", used={"cpu": 1})],
    )
    assert [placed[f"t{i}"] for i in range(6)] == ["h2", "h2", "h2", "h1", "h1", "h1"]


def test_critical_services_spread() -> None:
    groups = {"crit": CapacityGroup("crit", tier="Critical")}
    tasks = [
        task(f"t{i}", job_type="SERVICE", capacity_group="crit", enqueued_at=i) for i in range(3)
    ]
    result = Scheduler(SchedulerConfig(max_launching_per_host=100)).schedule(
        tasks, [host("h1"), host("h2"), host("h3"), host("h4", used={"cpu": 4})], groups
    )
    # Each goes to an empty host; the half-full one is left alone while empty ones remain.
    assert sorted(a.host_id for a in result.assignments) == ["h1", "h2", "h3"]


def test_good_enough_score_takes_the_first_host_that_passes() -> None:
    hosts = [host("big", used={"cpu": 0}), host("tight", used={"cpu": 7})]
    best = place([task("t")], hosts)
    assert best == {"t": "tight"}
    early = place([task("t")], hosts, good_enough_score=0.5)
    assert early == {"t": "big"}
    assert place([task("t")], [host("full", used={"cpu": 8}), *hosts], good_enough_score=0.5) == {
        "t": "big"
    }


def test_tiered_queue_critical_first_then_flex_below_share_then_fifo() -> None:
    groups = {
        "crit": CapacityGroup("crit", tier="Critical", instance_cpu=1, instance_count=10),
        "busy": CapacityGroup("busy", instance_cpu=1, instance_count=10),
        "idle": CapacityGroup("idle", instance_cpu=1, instance_count=10),
    }
    usage = {"busy": {"cpu": 5.0}, "idle": {"cpu": 4.0}}
    tasks = [
        task("b1", capacity_group="busy", enqueued_at=1),
        task("d1", capacity_group="nosuch", enqueued_at=0),
        task("i2", capacity_group="idle", enqueued_at=3),
        task("i1", capacity_group="idle", enqueued_at=2),
        task("c1", capacity_group="crit", enqueued_at=9),
        task("b2", capacity_group="busy", enqueued_at=2, job="k"),
    ]
    order = [t.task_id for t in queue_order(tasks, groups, usage)]
    # idle (0.4) takes one, then ties with busy at 0.5 (name order), then turns alternate.
    assert order == ["c1", "i1", "b1", "i2", "b2", "d1"]


def test_flex_work_cannot_take_a_critical_groups_unused_reservation() -> None:
    groups = {"crit": CapacityGroup("crit", tier="Critical", instance_cpu=4, instance_count=2)}
    hosts = [host("h1"), host("h2")]  # 16 cpus; 8 reserved for crit, none used yet
    flex = [task(f"f{i}", job=f"f{i}", cpu=4, enqueued_at=i) for i in range(4)]
    result = Scheduler(SchedulerConfig(max_launching_per_host=100)).schedule(flex, hosts, groups)
    assert len(result.assignments) == 2
    assert result.unplaced["f2"].refused_by == {"criticalReservation": 2}
    assert "criticalReservation" in result.unplaced["f2"].message
    crit = [
        task(f"c{i}", job="c", cpu=4, capacity_group="crit", job_type="SERVICE") for i in range(2)
    ]
    result = Scheduler(SchedulerConfig(max_launching_per_host=100)).schedule(
        [*flex, *crit], hosts, groups
    )
    assert {a.task_id for a in result.assignments} == {"c0", "c1", "f0", "f1"}
    used = {"crit": {"cpu": 8.0}}
    result = Scheduler(SchedulerConfig(max_launching_per_host=100)).schedule(
        flex, [host("h1"), host("h2"), host("h3")], groups, used
    )
    assert len(result.assignments) == 4


def test_tasks_beyond_the_iteration_budget_are_deferred() -> None:
    result = Scheduler(SchedulerConfig(max_launching_per_host=100, tasks_per_iteration=2)).schedule(
        [task(f"t{i}", enqueued_at=i) for i in range(3)], [host("h1")]
    )
    assert [a.task_id for a in result.assignments] == ["t0", "t1"]
    assert result.deferred == ["t2"]
