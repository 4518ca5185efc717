"""ENIs per security-group set as a scheduled resource: a task fits where its set's ENI has
a free address or an ENI slot is free, placement never over-commits either, why-pending
names the rule, and hosts already holding the set are preferred."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from titus.coord.base import AgentInfo
from titus.master.placement import merged_enis, task_request
from titus.master.scheduler import HostEnis, HostState, Scheduler, SchedulerConfig, TaskRequest
from titus.model.job import Job, JobStatus, Task, TaskStatus
from titus.model.names import eni_set_key
from titus.model.states import JobState, TaskState
from titus.model.validation import parse_job_descriptor

FULL = {"cpu": 64, "memoryMB": 256_000, "diskMB": 1_000_000, "networkMbps": 10_000, "ipSlots": 500}


def host(name: str, enis: HostEnis | None, cpu_used: float = 0) -> HostState:
    return HostState(name, dict(FULL), used={"cpu": cpu_used}, attributes={"zone": "a"}, enis=enis)


def task(tid: str, groups: str, job: str = "") -> TaskRequest:
    return TaskRequest(
        tid, job or f"job-{groups}", cpu=1, memory_mb=100, disk_mb=10, network_mbps=10,
        security_groups=groups,
    )  # fmt: skip


def schedule(tasks: list[TaskRequest], hosts: list[HostState]) -> dict[str, str]:
    result = Scheduler(SchedulerConfig(max_launching_per_host=1_000)).schedule(tasks, hosts)
    return {a.task_id: a.host_id for a in result.assignments}


def test_a_full_host_takes_a_task_of_a_set_whose_eni_has_room_and_refuses_other_sets() -> None:
    # two ENI slots, both held: sg-a with 3 of 5 addresses used, sg-b full
    h = host("h1", HostEnis(2, 5, {"sg-a": (1, 3), "sg-b": (1, 5)}))
    result = Scheduler(SchedulerConfig(max_launching_per_host=1_000)).schedule(
        [task("a1", "sg-a"), task("a2", "sg-a"), task("a3", "sg-a"), task("b1", "sg-b"),
         task("c1", "sg-c")],
        [h],
    )  # fmt: skip
    placed = {a.task_id for a in result.assignments}
    assert placed == {"a1", "a2"}
    for tid in ("a3", "b1", "c1"):
        summary = result.unplaced[tid]
        assert summary.refused_by == {"eniPerSecurityGroups": 1}
        assert "ENI" in summary.message and "free ENI slot" in summary.message
    assert "[sg-c]" in result.unplaced["c1"].message


def test_a_free_slot_takes_a_new_set_and_an_eni_without_tasks_counts_as_free() -> None:
    # sg-old's ENI has no address in use (kept for its grace period): its slot is free
    h = host("h1", HostEnis(1, 2, {"sg-old": (1, 0)}))
    placed = schedule([task(f"n{i}", "sg-new") for i in range(3)], [h])
    assert sorted(placed) == ["n0", "n1"]  # one new ENI, two addresses


def test_tasks_without_an_address_and_hosts_without_eni_limits_are_not_counted() -> None:
    h = host("h1", HostEnis(1, 1, {"sg-a": (1, 1)}))
    no_ip = task("x", "sg-b")
    no_ip.ip_slots = 0
    assert schedule([no_ip], [h]) == {"x": "h1"}
    assert schedule([task("y", "sg-b")], [host("h2", None)]) == {"y": "h2"}


@pytest.mark.parametrize("seed", range(60))
def test_placements_never_over_commit_enis_or_their_addresses(seed: int) -> None:
    rng = random.Random(seed)
    sets = ("sg-a", "sg-b", "sg-a,sg-b", "sg-c")
    hosts = []
    for i in range(rng.randint(1, 6)):
        max_enis, per = rng.randint(1, 4), rng.randint(1, 6)
        held: dict[str, tuple[int, int]] = {}
        for key in sets:
            if rng.random() < 0.4 and sum(c for c, _ in held.values()) < max_enis:
                held[key] = (1, rng.randint(1, per))
        hosts.append(host(f"h{i}", HostEnis(max_enis, per, held), cpu_used=rng.random() * 10))
    tasks = [task(f"t{n}", rng.choice(sets), job=f"j{n % 5}") for n in range(rng.randint(1, 80))]
    # tasks of one job share its security groups, as in a job descriptor
    by_job: dict[str, str] = {}
    for t in tasks:
        t.security_groups = by_job.setdefault(t.job_id, t.security_groups)
    result = Scheduler(SchedulerConfig(max_launching_per_host=1_000)).schedule(tasks, hosts)
    placed = {a.task_id: a.host_id for a in result.assignments}
    groups_of = {t.task_id: t.security_groups for t in tasks}
    for h in hosts:
        assert h.enis is not None
        counts: dict[str, int] = {}
        for tid, where in placed.items():
            if where == h.host_id:
                counts[groups_of[tid]] = counts.get(groups_of[tid], 0) + 1
        # the agent's way: free addresses of the set's ENIs first, then new ENIs
        slots = h.enis.max_enis - sum(c for c, used in h.enis.sets.values() if used > 0)
        for key, n in counts.items():
            count, used = h.enis.sets.get(key, (0, 0))
            room = count * h.enis.ips_per_eni - used
            new = max(0, n - room)
            slots -= -(-new // h.enis.ips_per_eni)
        assert slots >= 0, (h, counts)
    # and what was left out was refused by the ENI rule on every host, nothing else
    for summary in result.unplaced.values():
        assert summary.refused_by == {"eniPerSecurityGroups": len(hosts)}


def test_hosts_that_hold_the_set_are_preferred_so_slots_stay_free_for_other_sets() -> None:
    # h1 is the fuller host (bin packing's choice) but holds no ENI of sg-a; h2 does
    h1 = host("h1", HostEnis(1, 5, {}), cpu_used=30)
    h2 = host("h2", HostEnis(1, 5, {"sg-a": (1, 1)}), cpu_used=1)
    placed = schedule([task("a1", "sg-a"), task("b1", "sg-b", job="jb")], [h1, h2])
    assert placed == {"a1": "h2", "b1": "h1"}


def test_what_an_agent_publishes_is_believed_only_within_bounds() -> None:
    good = {"maxEnis": 2, "ipsPerEni": 5, "sets": {"sg-a": [1, 3]}}
    assert HostEnis.from_published(good) == HostEnis(2, 5, {"sg-a": (1, 3)})
    assert HostEnis.from_published({}) is None  # no ENI limits: ipSlots alone count
    for bad in (
        {"maxEnis": 10_000, "ipsPerEni": 5},
        {"maxEnis": "two", "ipsPerEni": 5},
        {"maxEnis": 2, "ipsPerEni": 5, "sets": ["sg-a"]},
    ):
        assert HostEnis.from_published(bad) is None
    # a set claiming more than its ENIs hold is dropped, the rest kept
    odd = {"maxEnis": 2, "ipsPerEni": 5, "sets": {"sg-a": [1, 9], "sg-b": [1, 1]}}
    assert HostEnis.from_published(odd) == HostEnis(2, 5, {"sg-b": (1, 1)})


def test_the_leader_adds_tasks_placed_since_the_agent_published_and_never_frees_more() -> None:
    published = HostEnis(3, 5, {"sg-a": (1, 4), "sg-b": (1, 2)})
    merged = merged_enis(published, {"sg-a": 7, "sg-b": 1, "sg-c": 1})
    # sg-a: 3 more than the agent counted: one on its ENI's last address, two on a new ENI;
    # sg-b: the agent still counts a task the leader saw end: its figures stand;
    # sg-c: new, one ENI
    assert merged.sets == {"sg-a": (2, 7), "sg-b": (1, 2), "sg-c": (1, 1)}
    refused = Scheduler(SchedulerConfig(max_launching_per_host=100)).schedule(
        [task("d", "sg-d")], [host("h", merged)]
    )
    assert refused.unplaced["d"].refused_by == {"eniPerSecurityGroups": 1}


def test_a_task_request_carries_its_jobs_security_group_set() -> None:
    body: dict[str, Any] = {
        "owner": {"teamEmail": "a@b.co"},
        "applicationName": "app",
        "container": {
            "image": {"name": "img", "tag": "1"},
            "resources": {"cpu": 1, "memoryMB": 512, "diskMB": 1000},
            "securityProfile": {"securityGroups": ["sg-b", "sg-a"]},
        },
        "batch": {"size": 1},
    }
    job = Job(
        id="j", jobDescriptor=parse_job_descriptor(body), status=JobStatus(state=JobState.ACCEPTED)
    )
    status = TaskStatus(state=TaskState.ACCEPTED)
    request = task_request(job, Task(id="t", jobId="j", originalId="t", status=status))
    assert request.security_groups == eni_set_key(["sg-a", "sg-b"]) == "sg-a,sg-b"


def test_an_agents_registration_carries_its_enis_to_the_scheduler() -> None:
    info = AgentInfo(
        id="i-1", address="http://h:1", resources={"ipSlots": 10.0},
        network={"maxEnis": 2, "ipsPerEni": 5, "sets": {"sg-a": [1, 2]}},
    )  # fmt: skip
    again = AgentInfo.from_json(json.loads(json.dumps(info.to_json())))
    assert HostEnis.from_published(again.network) == HostEnis(2, 5, {"sg-a": (1, 2)})
    plain = AgentInfo.from_json(AgentInfo(id="h", address="x", resources={}).to_json())
    assert plain.network == {} and HostEnis.from_published(plain.network) is None
