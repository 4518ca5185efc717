"""The reconciler's decisions: what a user sees happen to their job's tasks."""

from __future__ import annotations

import uuid

from titus.master import reconciler as rc
from titus.model.job import Job, JobStatus, Task, TaskStatus
from titus.model.states import JobState, Reason, TaskState
from titus.model.validation import parse_job_descriptor


def batch_job(size: int = 1, retries: int = 0, **batch: object) -> Job:
    d = parse_job_descriptor(
        {
            "owner": {"teamEmail": "a@b.co"},
            "applicationName": "app",
            "container": {"image": {"name": "img", "tag": "1"}},
            "batch": {"size": size, "retryPolicy": {"immediate": {"retries": retries}}, **batch},
        }
    )
    return Job(id="job", jobDescriptor=d, status=JobStatus(state=JobState.ACCEPTED))


def service_job(desired: int) -> Job:
    d = parse_job_descriptor(
        {
            "owner": {"teamEmail": "a@b.co"},
            "applicationName": "app",
            "container": {"image": {"name": "img", "tag": "1"}},
            "service": {"capacity": {"min": 0, "desired": desired, "max": 10}},
        }
    )
    return Job(id="job", jobDescriptor=d, status=JobStatus(state=JobState.ACCEPTED))


def task(
    index: int = 0,
    state: TaskState = TaskState.STARTED,
    reason: str = "normal",
    resubmits: int = 0,
    system: int = 0,
) -> Task:
    tid = str(uuid.uuid4())
    return Task(
        id=tid,
        jobId="job",
        originalId=tid,
        status=TaskStatus(state=state, reasonCode=reason),
        taskContext={
            rc.INDEX: str(index),
            rc.RESUBMIT_NUMBER: str(resubmits),
            rc.SYSTEM_RESUBMIT_NUMBER: str(system),
        },
    )


def kinds(actions: list[rc.Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_new_batch_job_gets_one_task_per_index() -> None:
    actions = rc.reconcile_job(batch_job(size=3), [])
    assert [a.index for a in actions if isinstance(a, rc.CreateTask)] == [0, 1, 2]


def test_running_tasks_need_nothing() -> None:
    assert rc.reconcile_job(batch_job(), [task()]) == []


def test_failed_task_is_retried_until_retries_are_used_up() -> None:
    job = batch_job(retries=2)
    first = task(state=TaskState.FINISHED, reason=Reason.FAILED)
    actions = rc.reconcile_job(job, [first])
    assert kinds(actions) == ["CreateTask"]
    assert actions[0].resubmit_of is first  # type: ignore[union-attr]

    last = task(state=TaskState.FINISHED, reason=Reason.FAILED, resubmits=2)
    actions = rc.reconcile_job(job, [last])
    assert kinds(actions) == ["FinishJob"]
    assert actions[0].reason == Reason.FAILED  # type: ignore[union-attr]


def test_system_errors_do_not_use_up_retries() -> None:
    job = batch_job(retries=0)
    crashed = task(state=TaskState.FINISHED, reason=Reason.TRANSIENT_SYSTEM_ERROR)
    actions = rc.reconcile_job(job, [crashed])
    assert kinds(actions) == ["CreateTask"]
    ctx = rc.new_task_context(job, 0, "new", crashed, 0, True, now_ms=0)
    assert ctx[rc.RESUBMIT_NUMBER] == "1" and ctx[rc.SYSTEM_RESUBMIT_NUMBER] == "1"
    # a user failure after a system retry still has its full budget of 0 retries: none left
    after = task(state=TaskState.FINISHED, reason=Reason.FAILED, resubmits=1, system=1)
    assert kinds(rc.reconcile_job(job, [after])) == ["FinishJob"]


def test_successful_task_is_not_retried_and_job_finishes() -> None:
    actions = rc.reconcile_job(batch_job(retries=5), [task(state=TaskState.FINISHED)])
    assert kinds(actions) == ["FinishJob"]
    assert actions[0].reason == Reason.NORMAL  # type: ignore[union-attr]


def test_runtime_limit_is_retried_only_when_asked() -> None:
    over = task(state=TaskState.FINISHED, reason=Reason.RUNTIME_LIMIT_EXCEEDED)
    assert kinds(rc.reconcile_job(batch_job(retries=3), [over])) == ["FinishJob"]
    job = batch_job(retries=3, retryOnRuntimeLimit=True)
    assert kinds(rc.reconcile_job(job, [over])) == ["CreateTask"]


def test_delayed_retry_policy_delays_the_retry() -> None:
    d = batch_job().jobDescriptor.model_copy(deep=True)
    d.batch.retryPolicy = parse_job_descriptor(  # type: ignore[union-attr]
        {
            "owner": {"teamEmail": "a@b.co"},
            "applicationName": "app",
            "container": {"image": {"name": "img", "tag": "1"}},
            "batch": {"retryPolicy": {"delayed": {"initialDelayMs": "1500", "retries": 1}}},
        }
    ).batch.retryPolicy  # type: ignore[union-attr]
    job = Job(id="job", jobDescriptor=d, status=JobStatus(state=JobState.ACCEPTED))
    actions = rc.reconcile_job(job, [task(state=TaskState.FINISHED, reason=Reason.FAILED)])
    assert isinstance(actions[0], rc.CreateTask) and actions[0].delay_ms == 1500


def test_killed_job_kills_running_and_drops_queued_tasks() -> None:
    job = batch_job(size=2).with_status(JobState.KILL_INITIATED)
    running, queued = task(0), task(1, state=TaskState.ACCEPTED)
    actions = rc.reconcile_job(job, [running, queued])
    assert kinds(actions) == ["KillTask", "FinishUnlaunched"]
    done = [task(0, TaskState.FINISHED, Reason.KILLED), task(1, TaskState.FINISHED, Reason.KILLED)]
    assert kinds(rc.reconcile_job(job, done)) == ["FinishJob"]


def test_killing_twice_sends_no_second_kill() -> None:
    job = batch_job().with_status(JobState.KILL_INITIATED)
    assert rc.reconcile_job(job, [task(state=TaskState.KILL_INITIATED)]) == []


def test_service_fills_up_to_desired_and_replaces_finished_tasks() -> None:
    job = service_job(desired=2)
    assert kinds(rc.reconcile_job(job, [])) == ["CreateTask", "CreateTask"]
    gone = task(0, TaskState.FINISHED, Reason.KILLED)
    actions = rc.reconcile_job(job, [task(1), gone])
    assert kinds(actions) == ["ArchiveTask", "CreateTask"]
    assert actions[1].resubmit_of is gone  # type: ignore[union-attr]


def test_service_scale_down_kills_not_yet_running_tasks_first() -> None:
    job = service_job(desired=1)
    running, starting = task(0), task(1, state=TaskState.START_INITIATED)
    actions = rc.reconcile_job(job, [running, starting])
    assert len(actions) == 1 and isinstance(actions[0], rc.KillTask)
    assert actions[0].task is starting and actions[0].reason == Reason.SCALED_DOWN


def test_reconciling_twice_decides_the_same() -> None:
    job = batch_job(size=2, retries=1)
    tasks = [task(0, TaskState.FINISHED, Reason.FAILED), task(1)]
    assert kinds(rc.reconcile_job(job, tasks)) == kinds(rc.reconcile_job(job, tasks))


def in_zone(t: Task, zone: str, at: int) -> Task:
    t.taskContext["agent.zone"] = zone
    t.status.timestamp = at
    return t


def test_scale_down_takes_queued_then_starting_then_running() -> None:
    running = task(0)
    launched = task(1, state=TaskState.LAUNCHED)
    queued = task(2, state=TaskState.ACCEPTED)
    starting = task(3, state=TaskState.START_INITIATED)
    order = rc.scale_down_order([running, launched, queued, starting], 4)
    assert order == [queued, launched, starting, running]


def test_scale_down_of_running_tasks_keeps_zones_balanced() -> None:
    a = [in_zone(task(i), "a", 100 + i) for i in range(3)]
    b = [in_zone(task(3 + i), "b", 200 + i) for i in range(2)]
    c = [in_zone(task(5), "c", 300)]
    chosen = rc.scale_down_order([*a, *b, *c], 3)
    # zone a has the most: its newest goes first; then a and b are level and one of each goes
    assert chosen[0] is a[2]
    left = [t for t in [*a, *b, *c] if t not in chosen]
    per_zone = {z: sum(1 for t in left if t.taskContext["agent.zone"] == z) for z in "abc"}
    assert sorted(per_zone.values()) == [1, 1, 1]


def test_service_scale_down_through_the_reconciler_keeps_zones_balanced() -> None:
    job = service_job(desired=2)
    tasks = [
        in_zone(task(0), "a", 1),
        in_zone(task(1), "a", 2),
        in_zone(task(2), "b", 3),
    ]
    actions = rc.reconcile_job(job, tasks)
    assert len(actions) == 1 and isinstance(actions[0], rc.KillTask)
    assert actions[0].task is tasks[1]


def test_a_retry_waits_the_longer_delay_from_the_time_given() -> None:
    job = batch_job(retries=3)
    failed = task(state=TaskState.FINISHED, reason=Reason.FAILED)
    action = rc.CreateTask(job.id, 0, failed, delay_ms=2000)
    made = rc.new_task(job, action, "t2", now_ms=1_000_000, system_delay=5.0)
    assert made == rc.new_task(job, action, "t2", now_ms=1_000_000, system_delay=5.0)
    assert made.id == "t2" and made.status.timestamp == 1_000_000
    assert made.taskContext[rc.NOT_BEFORE] == str(1_000_000 + 5000)
    assert made.taskContext[rc.RESUBMIT_OF] == failed.id
    assert made.status.reasonMessage == (
        "retry delayed by 5s (retry policy 2s, system backoff 5s after repeated failures)"
    )


def test_a_disabled_service_job_keeps_its_tasks_and_creates_replaces_or_kills_none() -> None:
    job = service_job(desired=3)
    assert job.jobDescriptor.service is not None
    job.jobDescriptor.service.enabled = False
    gone = task(0, TaskState.FINISHED, Reason.FAILED)
    running = task(1)
    # below desired, with a failed task: archived, not replaced
    assert kinds(rc.reconcile_job(job, [running, gone])) == ["ArchiveTask"]
    # above desired: nothing scaled down
    job.jobDescriptor.service.capacity.desired = 0
    assert rc.reconcile_job(job, [running, task(2)]) == []
    # enabled again: back to desired
    job.jobDescriptor.service.enabled = True
    job.jobDescriptor.service.capacity.desired = 3
    assert kinds(rc.reconcile_job(job, [running])) == ["CreateTask", "CreateTask"]


def test_two_leaders_name_the_task_they_both_create_alike() -> None:
    """A deposed leader and its successor deciding the same creation name the same task,
    so the store keeps one (a task row is only created if absent)."""
    job = batch_job(size=2, retries=1)
    first = [rc.task_id_for(job, rc.CreateTask(job.id, i)) for i in (0, 1)]
    assert first == [rc.task_id_for(job, rc.CreateTask(job.id, i)) for i in (0, 1)]
    assert len(set(first)) == 2 and all(uuid.UUID(i) for i in first)
    failed = task(0, TaskState.FINISHED, "failed")
    retry = rc.task_id_for(job, rc.CreateTask(job.id, 0, failed))
    assert retry == rc.task_id_for(job, rc.CreateTask(job.id, 0, failed))
    assert retry not in first
    # a service index may start again after a scale down and up: a new version, a new name
    svc = service_job(1)
    again = svc.model_copy(update={"version": svc.version + 2})
    assert rc.task_id_for(svc, rc.CreateTask(svc.id, 0)) != rc.task_id_for(
        again, rc.CreateTask(svc.id, 0)
    )
