"""Stuck work: tasks that stay in a passing state too long are killed and replaced.

A task should move on from Launched (the host got the launch), StartInitiated (the
container is being set up) and KillInitiated (the container is being stopped) within
minutes. When it does not, something below the master is wrong (a wedged engine, a host
that lost its network) and waiting longer helps nobody. Defaults are Titus's:
Launched 5 min; StartInitiated 12 min for batch, 5 min for service; KillInitiated 10 min.

A sick cluster makes many tasks stuck at once, and killing them all at once would turn a
partial outage into a total one, so kills go through a token bucket (`RateLimiter`):
the rest wait for the next round.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from titus.master.defaults import from_setting
from titus.model.states import Reason, TaskState
from titus.settings import Settings


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


def find_stuck(
    since: Iterable[tuple[str, TaskState, int, bool]],
    timeouts: StuckTimeouts,
    now_ms: int,
) -> list[Stuck]:
    """Tasks past their state's timeout, longest stuck first.

    `since` yields (task id, state, entered the state at (ms), is its job batch).
    """
    out = []
    for task_id, state, entered, is_batch in since:
        limit = timeouts.limit(state, is_batch)
        if limit is None:
            continue
        age = (now_ms - entered) / 1000.0
        if age >= limit:
            out.append(Stuck(task_id, state, age))
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
