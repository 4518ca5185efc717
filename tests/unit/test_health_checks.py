"""Container health checks: what a job may ask (and the clear refusals), and which
unhealthy service tasks the leader replaces within the job's disruption budget."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from titus.master.health import replace_unhealthy
from titus.master.view import LeaderView
from titus.model.disruption import available, counts_health
from titus.model.health import HealthCheck, check_health_attributes, health_check_of
from titus.model.job import Job, JobStatus, Task, TaskStatus
from titus.model.states import JobState, TaskState
from titus.model.validation import InvalidRequest, parse_job_descriptor

P = "titusParameter.agent.healthcheck."


def test_a_health_check_takes_defaults_and_becomes_the_engines() -> None:
    check = health_check_of({P + "command": "curl -f localhost:8080", P + "retries": "5"})
    assert check == HealthCheck("curl -f localhost:8080", 10, 5, 5, 0)
    engine = check.engine_form()
    assert engine["test"] == ["CMD-SHELL", "curl -f localhost:8080"]
    assert engine["interval"] == 10_000_000_000 and engine["retries"] == 5
    assert health_check_of({"healthcheck.command": "true"}) == HealthCheck("true")
    assert health_check_of({"other": "x"}) is None


@pytest.mark.parametrize(
    "attributes, path, words",
    [
        ({P + "intervalSec": "5"}, P + "command", "needs a command"),
        ({P + "command": "true", P + "intervalSec": "0"}, P + "intervalSec", "1..3600"),
        ({P + "command": "true", P + "timeoutSec": "ten"}, P + "timeoutSec", "integer"),
        ({P + "command": "true", P + "retries": "1000"}, P + "retries", "1..100"),
        ({P + "command": "true", P + "retires": "3"}, P + "retires", "not a health check"),
    ],
)
def test_bad_health_checks_are_refused_naming_the_attribute(
    attributes: dict[str, str], path: str, words: str
) -> None:
    errors = check_health_attributes(attributes)
    assert [e.path for e in errors] == [f"container.attributes.{path}"]
    assert words in errors[0].message
    body = {
        "owner": {"teamEmail": "a@b.co"},
        "applicationName": "app",
        "container": {"image": {"name": "img", "tag": "1"}, "attributes": attributes},
        "service": {"capacity": {"min": 0, "desired": 1, "max": 1}},
    }
    with pytest.raises(InvalidRequest) as refused:
        parse_job_descriptor(body)
    assert f"container.attributes.{path}" in str(refused.value)


def checked_job(desired: int, budget: dict[str, object] | None = None) -> Job:
    body: dict[str, object] = {
        "owner": {"teamEmail": "a@b.co"},
        "applicationName": "app",
        "container": {
            "image": {"name": "img", "tag": "1"},
            "attributes": {P + "command": "true"},
        },
        "service": {"capacity": {"min": 0, "desired": desired, "max": desired}},
    }
    if budget:
        body["disruptionBudget"] = budget
    return Job(
        id="j", jobDescriptor=parse_job_descriptor(body), status=JobStatus(state=JobState.ACCEPTED)
    )


def task(i: int, health: str, state: TaskState = TaskState.STARTED) -> Task:
    return Task(
        id=f"t{i}",
        jobId="j",
        originalId=f"t{i}",
        status=TaskStatus(state=state),
        taskContext={"task.index": str(i), "agent.id": "h", "task.health": health},
    )


@dataclass
class Leader:
    view: LeaderView = field(default_factory=LeaderView)
    killed: list[str] = field(default_factory=list)

    def kill(self, t: Task, reason: str, message: str) -> None:
        self.killed.append(t.id)
        self.view.put_task(t.with_status(TaskState.KILL_INITIATED, reason, message))


def leader_with(job: Job, tasks: list[Task]) -> Leader:
    leader = Leader()
    leader.view.put_job(job)
    for t in tasks:
        leader.view.put_task(t)
    return leader


def test_without_a_budget_unhealthy_tasks_are_replaced_one_at_a_time() -> None:
    tasks = [task(0, "unhealthy"), task(1, "unhealthy"), task(2, "healthy"), task(3, "healthy")]
    leader = leader_with(checked_job(4), tasks)
    assert available(tasks) == 2 and available(tasks, by_health=False) == 4
    disrupted: dict[str, list[int]] = {}
    assert replace_unhealthy(leader, disrupted, 1_000, {}) == 1
    # the first is on its way out: the second waits for its replacement
    assert replace_unhealthy(leader, disrupted, 2_000, {}) == 0
    assert leader.killed == ["t0"] and disrupted["j"] == [1_000]


def test_an_unhealthy_limit_lets_several_go_and_the_rate_holds_them_back() -> None:
    tasks = [task(i, "unhealthy" if i < 3 else "healthy") for i in range(10)]
    budget = {
        "unhealthyTasksLimit": {"limitOfUnhealthyContainers": 2},
        "ratePerInterval": {"intervalMs": "60000", "limitPerInterval": 2},
    }
    leader = leader_with(checked_job(10, budget), tasks)
    disrupted: dict[str, list[int]] = {}
    assert replace_unhealthy(leader, disrupted, 1_000, {}) == 2
    assert replace_unhealthy(leader, disrupted, 2_000, {}) == 0  # two in this minute
    assert len(leader.killed) == 2


def test_healthy_tasks_and_jobs_without_a_check_are_left_alone() -> None:
    leader = leader_with(checked_job(2), [task(0, "healthy"), task(1, "starting")])
    assert replace_unhealthy(leader, {}, 1_000, {}) == 0
    plain = checked_job(1)
    plain.jobDescriptor.container.attributes.clear()
    leader = leader_with(plain, [task(0, "unhealthy")])
    assert replace_unhealthy(leader, {}, 1_000, {}) == 0 and leader.killed == []


def test_a_budget_names_the_health_check_or_nothing() -> None:
    budget: dict[str, object] = {
        "unhealthyTasksLimit": {"limitOfUnhealthyContainers": 1},
        "rateUnlimited": {},
        "containerHealthProviders": [{"name": "healthCheck"}],
    }
    assert counts_health(checked_job(2, budget)) and not counts_health(checked_job(2))
    with pytest.raises(InvalidRequest) as refused:
        checked_job(2, {**budget, "containerHealthProviders": [{"name": "eureka"}]})
    assert "containerHealthProviders[0].name" in str(refused.value)
    assert "'healthCheck'" in str(refused.value)
