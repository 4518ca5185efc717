"""Loaded (through PYTHONPATH) only by the chaos suite's agent whose clock is stepped with
libfaketime, its monotonic clocks left real (FAKETIME_DONT_FAKE_MONOTONIC=1).

Debian's libfaketime 0.9.10 turns the absolute deadline of
clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) into a negative time in that mode, so
Python 3.11's time.sleep fails with EINVAL (libfaketime issue #426, fixed after 0.9.10).
Every other wait (select, locks, conditions, asyncio) is unaffected; time.sleep is made
one of those. Not a change to the agent: only to the clock library it runs under.
"""

from __future__ import annotations

import os
import select
import time

if "faketime" in os.environ.get("LD_PRELOAD", ""):

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            select.select([], [], [], left)

    time.sleep = _sleep
