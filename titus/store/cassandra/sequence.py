"""The change feed's keys: time-based sequence numbers and the minute buckets that hold them.

Writers and readers must compute them alike: a writer numbers each entry from its clock
(ms * SEQ_PER_MS + n, never going back within one process), a reader walks the buckets
between its last position and now.
"""

from __future__ import annotations

import threading
import time

# Entries live an hour (a reader further behind reloads in full), in one partition per
# minute, ordered by a time-based sequence number (ms * SEQ_PER_MS + n).
FEED_TTL_SECONDS = 3600
FEED_BUCKET_MS = 60_000
SEQ_PER_MS = 1024


def feed_bucket(seq: int) -> int:
    """The partition (one a minute) that holds sequence number `seq`."""
    return seq // (FEED_BUCKET_MS * SEQ_PER_MS)


def now_seq() -> int:
    """The lowest sequence number of the current millisecond."""
    return int(time.time() * 1000) * SEQ_PER_MS


class SequenceClock:
    """This process's entry numbers: from the wall clock, strictly growing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, now_seq())
            return self._last
