"""Task addresses as a counted host resource: a host offers what its pool holds, a task
with allocateIP takes one, a task without takes none, and why-pending names ipSlots."""

from __future__ import annotations

from typing import Any

from titus.agent.host import IP_SLOTS, ip_slots
from titus.master.placement import task_request
from titus.master.scheduler import HostState, Scheduler, SchedulerConfig
from titus.model.job import Job, JobStatus, Task, TaskStatus
from titus.model.states import JobState, TaskState
from titus.model.validation import parse_job_descriptor
from titus.settings import Settings


def test_a_host_offers_as_many_ip_slots_as_its_pool_has_addresses() -> None:
    assert ip_slots(Settings()) == IP_SLOTS  # networking off: the fixed count
    local = {"agent_network_provider": "local", "agent_network_subnet": "100.64.0.0/24"}
    assert ip_slots(Settings(**local)) == 253  # less network, broadcast and gateway
    assert ip_slots(Settings(**local, agent_network_pool="100.64.0.16/28")) == 14


def request(allocate_ip: bool) -> Any:
    body: dict[str, Any] = {
        "owner": {"teamEmail": "a@b.co"},
        "applicationName": "app",
        "container": {
            "image": {"name": "img", "tag": "1"},
            "resources": {"cpu": 1, "memoryMB": 512, "diskMB": 1000, "allocateIP": allocate_ip},
        },
        "batch": {"size": 1},
    }
    job = Job(
        id="j1",
        jobDescriptor=parse_job_descriptor(body),
        status=JobStatus(state=JobState.ACCEPTED),
    )
    tid = f"t-{allocate_ip}"
    status = TaskStatus(state=TaskState.ACCEPTED)
    return task_request(job, Task(id=tid, jobId="j1", originalId=tid, status=status))


def test_a_host_out_of_addresses_refuses_ip_tasks_by_name_and_takes_the_others() -> None:
    full = {"cpu": 8, "memoryMB": 32_000, "diskMB": 100_000, "networkMbps": 1_000, "ipSlots": 2}
    host = HostState("h1", dict(full), used={"ipSlots": 2}, attributes={"zone": "a"})
    with_ip, without = request(True), request(False)
    assert (with_ip.ip_slots, without.ip_slots) == (1.0, 0.0)
    result = Scheduler(SchedulerConfig(max_launching_per_host=100)).schedule(
        [with_ip, without], [host]
    )
    assert [a.task_id for a in result.assignments] == [without.task_id]
    pending = result.unplaced[with_ip.task_id]
    assert pending.refused_by == {"resources": 1}
    assert "ipSlots" in pending.message
