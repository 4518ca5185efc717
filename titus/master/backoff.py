"""System backoff for failing work: a job whose tasks keep failing is throttled.

A job's own retryPolicy says how soon *it* wants a failed task retried (often at once).
That alone lets one broken job (a bad image, a crash at start) turn the cluster into a
launch loop: every iteration places, starts and tears down its containers again, taking
launch slots, image pulls and ENIs from everyone else. So the master keeps a second delay
per job that doubles with each failure in a row (1 s, 2 s, 4 s ... up to 30 s by default)
and is forgotten once the job has gone a quiet period without failing or one of its tasks
succeeds. The delay a replacement waits is the larger of the two; it is shown to users in
the task's context (`task.retryDelay`) and status message.

The state is the leader's memory only: after a failover a failing job starts again from
the initial delay, which costs at most a few extra quick retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _JobFailures:
    count: int = 0
    last: float = 0.0


class SystemBackoff:
    """Exponential delay per job: `initial * 2**(failures-1)`, at most `maximum` seconds."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        reset_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        #: A job that has not failed for this long starts again from `initial`.
        self.reset_after = reset_after if reset_after is not None else 4 * maximum
        self.clock = clock
        self._jobs: dict[str, _JobFailures] = {}

    def failed(self, job_id: str) -> float:
        """Record a failure of one of the job's tasks; the delay (seconds) for its retry."""
        now = self.clock()
        f = self._jobs.get(job_id)
        if f is None or now - f.last > self.reset_after:
            f = self._jobs[job_id] = _JobFailures()
        f.count += 1
        f.last = now
        return self.delay(job_id)

    def delay(self, job_id: str) -> float:
        """The current delay of the job (0 when it has no recent failures)."""
        f = self._jobs.get(job_id)
        if f is None or f.count == 0 or self.initial <= 0:
            return 0.0
        if self.clock() - f.last > self.reset_after:
            return 0.0
        return float(min(self.maximum, self.initial * 2 ** min(f.count - 1, 62)))

    def succeeded(self, job_id: str) -> None:
        """A task of the job ran to the end normally (or stayed up): forget its failures."""
        self._jobs.pop(job_id, None)

    def forget(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)


def combined_delay_ms(policy_delay_ms: int, system_delay_sec: float) -> int:
    """The delay a replacement waits: the job's own retry delay or the system's, whichever
    is longer (the system's throttle never shortens what the job asked for)."""
    return max(int(policy_delay_ms), int(round(system_delay_sec * 1000)))
