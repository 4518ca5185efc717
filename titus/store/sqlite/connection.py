"""What every role of the SQLite store shares: one connection per thread, one writer at a
time, the epoch fence and the change feed entry written inside each write.

Each write is one transaction, which is what a Cassandra logged batch gives for a job and
its index rows. With synchronous=FULL a write that returned is on disk: a kill -9 (or a
power cut) loses nothing acknowledged.

Creates come from many API threads at once, and one fsync per create would cap them at
the disk's sync rate. So they commit in groups (`_grouped`): each waits for the write lock;
whoever gets it runs every write waiting by then in one transaction, each in a savepoint of
its own (one that fails is undone alone and fails alone), commits once, and only then are
all of them answered.

A caller on an event loop cannot wait for the lock: it submits its write instead
(`_submit`) and gets a future. A writer thread of the store drains the same queue (the same
groups, the same single commit) and completes each future once its group is on disk. The
thread ends after WRITER_IDLE_SEC without work and is started again by the next write, so
an idle store holds no thread.

Checkpoints (copying the WAL back into the database file, with an fsync of the file) are
not left to SQLite's automatic ones, which run inside whichever COMMIT crosses the
threshold and hold every writer waiting behind the lock for as long as the copy and its
fsync take. A checkpointer thread of the store runs them instead, after every
CHECKPOINT_EVERY_COMMITS commits: a passive one (never waiting for readers or writers)
while writes go on, then one for the few frames written meanwhile with this process's
writers held back, since the log is reused from its start only once a checkpoint has
caught up with its end.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from titus.store.errors import StaleEpoch, StoreNotWritten
from titus.store.metrics import Operation, count_error
from titus.store.sqlite.schema import CHANGES_KEPT, SCHEMA, TRIM_EVERY, migrate, while_locked

#: SQLite's words for a store that cannot take a write or a read now (a full disk, another
#: writer holding the lock past the timeout, an I/O error): the caller may try again later.
_UNAVAILABLE = ("disk is full", "database is locked", "disk i/o error", "unable to open")


T = TypeVar("T")

#: How long the writer thread waits for more submitted writes before it ends.
WRITER_IDLE_SEC = 1.0
#: Commits between two checkpoints (SQLite's automatic ones come every 1,000 pages; a
#: commit writes a few pages).
CHECKPOINT_EVERY_COMMITS = 200
#: The write-ahead log is cut back to this size when it starts over after a checkpoint, so
#: a burst of writes that outran the checkpointer does not leave a large file behind.
WAL_SIZE_LIMIT = 4 * 1024 * 1024


@dataclass(eq=False)
class _Write:
    """One write waiting for a group commit, and how it ended (also told to `future`, for
    a write that was submitted rather than waited for)."""

    run: Callable[[sqlite3.Connection], Any]
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    future: Future[Any] | None = None

    def finish(self) -> None:
        self.done = True
        if self.future is not None:
            if self.error is not None:
                self.future.set_exception(self.error)
            else:
                self.future.set_result(self.result)


def unavailable(exc: sqlite3.OperationalError, operation: Operation) -> Exception:
    """The error a caller sees: StoreNotWritten, a StoreUnavailable (503 at the API,
    ridden out by the leader), when the store cannot answer now, else the error itself (a
    bug: let it surface).

    Every SQLite failure a caller sees passes here, so here it is counted
    (`titus_store_errors_total`)."""
    count_error("sqlite", operation)
    text = str(exc).lower()
    if any(words in text for words in _UNAVAILABLE):
        # every failed transaction is rolled back (`_tx`, `_commit_group`): nothing of it
        # was written
        return StoreNotWritten(f"sqlite: {exc}")
    return exc


class SqliteBase:
    """The file, its connections and transactions; the role mixins build on it."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Write] = []
        self._queued = threading.Condition(self._queue_lock)
        self._writer_running = False
        self._commits = 0  # since the last checkpoint
        self._checkpoint_wanted = False
        self._checkpoint_due = threading.Condition(self._queue_lock)
        self._checkpointer_running = False
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
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's (see above)
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self, epoch: int | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction; with an epoch, refused if a newer leader has written."""
        conn = self._conn()
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise unavailable(exc, "write") from exc
            try:
                if epoch is not None:
                    self._check_epoch(conn, epoch)
                yield conn
            except BaseException as exc:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):
                    raise unavailable(exc, "write") from exc
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise unavailable(exc, "write") from exc
                self._committed()

    def _grouped(self, run: Callable[[sqlite3.Connection], T]) -> T:
        """Run `run(db)` in a transaction it may share with other threads' writes (see
        the module docstring); its result, or its own exception, once committed."""
        write = _Write(run)
        with self._queue_lock:
            self._queue.append(write)
        with self._write_lock:
            if not write.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit_group(batch)
        if write.error is not None:
            raise write.error
        return write.result

    def _submit(self, run: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Queue `run(db)` for the next group commit without waiting: the future has its
        result, or its own exception, once the group is on disk."""
        write = _Write(run, future=Future())
        with self._queue_lock:
            self._queue.append(write)
            if self._writer_running:
                self._queued.notify()
            else:
                self._writer_running = True
                threading.Thread(target=self._write_loop, name="sqlite-writer", daemon=True).start()
        assert write.future is not None
        return write.future

    def _write_loop(self) -> None:
        """The writer thread: commit what is queued, group by group, until idle."""
        try:
            while True:
                with self._queue_lock:
                    if not self._queue:
                        self._queued.wait(WRITER_IDLE_SEC)
                        if not self._queue:
                            self._writer_running = False
                            return
                with self._write_lock:
                    with self._queue_lock:
                        batch, self._queue = self._queue, []
                    if batch:
                        self._commit_group(batch)
        finally:
            self.close()  # this thread's connection

    def _commit_group(self, batch: list[_Write]) -> None:
        conn = self._conn()
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
                for w in batch:
                    conn.execute("SAVEPOINT w")
                    try:
                        w.result = w.run(conn)
                    except sqlite3.OperationalError:
                        raise  # the transaction itself is in trouble: all of it fails
                    except Exception as exc:
                        conn.execute("ROLLBACK TO w")
                        w.error = exc
                    conn.execute("RELEASE w")
                conn.execute("COMMIT")
                self._committed()
            except sqlite3.OperationalError as exc:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                failed = unavailable(exc, "write")
                for w in batch:
                    w.result, w.error = None, failed
            except BaseException as exc:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                for w in batch:
                    w.result, w.error = None, exc
        finally:
            for w in batch:
                w.finish()

    def _committed(self) -> None:
        """Count a commit; every CHECKPOINT_EVERY_COMMITS, have the checkpointer run."""
        if self.path == ":memory:":
            return
        with self._queue_lock:
            self._commits += 1
            if self._commits < CHECKPOINT_EVERY_COMMITS:
                return
            self._commits = 0
            self._checkpoint_wanted = True
            if self._checkpointer_running:
                self._checkpoint_due.notify()
                return
            self._checkpointer_running = True
        threading.Thread(
            target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
        ).start()

    def _checkpoint_loop(self) -> None:
        """The checkpointer thread: a passive checkpoint whenever one is due, until idle."""
        try:
            while True:
                with self._queue_lock:
                    if not self._checkpoint_due.wait_for(
                        lambda: self._checkpoint_wanted, WRITER_IDLE_SEC * 10
                    ):
                        self._checkpointer_running = False
                        return
                    self._checkpoint_wanted = False
                conn = self._conn()
                with suppress(sqlite3.Error):  # busy or failing: the next one copies the rest
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    # the log restarts only once a checkpoint caught up with its end: the
                    # few frames written meanwhile are copied with writers held back
                    with self._write_lock:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            self.close()  # this thread's connection

    @staticmethod
    def _check_epoch(conn: sqlite3.Connection, epoch: int) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
        current = int(row[0]) if row else 0
        if epoch < current:
            raise StaleEpoch(f"write from leader epoch {epoch}, but epoch {current} leads")

    @staticmethod
    def _changed(
        db: sqlite3.Connection, kind: str, entity_id: str, job_id: str, op: str = "put"
    ) -> int:
        """Append to the change feed inside the caller's transaction; trim now and then.
        The entry's sequence number."""
        cur = db.execute(
            "INSERT INTO changes (kind, entity_id, job_id, op) VALUES (?, ?, ?, ?)",
            (kind, entity_id, job_id, op),
        )
        seq = cur.lastrowid or 0
        if seq % TRIM_EVERY == 0:
            db.execute("DELETE FROM changes WHERE seq <= ?", (seq - CHANGES_KEPT,))
        return seq

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            raise unavailable(exc, "read") from exc

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
