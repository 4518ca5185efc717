"""Leadership fencing and the small settings kept in `meta`.

`claim_epoch` moves the `epoch` row forward only, by compare-and-set. A write that carries
an epoch first reads that row at LOCAL_SERIAL and is refused (`StaleEpoch`) when a newer
leader has claimed. (The window between that read and the write is bounded by how fast a
deposed leader notices it lost its coordination session.)
"""

from __future__ import annotations

import threading

from titus.store.cassandra.part import Part
from titus.store.cassandra.session import CassandraSession
from titus.store.errors import StaleEpoch


class Fence:
    """The epoch row, and the newest epoch this process has seen (a stale write is refused
    without a read once a newer leader is known)."""

    def __init__(self, db: CassandraSession):
        self._db = db
        self._known_epoch = 0
        self._lock = threading.Lock()

    def meta(self, key: str, serial: bool = False) -> str | None:
        read = self._db.serial_read if serial else self._db.execute
        rows = read("meta_get", (key,), f"read {key}")
        return str(rows[0].value) if rows else None

    def _saw(self, epoch: int) -> None:
        with self._lock:
            self._known_epoch = max(self._known_epoch, epoch)

    def check(self, epoch: int | None) -> None:
        """Refuse a write from a leader older than the newest claimed epoch."""
        if epoch is None:
            return
        if epoch < self._known_epoch:
            raise StaleEpoch(
                f"write from leader epoch {epoch}, but epoch {self._known_epoch} leads"
            )
        current = int(self.meta("epoch", serial=True) or 0)
        self._saw(current)
        if epoch < current:
            raise StaleEpoch(f"write from leader epoch {epoch}, but epoch {current} leads")

    def claim(self, epoch: int) -> None:
        """Move the epoch row forward by compare-and-set; never backwards."""
        while True:
            raw = self.meta("epoch", serial=True)
            current = int(raw) if raw is not None else 0
            if epoch < current:
                self._saw(current)
                raise StaleEpoch(f"leader epoch {epoch} is older than epoch {current}")
            if epoch == current:
                break
            if raw is None:
                applied, row = self._db.lwt("meta_insert_new", ("epoch", str(epoch)), "claim epoch")
            else:
                applied, row = self._db.lwt("meta_cas", (str(epoch), "epoch", raw), "claim epoch")
            if applied or (len(row) > 1 and row.value == str(epoch)):
                break
        self._saw(epoch)

    def current(self) -> int:
        raw = self.meta("epoch", serial=True)
        return int(raw) if raw is not None else 0


class LeadershipPart(Part):
    """The Leadership role (titus/store/roles.py)."""

    def claim_epoch(self, epoch: int) -> None:
        self._fence.claim(epoch)

    def current_epoch(self) -> int:
        return self._fence.current()

    def get_meta(self, key: str) -> str | None:
        return self._fence.meta(key)

    def set_meta(self, key: str, value: str, *, epoch: int | None = None) -> None:
        self._fence.check(epoch)
        self._db.execute("meta_set", (key, value), f"set {key}")
