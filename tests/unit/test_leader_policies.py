"""The leader's rate limits and bookkeeping: system backoff for failing jobs, stuck task
detection and its kill rate limit, and the active view's incremental indexes."""

from __future__ import annotations

from tests.unit.test_leader import Clock
from titus.master.backoff import SystemBackoff, combined_delay_ms
from titus.master.stuck import RateLimiter, StuckTimeouts, find_stuck
from titus.master.view import LeaderView
from titus.model.job import Job, JobStatus, Task, TaskStatus
from titus.model.states import JobState, Reason, TaskState
from titus.model.validation import parse_job_descriptor

# ---- system backoff -------------------------------------------------------------------


def test_backoff_doubles_per_failure_up_to_the_maximum() -> None:
    clock = Clock(1000.0)
    b = SystemBackoff(1.0, 30.0, clock=clock)
    delays = [b.failed("job") for _ in range(7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert b.delay("other") == 0.0


def test_backoff_is_forgotten_after_success_or_a_quiet_period() -> None:
    clock = Clock(1000.0)
    b = SystemBackoff(1.0, 30.0, reset_after=60.0, clock=clock)
    for _ in range(4):
        b.failed("job")
    b.succeeded("job")
    assert b.delay("job") == 0.0
    for _ in range(4):
        b.failed("job")
    clock.now += 61
    assert b.delay("job") == 0.0
    assert b.failed("job") == 1.0


def test_the_longer_of_retry_policy_and_system_delay_wins() -> None:
    assert combined_delay_ms(0, 4.0) == 4000
    assert combined_delay_ms(10_000, 4.0) == 10_000
    assert combined_delay_ms(0, 0.0) == 0


# ---- stuck tasks ----------------------------------------------------------------------


def test_stuck_timeouts_follow_state_and_job_type() -> None:
    t = StuckTimeouts()
    now = 10_000_000
    minutes = 60_000
    tasks = [
        ("launched-6m", TaskState.LAUNCHED, now - 6 * minutes, True),
        ("launched-4m", TaskState.LAUNCHED, now - 4 * minutes, True),
        ("starting-batch-6m", TaskState.START_INITIATED, now - 6 * minutes, True),
        ("starting-service-6m", TaskState.START_INITIATED, now - 6 * minutes, False),
        ("starting-batch-13m", TaskState.START_INITIATED, now - 13 * minutes, True),
        ("killing-11m", TaskState.KILL_INITIATED, now - 11 * minutes, False),
        ("killing-9m", TaskState.KILL_INITIATED, now - 9 * minutes, False),
    ]
    stuck = find_stuck(tasks, t, now)
    assert [s.task_id for s in stuck] == [
        "starting-batch-13m",
        "killing-11m",
        "launched-6m",
        "starting-service-6m",
    ]
    reasons = {s.task_id: s.reason for s in stuck}
    assert reasons["killing-11m"] == Reason.STUCK_IN_KILLING_STATE
    assert reasons["launched-6m"] == Reason.STUCK_IN_STATE


def test_stuck_timeouts_are_configurable() -> None:
    t = StuckTimeouts(launched=1.0)
    now = 100_000
    assert [s.task_id for s in find_stuck([("t", TaskState.LAUNCHED, now - 2000, True)], t, now)]


def test_kill_rate_limiter_lets_a_burst_through_then_a_steady_rate() -> None:
    clock = Clock(1000.0)
    limiter = RateLimiter(per_sec=2.0, burst=3.0, clock=clock)
    assert [limiter.try_take() for _ in range(4)] == [True, True, True, False]
    clock.now += 1.0
    assert [limiter.try_take() for _ in range(3)] == [True, True, False]


# ---- the active view's indexes ---------------------------------------------------------


def service_job(job_id: str, group: str = "") -> Job:
    body: dict[str, object] = {
        "owner": {"teamEmail": "a@b.co"},
        "applicationName": "app",
        "container": {
            "image": {"name": "img", "tag": "1"},
            "resources": {"cpu": 2, "memoryMB": 1024, "diskMB": 10000, "networkMbps": 128},
        },
        "service": {"capacity": {"min": 0, "desired": 2, "max": 10}},
    }
    if group:
        body["capacityGroup"] = group
    d = parse_job_descriptor(body)
    return Job(id=job_id, jobDescriptor=d, status=JobStatus(state=JobState.ACCEPTED))


def make_task(task_id: str, job_id: str, state: TaskState, host: str | None = None) -> Task:
    ctx = {"task.index": "0"}
    if host:
        ctx["agent.id"] = host
    return Task(
        id=task_id,
        jobId=job_id,
        originalId=task_id,
        status=TaskStatus(state=state),
        taskContext=ctx,
    )


def test_view_keeps_host_and_group_usage_as_tasks_move() -> None:
    view = LeaderView()
    view.put_job(service_job("j", group="web"))
    view.put_task(make_task("t1", "j", TaskState.ACCEPTED))
    assert view.pending == {"t1"} and view.usage_of("h1").tasks == 0
    view.put_task(make_task("t1", "j", TaskState.LAUNCHED, "h1"))
    usage = view.usage_of("h1")
    assert (usage.tasks, usage.launching, usage.used[0], usage.jobs) == (1, 1, 2.0, {"j": 1})
    assert view.groups_usage()["web"]["cpu"] == 2.0
    assert "t1" in view.transitional and not view.pending
    view.put_task(make_task("t1", "j", TaskState.STARTED, "h1"))
    assert view.usage_of("h1").launching == 0 and "t1" not in view.transitional
    view.put_task(make_task("t1", "j", TaskState.FINISHED, "h1"))
    assert view.usage_of("h1").tasks == 0 and view.groups_usage()["web"]["cpu"] == 0.0
    assert view.finished == {"t1"}
    view.drop_job("j")
    assert len(view) == 0 and not view.finished
