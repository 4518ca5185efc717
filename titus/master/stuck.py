"""Stuck work: tasks that stay in a passing state too long are killed and replaced.

A task should move on from Launched (the host got the launch), StartInitiated (the
container is being set up) and KillInitiated (the container is being stopped) within
minutes. When it does not, something below the master is wrong (a wedged engine, a host
that lost its network) and waiting longer helps nobody. Defaults are Titus's:
Launched 5 min; StartInitiated 12 min for batch, 5 min for service; KillInitiated 10 min.

A sick cluster makes many tasks stuck at once, and killing them all at once would turn a
partial outage into a total one, so kills go through a token bucket (`RateLimiter`):
the rest wait for the next round.

A task's age in its state comes from its status timestamp (wall clock), but a wall clock
stepped forward would make every task look stuck at once. So the leader remembers, per
task, when it first saw it in that state on its own monotonic clock (`StuckAges`), and a
task is as old as the smaller of the two: a step forward changes nothing, a step back
only delays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from titus.master import metrics as m
from titus.master.defaults import from_setting
from titus.master.view import LeaderView
from titus.model.job import Task
from titus.model.states import Reason, TaskState
from titus.settings import Settings

log = logging.getLogger("titus.master")


@dataclass(frozen=True)
class StuckTimeouts:
    """Seconds a task may stay in each passing state (see the module docstring)."""

    launched: float = from_setting("stuck_launched_sec")
    start_initiated_batch: float = from_setting("stuck_start_initiated_batch_sec")
    start_initiated_service: float = from_setting("stuck_start_initiated_service_sec")
    kill_initiated: float = from_setting("stuck_kill_initiated_sec")

    @classmethod
    def from_settings(cls, settings: Settings) -> StuckTimeouts:
        return cls(
            launched=settings.stuck_launched_sec,
            start_initiated_batch=settings.stuck_start_initiated_batch_sec,
            start_initiated_service=settings.stuck_start_initiated_service_sec,
            kill_initiated=settings.stuck_kill_initiated_sec,
        )

    def limit(self, state: TaskState, is_batch: bool) -> float | None:
        if state == TaskState.LAUNCHED:
            return self.launched
        if state == TaskState.START_INITIATED:
            return self.start_initiated_batch if is_batch else self.start_initiated_service
        if state == TaskState.KILL_INITIATED:
            return self.kill_initiated
        return None


@dataclass(frozen=True)
class Stuck:
    task_id: str
    state: TaskState
    seconds: float

    @property
    def reason(self) -> str:
        """`stuckInKillingState` for a kill that never ends, `stuckInState` otherwise."""
        if self.state == TaskState.KILL_INITIATED:
            return Reason.STUCK_IN_KILLING_STATE
        return Reason.STUCK_IN_STATE

    @property
    def message(self) -> str:
        return f"stuck in {self.state} for {self.seconds:.0f}s"


class StuckAges:
    """When this leader first saw each task in its passing state, on a monotonic clock,
    and how old its timestamp said it was then (see the module docstring)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[TaskState, float, float]] = {}

    def bound(self, rows: list[_Aged], elapsed: float) -> list[_Aged]:
        """`rows` with each age no more than the time seen since (`elapsed`: the monotonic
        clock now); tasks no longer among them are forgotten."""
        seen: dict[str, tuple[TaskState, float, float]] = {}
        out = []
        for task_id, state, wall_age, is_batch in rows:
            first = self._seen.get(task_id)
            if first is None or first[0] != state:
                first = (state, elapsed, max(wall_age, 0.0))
            seen[task_id] = first
            out.append((task_id, state, min(wall_age, first[2] + elapsed - first[1]), is_batch))
        self._seen = seen
        return out


#: (task id, state, seconds in it, is its job batch)
_Aged = tuple[str, TaskState, float, bool]


def find_stuck(
    since: Iterable[tuple[str, TaskState, int, bool]],
    timeouts: StuckTimeouts,
    now_ms: int,
    ages: StuckAges | None = None,
    elapsed: float = 0.0,
) -> list[Stuck]:
    """Tasks past their state's timeout, longest stuck first.

    `since` yields (task id, state, entered the state at (ms), is its job batch); with
    `ages` (and `elapsed`, its monotonic clock's reading now), clock steps do not count.
    """
    rows: list[_Aged] = [
        (task_id, state, (now_ms - entered) / 1000.0, is_batch)
        for task_id, state, entered, is_batch in since
        if timeouts.limit(state, is_batch) is not None
    ]
    if ages is not None:
        rows = ages.bound(rows, elapsed)
    out = [
        Stuck(task_id, state, age)
        for task_id, state, age, is_batch in rows
        if age >= (timeouts.limit(state, is_batch) or 0.0)
    ]
    out.sort(key=lambda s: -s.seconds)
    return out


class RateLimiter:
    """A token bucket: `burst` actions at once, then `per_sec` a second."""

    def __init__(
        self, per_sec: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_sec = per_sec
        self.burst = burst
        self.clock = clock
        self._tokens = burst
        self._at = clock()

    def try_take(self) -> bool:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_sec)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Clearing(Protocol):
    """What clearing stuck work needs of the leadership (see executor.py)."""

    @property
    def view(self) -> LeaderView: ...
    def now_ms(self) -> int: ...
    def save_task(self, task: Task) -> Task: ...
    def touch(self, job_id: str) -> None: ...
    def kill(self, task: Task, reason: str, message: str) -> None: ...
    def write_and_kill(self, task: Task) -> None: ...


def transitional_tasks(view: LeaderView) -> list[tuple[str, TaskState, int, bool]]:
    """What `find_stuck` looks at: the view's tasks in a passing state."""
    out = []
    for task_id, entered in view.transitional.items():
        state = view.state(task_id)
        job = view.jobs.get(view.job_of(task_id) or "")
        if state is None or job is None:
            continue
        out.append((task_id, state, entered, job.jobDescriptor.batch is not None))
    return out


def clear_stuck(
    leader: Clearing,
    timeouts: StuckTimeouts,
    limiter: RateLimiter,
    ages: StuckAges,
    elapsed: float,
) -> None:
    """Kill the tasks stuck past their timeout, as many as the rate limit lets through; a
    kill that never ends is given up on (the task ends, its job moves on)."""
    view = leader.view
    found = find_stuck(transitional_tasks(view), timeouts, leader.now_ms(), ages, elapsed)
    for stuck in found:
        if not limiter.try_take():
            log.warning("stuck tasks wait for the kill rate limit")
            return
        task = view.get(stuck.task_id)
        if task is None:
            continue
        m.STUCK_KILLS.labels(state=str(stuck.state)).inc()
        log.warning("task %s %s: killing it", task.id, stuck.message)
        if stuck.state == TaskState.KILL_INITIATED:
            # the host never confirmed the kill: give up on it and let the job move on
            finished = task.with_status(TaskState.FINISHED, stuck.reason, stuck.message)
            leader.write_and_kill(finished)  # the kill once more, in case it still runs
            leader.touch(task.jobId)
        else:
            leader.kill(task, stuck.reason, stuck.message)
