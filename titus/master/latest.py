"""A leadership's background worker that acts on the latest of what the loop hands it.

Some of a leader's work calls slow services (ELBv2, Application Auto Scaling, CloudWatch)
and must never hold up the loop that places and kills. The loop hands such a worker what
it wants done now (`want`); the worker takes the latest hand-over whenever it is free, so a
slow pass skips the stale ones in between instead of queueing them, and ends with the
leadership (`stop`).
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestWorker(Generic[T]):
    """Subclasses define `work` and call `_start` once they are ready to be called."""

    def __init__(self) -> None:
        self._wanted: T | None = None
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def _start(self, name: str) -> None:
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def want(self, item: T) -> None:
        """The latest work (the previous hand-over, if not taken yet, is dropped)."""
        with self._cond:
            self._wanted = item
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def work(self, item: T) -> bool:
        """One pass over `item`; False ends the worker."""
        raise NotImplementedError

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._wanted is None and not self._stopped:
                    self._cond.wait()
                if self._stopped or self._wanted is None:
                    return
                item, self._wanted = self._wanted, None
            if not self.work(item):
                return
