"""Leadership fencing and the small settings kept in `meta`.

`claim_epoch` moves the `epoch` row forward only, by compare-and-set.

The leader's writes that decide something carry the check in the write itself: each job,
task and meta row has a `fence` column, the epoch of the last leader that wrote it, and a
leader's update of such a row is one compare-and-set, `IF version = ? AND fence <= <mine>`,
that also raises the fence. A leader deposed between learning the epoch and writing cannot
land a write on a row its successor has written (the fence says so, in the same Paxos
round as the write), and a row its successor has not written yet is guarded by the
version: the successor's first write of it is refused as changed and re-reads it. A task
the leader creates is named after what it replaces (titus/master/reconciler.py
`task_id_for`), so two leaders creating the same task write the same row, by
`INSERT ... IF NOT EXISTS`: one of them lands, and never over what the other made of it.

Conditional batches hold one partition only (Cassandra refuses them across partitions),
so the leader's other writes, which move final states between tables (archiving) or clean
up what was carried out (kill and move requests, scheduler results), read the epoch row
at LOCAL_SERIAL first and are refused (`StaleEpoch`) when a newer leader claimed. Writing
the same final state twice is harmless; the window between that read and the write is
bounded by how fast a deposed leader notices it lost its coordination session. A task move
is decided by one fenced compare-and-set of the task's row, and the rest of it written
from there at the move's own timestamp (moves.py), so it is fenced as a task update is.
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

    def check_known(self, epoch: int | None) -> None:
        """Refuse, without a read, a write from a leader older than one this process knows
        of (the write's own fence condition covers the rest)."""
        if epoch is not None and epoch < self._known_epoch:
            raise StaleEpoch(
                f"write from leader epoch {epoch}, but epoch {self._known_epoch} leads"
            )

    def check(self, epoch: int | None) -> None:
        """Refuse a write from a leader older than the newest claimed epoch."""
        if epoch is None:
            return
        self.check_known(epoch)
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
        if epoch is None:
            self._db.execute("meta_set", (key, value), f"set {key}")
            return
        self._fence.check_known(epoch)
        what = f"set {key}"
        applied, row, attempts = self._db.lwt_attempts(
            "meta_set_fenced", (value, epoch, key, epoch), what
        )
        if not applied and (len(row) == 1 or row.fence is None):  # no row, or no fence yet
            applied, row, more = self._db.lwt_attempts(
                "meta_set_fenced_first", (value, epoch, key), what
            )
            attempts += more
        fence = row.fence if not applied and len(row) > 1 else None
        # Refused after a retry with our own fence: the attempt that timed out did apply.
        if not applied and not (attempts > 1 and fence == epoch):
            raise StaleEpoch(f"{key} was written by leader epoch {fence}; epoch {epoch} is older")
