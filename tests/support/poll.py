"""The one way tests wait for something that happens in the background.

Agents, masters, watches and processes change state on their own threads and in other
processes; a test checks *that* the change happens, never how fast. `wait_until` polls a
condition until it holds and fails the test with a message saying what did not happen
(and what was seen last) once a generous bound has passed. The bound is there for a
slow, loaded machine, it is not a timing the test asserts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: How long a test waits unless it says otherwise: long enough for a loaded 2-core machine.
DEFAULT_TIMEOUT = 60.0
#: Seconds between two checks: short next to what tests wait for, long enough not to spin.
DEFAULT_INTERVAL = 0.05


def wait_until(
    what: str,
    condition: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = DEFAULT_INTERVAL,
    retry_on: tuple[type[BaseException], ...] = (),
    context: Callable[[], str] | None = None,
) -> T:
    """Call `condition` until it returns something truthy and return that value.

    `what` names the awaited event for the failure message. An exception of a type in
    `retry_on` (an API that is restarting, say) counts as "not yet" and is shown as the
    last value seen; any other exception fails the test at once. After `timeout` seconds
    the test fails with AssertionError naming `what`, the last value and, when given, the
    text `context()` returns (such as the logs of the processes under test).
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = condition()
        except retry_on as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:g} s waiting for {what}; last seen: {last!r}"
            if context is not None:
                message = f"{message}\n{context()}"
            raise AssertionError(message)
        time.sleep(interval)
