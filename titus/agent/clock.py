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

An agent that starts with a wrong clock (a time source that syncs late) refuses the
leader's calls with the reason (the request time is N s away from this host's clock)
until the wall clock is corrected: the first signed call of the leader whose time agrees
with the corrected wall clock moves this clock onto it (`agree_with`), and the host is
healthy again. A call's time alone never moves it: both the host's clock and the leader's
signed time have to say so, and only before any call was taken on this clock (then it was
right; a wall clock stepped afterwards is the one that is wrong).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("titus.agent.clock")


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
        #: A signed call was taken on this clock: it agreed with the caller, so it is right.
        self._confirmed = False

    def now(self) -> float:
        return self._anchor + self._monotonic()

    __call__ = now

    def confirm(self) -> None:
        """A signed call's time agreed with this clock."""
        self._confirmed = True

    def wall_offset(self) -> float:
        """How far the wall clock is from this clock now (positive: stepped forward)."""
        return self._wall() - self.now()

    def agree_with(self, signed_time: float, tolerance: float) -> bool:
        """A verified caller's time is more than `tolerance` off this clock: if no call
        was taken on this clock yet and the wall clock agrees with the caller, this clock
        was wrong from the start (the wall clock has been corrected since): take the wall
        clock's time and say so."""
        wall = self._wall()
        if (
            self._confirmed
            or abs(wall - signed_time) > tolerance
            or abs(wall - self.now()) <= tolerance
        ):
            return False
        moved = wall - self.now()
        self._anchor = wall - self._monotonic()
        log.warning(
            "the wall clock was corrected since this agent started, and the leader's signed "
            "time agrees with it: the agent's clock moves by %+.1f s",
            moved,
        )
        return True


#: The one clock of this agent process (the call guard and the health check share it).
AGENT_CLOCK = SteadyClock()
