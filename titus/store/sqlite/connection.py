"""What every role of the SQLite store shares: one connection per thread, one writer at a
time, the epoch fence and the change feed entry written inside each write.

Each write is one transaction, which is what a Cassandra logged batch gives for a job and
its index rows. With synchronous=FULL a write that returned is on disk: a kill -9 (or a
power cut) loses nothing acknowledged.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from titus.store.errors import StaleEpoch
from titus.store.sqlite.schema import CHANGES_KEPT, SCHEMA, TRIM_EVERY, migrate, while_locked


class SqliteBase:
    """The file, its connections and transactions; the role mixins build on it."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._local = threading.local()
        self._write_lock = threading.Lock()
        # executescript commits on its own, so it runs outside _tx (whose COMMIT would
        # then fail); every statement in SCHEMA is idempotent.
        with self._write_lock:
            while_locked(lambda: self._conn().executescript(SCHEMA))
            while_locked(lambda: migrate(self._conn()))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            while_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self, epoch: int | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction; with an epoch, refused if a newer leader has written."""
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if epoch is not None:
                    self._check_epoch(conn, epoch)
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    @staticmethod
    def _check_epoch(conn: sqlite3.Connection, epoch: int) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
        current = int(row[0]) if row else 0
        if epoch < current:
            raise StaleEpoch(f"write from leader epoch {epoch}, but epoch {current} leads")

    @staticmethod
    def _changed(
        db: sqlite3.Connection, kind: str, entity_id: str, job_id: str, op: str = "put"
    ) -> None:
        """Append to the change feed inside the caller's transaction; trim now and then."""
        cur = db.execute(
            "INSERT INTO changes (kind, entity_id, job_id, op) VALUES (?, ?, ?, ?)",
            (kind, entity_id, job_id, op),
        )
        seq = cur.lastrowid or 0
        if seq % TRIM_EVERY == 0:
            db.execute("DELETE FROM changes WHERE seq <= ?", (seq - CHANGES_KEPT,))

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        return self._conn().execute(sql, args).fetchall()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
