"""The agent's steady wall clock: what time it is by the clock the agent had when it
started, carried forward on the boot clock (CLOCK_BOOTTIME).

A host's wall clock can be stepped (a broken time source, an operator's `date -s`, a
virtual machine resumed). The boot clock is never stepped, and unlike the monotonic clock
it keeps counting while the host is suspended. The agent reads the time
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


def boot_time() -> float:
    """Seconds since boot, suspended time included (a monotonic clock stops while the host
    is suspended, and the agent's clock would fall behind by as long)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class SteadyClock:
    """`now()` is the wall clock at creation plus the time elapsed since (never stepped)."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = boot_time,
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
