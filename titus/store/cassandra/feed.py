"""Reading the change feed: what the API's view follows.

The feed is a table partitioned by minute, clustered by a time-based sequence number, with
a one-hour TTL (sequence.py). Entries join the logged batch of the write they describe; a
compare-and-set update cannot share a batch, so its entry is written right after it
(session.py). Sequence numbers come from writers' clocks, so an entry may become visible
after a reader has moved past its number (a slow or retried write): a reader re-reads the
last `feed_window` seconds and gets, once, what it had not seen. Each attempt of a write
takes a fresh number, so no write lands later than one request's timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from titus.store.cassandra.part import Part
from titus.store.cassandra.sequence import FEED_TTL_SECONDS, SEQ_PER_MS, feed_bucket, now_seq
from titus.store.records import Change, ChangeBatch

#: An entry as this reader remembers it: (seq, kind, entity id, op).
Seen = tuple[int, str, str, str]


class ChangeFeedPart(Part):
    """The ChangeFeed role (titus/store/roles.py), with this handle's memory of what it
    returned within the trailing window."""

    feed_window: float
    _feed_lock: threading.Lock
    _feed_from: int | None
    _feed_seen: dict[Seen, None]

    def _init_feed(self, window: float) -> None:
        self.feed_window = window
        self._feed_lock = threading.Lock()
        self._feed_from = None
        self._feed_seen = {}

    def _window_seq(self) -> int:
        return int(self.feed_window * 1000) * SEQ_PER_MS

    def _feed_rows(self, lower: int, upper_bucket: int, what: str) -> Iterable[Any]:
        """Feed entries with seq > `lower`, oldest first, bucket by bucket, paged."""
        return self._db.rows_after("changes_after", lower, upper_bucket, what)

    def changes_since(self, seq: int, limit: int = 1000) -> ChangeBatch:
        """Changes after `seq`, plus (once) those that landed late below it.

        Sequence numbers come from writers' clocks, so an entry may become visible after a
        reader has moved past its number. This handle re-reads the trailing `feed_window`
        and returns what it has not returned before, even below `seq`; entries it already
        returned are returned again only when asked for by a `seq` below them.
        """
        now = now_seq()
        window = self._window_seq()
        horizon = now - window
        first = now - FEED_TTL_SECONDS * 1000 * SEQ_PER_MS
        with self._feed_lock:
            if self._feed_from is not None:
                self._feed_from = max(self._feed_from, horizon)
                for key in [k for k in self._feed_seen if k[0] <= self._feed_from]:
                    del self._feed_seen[key]
            lower = seq if self._feed_from is None else min(seq, self._feed_from)
            seen = dict(self._feed_seen)
        out: list[Change] = []
        last_read = 0
        rows = self._feed_rows(lower, feed_bucket(now + window), "read the change feed")
        for r in rows:
            s = int(r.seq)
            last_read = max(last_read, s)
            key = (s, str(r.kind), str(r.entity_id), str(r.op))
            if s <= seq and key in seen:
                continue
            if len(out) >= limit and s != out[-1].seq:
                break
            out.append(Change(s, key[1], key[2], str(r.job_id), key[3]))
        out.sort(key=lambda c: c.seq)
        with self._feed_lock:
            self._feed_from = lower if self._feed_from is None else min(self._feed_from, lower)
            for c in out:
                self._feed_seen[(c.seq, c.kind, c.entity_id, c.op)] = None
        # Nothing newer than `lower` means the head is at most `seq`: no look-back (an idle
        # feed is polled several times a second).
        return ChangeBatch(out, first, max(last_read, seq))

    def _head_seq(self, now: int) -> int:
        """The newest entry's seq, looking back bucket by bucket over the feed's lifetime."""
        newest = feed_bucket(now + self._window_seq())
        oldest = feed_bucket(now - FEED_TTL_SECONDS * 1000 * SEQ_PER_MS)
        for bucket in range(newest, oldest - 1, -1):
            rows = self._db.execute("change_head", (bucket,), "read the change feed head")
            if rows:
                return int(rows[0].seq)
        return 0

    def last_change_seq(self) -> int:
        """The newest change's seq; this handle then counts the trailing window as seen,
        as a reader that starts from here loads everything else in full."""
        now = now_seq()
        head = self._head_seq(now)
        horizon = now - self._window_seq()
        if head:
            seen = [
                (int(r.seq), str(r.kind), str(r.entity_id), str(r.op))
                for r in self._feed_rows(horizon, feed_bucket(head), "read the change feed")
                if int(r.seq) <= head
            ]
            with self._feed_lock:
                self._feed_from = horizon
                self._feed_seen = dict.fromkeys(seen)
        return head
