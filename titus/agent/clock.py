"""The agent's steady wall clock: what time it is by the clock the agent had when it
started, carried forward on the monotonic clock.

A host's wall clock can be stepped (a broken time source, an operator's `date -s`, a
virtual machine resumed). The monotonic clock is never stepped. The agent reads the time
of a signed call from the leader (titus/model/signing.py) on this clock, so a step of the
host's clock does not make it refuse every call of the leader (which would see the host
as lost and give its tasks up while they still run), and the health check compares the
two clocks: while the wall clock is off, the host is unhealthy (nothing new is placed on
it) with a reason that says by how much, and healthy again once the clock is right.

An agent that starts with a wrong clock refuses the leader's calls with the reason (the
request time is N s away from this host's clock): fix the clock and restart it.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SteadyClock:
    """`now()` is the wall clock at creation plus the monotonic time elapsed since."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._wall = wall
        self._monotonic = monotonic
        self._anchor = wall() - monotonic()

    def now(self) -> float:
        return self._anchor + self._monotonic()

    __call__ = now

    def wall_offset(self) -> float:
        """How far the wall clock is from this clock now (positive: stepped forward)."""
        return self._wall() - self.now()


#: The one clock of this agent process (the call guard and the health check share it).
AGENT_CLOCK = SteadyClock()
