"""Folding what hosts say into the store: task reports, lost hosts, and after an election
the comparison of what every host actually runs with what the store says it should.

It exists apart from the leader loop because this is where the actual state enters:
a report moves a task forward (never back), a host's going ends its tasks, and a new
leader adopts, kills or relaunches until store and hosts agree. The loop only decides
when this runs; these functions decide what a report means.
"""

from __future__ import annotations

import logging
from itertools import filterfalse
from typing import Protocol

from titus.master import metrics as m
from titus.master import reconciler as rc
from titus.master.backoff import SystemBackoff
from titus.master.cluster import HostReport, Placement
from titus.master.view import LeaderView
from titus.model.job import S3Location, Task
from titus.model.launch import TaskReport, TaskSpec
from titus.model.names import (
    HOST_CONTEXT_PREFIX,
    HOST_TASK_CONTEXT_KEYS,
    LogContextKey,
    TaskContextKey,
)
from titus.model.states import TASK_ON_HOST, Reason, TaskState, is_forward

log = logging.getLogger("titus.master")

#: Reasons that count against a job's system backoff: the job's own failures. Kills and
#: scale-downs are wanted; lost hosts and stuck kills are the platform's doing.
NOT_THROTTLED = frozenset(
    {
        Reason.NORMAL,
        Reason.KILLED,
        Reason.SCALED_DOWN,
        Reason.LOST,
        Reason.STUCK_IN_KILLING_STATE,
    }
)
#: taskContext keys in which the agent reports where a task's logs go in S3 (upload.py
#: writes them; the master cannot import the agent, so the names are repeated here).
CTX_LOG_BUCKET = LogContextKey.S3_BUCKET
CTX_LOG_KEY = LogContextKey.S3_KEY
CTX_LOG_REGION = LogContextKey.S3_REGION
#: Bounds on what one report may write into a task's context.
MAX_REPORTED_KEYS = 32
MAX_REPORTED_VALUE_CHARS = 1024
#: Where the API serves a task's live log (titus/api/tasks.py).
LIVE_LOG_PATH = "/api/v3/tasks/{task_id}/logs"


class Reporting(Protocol):
    """What folding host reports in needs of the leadership: its view and backoff, the
    task writes (with its epoch), and the few commands it sends hosts."""

    @property
    def view(self) -> LeaderView: ...
    @property
    def backoff(self) -> SystemBackoff: ...
    def now_ms(self) -> int: ...
    def guard(self) -> None: ...
    def save_task(self, task: Task) -> Task: ...
    def touch(self, job_id: str) -> None: ...
    def kill_on_host(self, task_id: str, host_id: str | None, reason: str) -> None: ...
    def acknowledge(self, report: HostReport) -> None: ...
    def lost_hosts(self) -> set[str]: ...
    def ended_host(self, host_id: str) -> None: ...


def apply_report(leader: Reporting, hr: HostReport) -> None:
    report = hr.report
    state = leader.view.state(report.taskId)
    if state is None:
        if not report.terminal:
            log.warning("host %s runs unknown task %s: killing", hr.host_id, report.taskId)
            leader.kill_on_host(report.taskId, hr.host_id, Reason.KILLED)
        else:
            leader.acknowledge(hr)
        return
    placed_on = leader.view.agent_of(report.taskId)
    if placed_on and hr.host_id and placed_on != hr.host_id:
        log.warning("task %s reported by %s, placed on %s", report.taskId, hr.host_id, placed_on)
        if not report.terminal:
            leader.kill_on_host(report.taskId, hr.host_id, Reason.KILLED)
        return
    new_state = TaskState(report.state)
    if not is_forward(state, new_state):
        if report.terminal:
            leader.acknowledge(hr)
        elif new_state == state:
            refresh_context(leader, report)
        return
    task = leader.view.get(report.taskId)
    if task is None:
        return  # its document cannot be read (quarantined, its job left alone) or is gone
    updated = with_report(task, report, new_state, leader.now_ms())
    record(leader, task, updated)
    if report.terminal:
        leader.acknowledge(hr)


def refresh_context(leader: Reporting, report: TaskReport) -> None:
    """A host says again what it said, with news in the context (a health check's
    verdict): keep the news, leave the status as it is."""
    task = leader.view.get(report.taskId)
    if task is None:
        return
    news = {k: v for k, v in host_context(report.context).items() if task.taskContext.get(k) != v}
    if not news:
        return
    updated = task.model_copy(deep=True)
    updated.taskContext.update(news)
    leader.save_task(updated)
    leader.touch(task.jobId)


def record(leader: Reporting, before: Task, after: Task) -> None:
    """Save a task's move and have its job reconciled; its metrics and backoff count it
    only when the store took it (a move back is refused, see Executor.save_task)."""
    saved = leader.save_task(after)
    if saved.status == after.status:
        observe(leader, before, after)
    leader.touch(before.jobId)


def observe(leader: Reporting, before: Task, after: Task) -> None:
    """Metrics and backoff bookkeeping of one task's move."""
    if after.state == TaskState.STARTED and before.state != TaskState.STARTED:
        created = (before.statusHistory[0] if before.statusHistory else before.status).timestamp
        m.SUBMIT_TO_START.observe(max(0.0, (after.status.timestamp - created) / 1000.0))
    if after.state == TaskState.FINISHED:
        reason = after.status.reasonCode
        if reason == Reason.NORMAL:
            leader.backoff.succeeded(after.jobId)
        else:
            m.TASK_FAILURES.labels(reason=bounded_reason(reason)).inc()
            if reason not in NOT_THROTTLED:
                leader.backoff.failed(after.jobId)


def host_context(reported: dict[str, str]) -> dict[str, str]:
    """What of a report's context a host may write: `agent.*` keys and the keys of what it
    runs (HOST_TASK_CONTEXT_KEYS), within bounds; the master's own keys are never taken
    from a host."""
    allowed = {
        k: v[:MAX_REPORTED_VALUE_CHARS]
        for k, v in reported.items()
        if k.startswith(HOST_CONTEXT_PREFIX) or k in HOST_TASK_CONTEXT_KEYS
    }
    if len(allowed) != len(reported):
        log.warning(
            "a host reported task context it does not own: %s",
            sorted(set(reported) - set(allowed))[:10],
        )
    return dict(sorted(allowed.items())[:MAX_REPORTED_KEYS])


def with_report(task: Task, report: TaskReport, state: TaskState, now_ms: int) -> Task:
    reason = report.reasonCode
    message = report.reasonMessage
    kill_reason = task.taskContext.get(rc.KILL_REASON)
    if state == TaskState.FINISHED and kill_reason and reason in (Reason.KILLED, kill_reason):
        reason = kill_reason
        if task.state == TaskState.KILL_INITIATED and task.status.reasonMessage:
            message = task.status.reasonMessage  # why it was killed, not that it was
    # a container that ran and ended between two polls skipped states on the way:
    # record them, so the history reads as the task's whole life
    new = task
    if report.exitCode is not None:
        for step in (TaskState.START_INITIATED, TaskState.STARTED):
            if is_forward(new.state, step) and is_forward(step, state):
                new = new.with_status(step, "normal", "")
    new = new.with_status(state, reason, message)
    new.status.timestamp = report.timestamp or now_ms
    new.taskContext.update(host_context(report.context))
    if report.containerId:
        new.taskContext[TaskContextKey.CONTAINER_ID] = report.containerId
    if report.exitCode is not None:
        new.taskContext[TaskContextKey.EXIT_CODE] = str(report.exitCode)
    set_log_location(new)
    return new


def apply_lost_hosts(leader: Reporting) -> None:
    """End the tasks of hosts that went away; a host stays lost for the leader until all
    of its tasks are ended, so a store error part-way leaves none on it for good."""
    lost = leader.lost_hosts()
    for host in lost:
        on_host = leader.view.on_host(host)
        leader.view.prefetch(on_host)  # their documents in one read
        for task_id in on_host:
            task = leader.view.get(task_id)
            if task is None or task.state not in TASK_ON_HOST:
                continue
            finish_lost(leader, task, f"host {host} went away")
        leader.ended_host(host)


def reconcile_actual(
    leader: Reporting, actual: dict[str, list[TaskReport]] | None, unknown_task_grace: float
) -> list[Placement]:
    """After election: adopt what hosts run, kill what nobody owns, lose what vanished;
    returns the launches the old leader decided but no host received, to be sent again.

    `actual` is None when not every host answered in time: then tasks on hosts that did
    not answer are left alone (the driver reports hosts that really went away).
    Safe to run again from the start if interrupted (every step is idempotent)."""
    complete = actual is not None
    actual = actual or {}
    view = leader.view
    reported: dict[str, set[str]] = {}
    for host_id, reports in actual.items():
        ids = [report.taskId for report in reports]
        reported[host_id] = set(ids)
        # most hosts' reports only confirm what the store says: nothing to do
        for i in view.unconfirmed(host_id, ids, [report.state for report in reports]):
            apply_report(leader, HostReport(host_id, reports[i]))
    now = leader.now_ms()
    relaunch: list[Placement] = []
    everywhere: set[str] | None = None  # every task some host reported, made if needed
    for host, on_host in list(view.by_host.items()):
        if host not in actual and not complete:
            continue  # the host did not answer in time: its tasks are left alone
        # placed there and not reported there: reported by no host?
        missing = list(filterfalse(reported.get(host, set()).__contains__, on_host))
        if not missing:
            continue
        if everywhere is None:
            everywhere = set().union(*reported.values())
        missing = [t for t in missing if t not in everywhere and view.state(t) in TASK_ON_HOST]
        view.prefetch(missing)  # their documents at once
        for task_id in missing:
            task = view.get(task_id)
            if task is None or task.state not in TASK_ON_HOST:
                continue
            state = task.state
            if host in actual:
                if state == TaskState.LAUNCHED:
                    # decided and saved, but the launch never arrived (the old leader
                    # died in between): the host takes it now; launches are idempotent
                    job = leader.view.jobs.get(task.jobId)
                    if job is not None:
                        relaunch.append(Placement(TaskSpec.for_task(job, task), host))
                elif now - task.status.timestamp > unknown_task_grace * 1000:
                    finish_lost(leader, task, f"host {host} does not run it")
            elif state == TaskState.LAUNCHED:
                finish_lost(
                    leader,
                    task,
                    f"host {host} went away before the task started",
                    Reason.TRANSIENT_SYSTEM_ERROR,
                )
            else:
                finish_lost(leader, task, f"host {host} is gone")
    return relaunch


def finish_lost(leader: Reporting, task: Task, message: str, reason: str = Reason.LOST) -> None:
    if task.state == TaskState.KILL_INITIATED:
        reason = lost_reason(task)
    record(leader, task, task.with_status(TaskState.FINISHED, reason, message))


def lost_reason(task: Task) -> str:
    """The reason a task that vanished with its host ends with: its kill's reason when it
    was being killed (the kill was wanted; the host's going only ended it sooner, and a
    user's kill must not come back as a retry), `lost` otherwise."""
    if task.state == TaskState.KILL_INITIATED:
        return task.taskContext.get(rc.KILL_REASON) or Reason.KILLED
    return Reason.LOST


def set_log_location(task: Task) -> None:
    """Say where the task's logs are: live through the API while it is on a host, and in
    S3 where the agent uploads them (the agent reports bucket, key prefix and region in
    the task's context; users and tools read `logLocation`, not the context)."""
    task.logLocation.liveStream = LIVE_LOG_PATH.format(task_id=task.id)
    ctx = task.taskContext
    bucket = ctx.get(CTX_LOG_BUCKET)
    if bucket:
        task.logLocation.s3 = S3Location(
            bucket=bucket, key=ctx.get(CTX_LOG_KEY, ""), region=ctx.get(CTX_LOG_REGION, "")
        )


KNOWN_REASONS = frozenset(r.value for r in Reason)


def bounded_reason(reason: str) -> str:
    """Reason codes as metric labels: known ones as they are, anything else as `other`."""
    return reason if reason in KNOWN_REASONS else "other"
