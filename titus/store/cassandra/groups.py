"""Creates in groups: the logged batches of creates that arrive together go as one.

Creates come from many API threads at once. Each would be its own logged batch: a round
trip, and on Cassandra a batch log write and its removal per create. Instead each create
queues its statements and waits; whoever finds nobody sending takes every create queued
by then (up to a size well under Cassandra's batch_size_fail_threshold_in_kb) and sends
them as one logged batch, and only when that batch is written are they all answered, so
nothing is acknowledged before it is durable. A create waits for no timer: alone it goes
at once, and under load the group is what queued while the previous one was in flight.

A group is all or nothing, as one create's batch was. What can refuse one create alone
happens before it joins (its group name's lightweight transaction, the check that its id
is new: see jobs.py). A group Cassandra refuses as a whole (a statement it will not take,
too large a batch) is sent again create by create, so the refusal reaches only the create
it belongs to. A group that cannot be written (timeouts past the retries) fails every
create in it; each then asks whether its job landed, as a lone create did.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from titus.store.cassandra.session import CassandraRefused, CassandraSession, Item

#: A group's bound values stay under this many bytes: Cassandra refuses batches above
#: batch_size_fail_threshold_in_kb (50 KB by default), so a group never gets close.
GROUP_MAX_BYTES = 32 * 1024
#: And under this many creates (a batch log entry per group, not per create).
GROUP_MAX_WRITES = 64
#: Group sizes kept in `BatchGroups.sent`: a long-lived API keeps only the latest.
SENT_KEPT = 1000


@dataclass(eq=False)
class _Queued:
    what: str
    items: list[Item]
    size: int
    done: bool = False
    error: BaseException | None = None


def _size(items: Sequence[Item]) -> int:
    """About the bytes the batch carries for these items (string values dominate)."""
    total = 0
    for _, args in items:
        for a in args:
            total += len(a) if isinstance(a, str | bytes) else 8
    return total


class BatchGroups:
    """Group commit of logged batches over one session (see the module docstring)."""

    def __init__(
        self,
        db: CassandraSession,
        *,
        max_bytes: int = GROUP_MAX_BYTES,
        max_writes: int = GROUP_MAX_WRITES,
    ):
        self._db = db
        self.max_bytes = max_bytes
        self.max_writes = max_writes
        self._queue_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._queue: list[_Queued] = []
        #: The size of each group sent (the latest SENT_KEPT), for tests and benchmarks.
        self.sent: list[int] = []

    def write(self, what: str, items: Sequence[Item]) -> None:
        """Write `items` in a logged batch shared with the creates queued alongside; return
        once it is written, or raise what its own write raised."""
        mine = _Queued(what, list(items), _size(items))
        with self._queue_lock:
            self._queue.append(mine)
        with self._send_lock:
            while not mine.done:
                self._send(self._take())
        if mine.error is not None:
            raise mine.error

    def _take(self) -> list[_Queued]:
        """The oldest queued creates that fit in one group (always at least one)."""
        with self._queue_lock:
            group: list[_Queued] = []
            size = 0
            for q in self._queue:
                if group and (len(group) >= self.max_writes or size + q.size > self.max_bytes):
                    break
                group.append(q)
                size += q.size
            del self._queue[: len(group)]
        return group

    def _send(self, group: list[_Queued]) -> None:
        items: list[Item] = [item for q in group for item in q.items]
        what = group[0].what if len(group) == 1 else f"{len(group)} creates ({group[0].what}, ...)"
        try:
            self._db.batch(what, items)
        except CassandraRefused as e:
            if len(group) == 1:
                group[0].error = e
            else:
                for q in group:  # one by one, so the refusal reaches only its own create
                    self._send([q])
                return
        except Exception as e:  # noqa: BLE001 - each create gets it, as its own would
            for q in group:
                q.error = e
        self.sent.append(len(group))
        if len(self.sent) > 2 * SENT_KEPT:
            del self.sent[:-SENT_KEPT]
        for q in group:
            q.done = True
