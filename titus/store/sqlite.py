"""The embedded JobStore: one SQLite file in WAL mode.

Tables mirror the Cassandra layout (one JSON document per entity, small index tables) so
both backends answer the same access patterns. Each write is one transaction, which is
what a Cassandra logged batch gives for a job and its index rows. With synchronous=FULL a
write that returned is on disk: a kill -9 (or a power cut) loses nothing acknowledged.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from titus.model.job import Job, Task
from titus.store.base import (
    ActiveIndex,
    ActiveState,
    Change,
    ChangeBatch,
    Conflict,
    GroupNameTaken,
    IdempotencyRecord,
    KillRequest,
    MoveRequest,
    StaleEpoch,
    TaskRow,
)
from titus.store.codec import (
    dump_document,
    dump_request,
    load_kill_request,
    load_move_request,
    task_facts,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS active_jobs (job_id TEXT PRIMARY KEY, version INTEGER NOT NULL,
    value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS active_tasks (task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL,
    version INTEGER NOT NULL, value TEXT NOT NULL, state TEXT, agent_id TEXT, ts INTEGER);
CREATE INDEX IF NOT EXISTS active_tasks_by_job ON active_tasks (job_id);
CREATE TABLE IF NOT EXISTS archived_jobs (job_id TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS archived_tasks (task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL,
    value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS archived_tasks_by_job ON archived_tasks (job_id);
CREATE TABLE IF NOT EXISTS job_group_names (name TEXT PRIMARY KEY, job_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dirty_jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kill_requests (job_id TEXT NOT NULL, task_id TEXT NOT NULL,
    value TEXT NOT NULL, PRIMARY KEY (job_id, task_id));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
    entity_id TEXT NOT NULL, job_id TEXT NOT NULL, op TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS capacity_groups (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency_keys (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
    job_id TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS task_attributes (task_id TEXT NOT NULL, key TEXT NOT NULL,
    job_id TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (task_id, key));
CREATE INDEX IF NOT EXISTS task_attributes_by_job ON task_attributes (job_id);
CREATE TABLE IF NOT EXISTS move_requests (source_job_id TEXT NOT NULL, task_id TEXT NOT NULL,
    value TEXT NOT NULL, PRIMARY KEY (source_job_id, task_id));
CREATE TABLE IF NOT EXISTS instance_groups (name TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scheduler_results (task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL,
    value TEXT NOT NULL);
"""

# Change feed entries kept; older ones are trimmed every TRIM_EVERY writes.
CHANGES_KEPT = 100_000
TRIM_EVERY = 1_000


#: Columns written next to each active task's document, so a new leader's start-up reads
#: its indexes' facts (TaskRow) without taking them out of 100,000 JSON documents.
_TASK_INSERT = (
    "INSERT INTO active_tasks (task_id, job_id, version, value, state, agent_id, ts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a store file made by an earlier version up to the current schema: add the
    plain task columns and fill them from the documents (once, in one transaction)."""
    columns = {str(r[1]) for r in conn.execute("PRAGMA table_info(active_tasks)")}
    missing = [c for c in ("state", "agent_id", "ts") if c not in columns]
    if not missing:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {str(r[1]) for r in conn.execute("PRAGMA table_info(active_tasks)")}
        for column, kind in (("state", "TEXT"), ("agent_id", "TEXT"), ("ts", "INTEGER")):
            if column not in columns:
                conn.execute(f"ALTER TABLE active_tasks ADD COLUMN {column} {kind}")
        conn.execute(
            "UPDATE active_tasks SET state=json_extract(value, '$.status.state'), "
            "agent_id=json_extract(value, '$.taskContext.\"agent.id\"'), "
            "ts=json_extract(value, '$.status.timestamp')"
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _while_locked(step: Callable[[], object], patience_sec: float = 30.0) -> None:
    """Run a set-up step, waiting while another process holds the file.

    Several processes (api, masters) may open a new store file at once; switching it to
    WAL, or creating its tables, can then answer "database is locked" at once instead of
    waiting on the busy timeout. It is retried with backoff until `patience_sec` passes.
    """
    deadline = time.monotonic() + patience_sec
    delay = 0.01
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class SqliteJobStore:
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
            _while_locked(lambda: self._conn().executescript(SCHEMA))
            _while_locked(lambda: _migrate(self._conn()))

    # ---- plumbing -----------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            _while_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
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

    # ---- jobs ---------------------------------------------------------------------------
    def create_job(self, job: Job, tasks: Iterable[Task] = (), *, mark_dirty: bool = False) -> Job:
        job = job.model_copy(update={"version": 1})
        name = job.jobDescriptor.job_group_name
        with self._tx() as db:
            if name is not None:
                row = db.execute(
                    "SELECT job_id FROM job_group_names WHERE name=?", (name,)
                ).fetchone()
                if row is not None:
                    raise GroupNameTaken(name, str(row[0]))
                db.execute("INSERT INTO job_group_names VALUES (?, ?)", (name, job.id))
            try:
                db.execute(
                    "INSERT INTO active_jobs VALUES (?, ?, ?)", (job.id, 1, dump_document(job))
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"job {job.id} exists") from None
            self._changed(db, "job", job.id, job.id)
            for task in tasks:
                t = task.model_copy(update={"version": 1})
                db.execute(_TASK_INSERT, (t.id, t.jobId, 1, dump_document(t), *task_facts(t)))
                self._changed(db, "task", t.id, t.jobId)
            if mark_dirty:
                db.execute("INSERT INTO dirty_jobs (job_id) VALUES (?)", (job.id,))
        return job

    def get_job(self, job_id: str) -> Job | None:
        rows = self._read("SELECT value FROM active_jobs WHERE job_id=?", (job_id,))
        if not rows:
            rows = self._read("SELECT value FROM archived_jobs WHERE job_id=?", (job_id,))
        return Job.model_validate_json(str(rows[0][0])) if rows else None

    def update_job(self, job: Job, *, epoch: int | None = None) -> Job:
        new = job.model_copy(update={"version": job.version + 1})
        with self._tx(epoch) as db:
            cur = db.execute(
                "UPDATE active_jobs SET version=?, value=? WHERE job_id=? AND version=?",
                (new.version, dump_document(new), job.id, job.version),
            )
            if cur.rowcount != 1:
                raise Conflict(f"job {job.id} changed since version {job.version}")
            self._changed(db, "job", job.id, job.id)
        return new

    def list_active_jobs(self) -> list[Job]:
        return [
            Job.model_validate_json(str(r[0])) for r in self._read("SELECT value FROM active_jobs")
        ]

    def count_active_jobs(self) -> int:
        return int(self._read("SELECT count(*) FROM active_jobs")[0][0])  # type: ignore[call-overload]

    def archive_job(self, job: Job, *, epoch: int | None = None) -> None:
        with self._tx(epoch) as db:
            db.execute(
                "INSERT OR REPLACE INTO archived_jobs VALUES (?, ?)", (job.id, dump_document(job))
            )
            db.execute("DELETE FROM active_jobs WHERE job_id=?", (job.id,))
            task_ids = db.execute(
                "SELECT task_id FROM active_tasks WHERE job_id=?", (job.id,)
            ).fetchall()
            db.execute(
                "INSERT OR REPLACE INTO archived_tasks "
                "SELECT task_id, job_id, value FROM active_tasks WHERE job_id=?",
                (job.id,),
            )
            for (task_id,) in task_ids:
                self._changed(db, "task", task_id, job.id, "archive")
            db.execute("DELETE FROM active_tasks WHERE job_id=?", (job.id,))
            db.execute("DELETE FROM move_requests WHERE source_job_id=?", (job.id,))
            self._changed(db, "job", job.id, job.id, "archive")
            db.execute("DELETE FROM kill_requests WHERE job_id=?", (job.id,))
            db.execute("DELETE FROM job_group_names WHERE job_id=?", (job.id,))

    # ---- tasks --------------------------------------------------------------------------
    def create_task(self, task: Task, *, epoch: int | None = None) -> Task:
        new = task.model_copy(update={"version": 1})
        with self._tx(epoch) as db:
            try:
                db.execute(
                    _TASK_INSERT, (new.id, new.jobId, 1, dump_document(new), *task_facts(new))
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"task {task.id} exists") from None
            self._changed(db, "task", new.id, new.jobId)
        return new

    def update_task(self, task: Task, *, epoch: int | None = None) -> Task:
        new = task.model_copy(update={"version": task.version + 1})
        with self._tx(epoch) as db:
            cur = db.execute(
                "UPDATE active_tasks SET version=?, value=?, state=?, agent_id=?, ts=? "
                "WHERE task_id=? AND version=?",
                (new.version, dump_document(new), *task_facts(new), task.id, task.version),
            )
            if cur.rowcount != 1:
                raise Conflict(f"task {task.id} changed since version {task.version}")
            self._changed(db, "task", task.id, task.jobId)
        return new

    def archive_task(self, task: Task, *, epoch: int | None = None) -> None:
        with self._tx(epoch) as db:
            db.execute(
                "INSERT OR REPLACE INTO archived_tasks VALUES (?, ?, ?)",
                (task.id, task.jobId, dump_document(task)),
            )
            db.execute("DELETE FROM active_tasks WHERE task_id=?", (task.id,))
            self._changed(db, "task", task.id, task.jobId, "archive")

    def get_task(self, task_id: str) -> Task | None:
        rows = self._read("SELECT value FROM active_tasks WHERE task_id=?", (task_id,))
        if not rows:
            rows = self._read("SELECT value FROM archived_tasks WHERE task_id=?", (task_id,))
        return Task.model_validate_json(str(rows[0][0])) if rows else None

    def list_tasks(self, job_id: str, *, include_archived: bool = False) -> list[Task]:
        rows = self._read("SELECT value FROM active_tasks WHERE job_id=?", (job_id,))
        if include_archived:
            rows += self._read("SELECT value FROM archived_tasks WHERE job_id=?", (job_id,))
        return [Task.model_validate_json(str(r[0])) for r in rows]

    def list_active_tasks(self) -> list[Task]:
        return [
            Task.model_validate_json(str(r[0]))
            for r in self._read("SELECT value FROM active_tasks")
        ]

    def load_active(self) -> ActiveState:
        return self.load_active_index().parsed()

    def load_active_index(self) -> ActiveIndex:
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            jobs = [
                Job.model_validate_json(v) for (v,) in conn.execute("SELECT value FROM active_jobs")
            ]
            rows = conn.execute(
                "SELECT task_id, job_id, version, state, agent_id, ts, value FROM active_tasks"
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        return ActiveIndex(jobs=jobs, tasks=list(map(TaskRow._make, rows)))

    # ---- the API's requests to the master -----------------------------------------------
    def mark_dirty(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO dirty_jobs (job_id) VALUES (?)", (job_id,))

    def take_dirty(self) -> list[str]:
        with self._tx() as db:
            rows = db.execute("SELECT seq, job_id FROM dirty_jobs ORDER BY seq").fetchall()
            if rows:
                db.execute("DELETE FROM dirty_jobs WHERE seq <= ?", (rows[-1][0],))
        return list(dict.fromkeys(str(r[1]) for r in rows))

    def add_kill_request(self, request: KillRequest) -> None:
        value = dump_request(request)
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO kill_requests VALUES (?, ?, ?)",
                (request.job_id, request.task_id, value),
            )
            db.execute("INSERT INTO dirty_jobs (job_id) VALUES (?)", (request.job_id,))

    def list_kill_requests(self, job_id: str) -> list[KillRequest]:
        rows = self._read("SELECT value FROM kill_requests WHERE job_id=?", (job_id,))
        return [load_kill_request(r[0]) for r in rows]

    def delete_kill_request(self, request: KillRequest, *, epoch: int | None = None) -> None:
        with self._tx(epoch) as db:
            db.execute(
                "DELETE FROM kill_requests WHERE job_id=? AND task_id=?",
                (request.job_id, request.task_id),
            )

    # ---- leadership ---------------------------------------------------------------------
    def claim_epoch(self, epoch: int) -> None:
        with self._tx(epoch) as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('epoch', ?)", (str(epoch),))

    def current_epoch(self) -> int:
        rows = self._read("SELECT value FROM meta WHERE key='epoch'")
        return int(str(rows[0][0])) if rows else 0

    def list_instance_groups(self) -> dict[str, str]:
        return {str(n): str(v) for n, v in self._read("SELECT name, state FROM instance_groups")}

    def set_instance_group(self, name: str, state: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO instance_groups VALUES (?, ?)", (name, state))

    def put_scheduler_result(
        self, task_id: str, job_id: str, value: str, *, epoch: int | None = None
    ) -> None:
        with self._tx(epoch) as db:
            db.execute(
                "INSERT OR REPLACE INTO scheduler_results VALUES (?, ?, ?)",
                (task_id, job_id, value),
            )

    def get_scheduler_result(self, task_id: str) -> str | None:
        rows = self._read("SELECT value FROM scheduler_results WHERE task_id=?", (task_id,))
        return str(rows[0][0]) if rows else None

    def delete_scheduler_result(self, task_id: str, *, epoch: int | None = None) -> None:
        with self._tx(epoch) as db:
            db.execute("DELETE FROM scheduler_results WHERE task_id=?", (task_id,))

    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key=?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str, *, epoch: int | None = None) -> None:
        with self._tx(epoch) as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # ---- change feed --------------------------------------------------------------------
    def changes_since(self, seq: int, limit: int = 1000) -> ChangeBatch:
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            rows = conn.execute(
                "SELECT seq, kind, entity_id, job_id, op FROM changes WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
            first, last = conn.execute("SELECT min(seq), max(seq) FROM changes").fetchone()
        finally:
            conn.execute("COMMIT")
        changes = [Change(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]
        return ChangeBatch(changes, int(first or 0), int(last or 0))

    def last_change_seq(self) -> int:
        row = self._read("SELECT max(seq) FROM changes")
        return int(str(row[0][0] or 0))

    # ---- capacity groups ----------------------------------------------------------------
    def create_capacity_group(self, name: str, value: str) -> None:
        with self._tx() as db:
            try:
                db.execute("INSERT INTO capacity_groups VALUES (?, ?)", (name, value))
            except sqlite3.IntegrityError:
                raise Conflict(f"capacity group {name} exists") from None

    def put_capacity_group(self, name: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO capacity_groups VALUES (?, ?)", (name, value))

    def get_capacity_group(self, name: str) -> str | None:
        rows = self._read("SELECT value FROM capacity_groups WHERE name=?", (name,))
        return str(rows[0][0]) if rows else None

    def list_capacity_groups(self) -> dict[str, str]:
        return {str(n): str(v) for n, v in self._read("SELECT name, value FROM capacity_groups")}

    def delete_capacity_group(self, name: str) -> bool:
        with self._tx() as db:
            cur = db.execute("DELETE FROM capacity_groups WHERE name=?", (name,))
            return cur.rowcount == 1

    # ---- idempotency keys ---------------------------------------------------------------
    def claim_idempotency_key(
        self, key: str, fingerprint: str, job_id: str, ttl_sec: float
    ) -> IdempotencyRecord:
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT fingerprint, job_id, expires_at FROM idempotency_keys WHERE key=?", (key,)
            ).fetchone()
            if row is not None and float(row[2]) > now:
                return IdempotencyRecord(str(row[0]), str(row[1]), float(row[2]))
            record = IdempotencyRecord(fingerprint, job_id, now + ttl_sec)
            db.execute(
                "INSERT OR REPLACE INTO idempotency_keys VALUES (?, ?, ?, ?)",
                (key, fingerprint, job_id, record.expires_at),
            )
            # expired keys go on the way (Cassandra's TTL does this by itself)
            db.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (now,))
        return record

    def release_idempotency_key(self, key: str, job_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM idempotency_keys WHERE key=? AND job_id=?", (key, job_id))

    # ---- task attributes ----------------------------------------------------------------
    def update_task_attributes(
        self, task_id: str, job_id: str, upsert: dict[str, str], delete: Iterable[str] = ()
    ) -> None:
        with self._tx() as db:
            for k, v in upsert.items():
                db.execute(
                    "INSERT OR REPLACE INTO task_attributes VALUES (?, ?, ?, ?)",
                    (task_id, k, job_id, v),
                )
            for k in delete:
                db.execute("DELETE FROM task_attributes WHERE task_id=? AND key=?", (task_id, k))
            self._changed(db, "task", task_id, job_id)

    def get_task_attributes(self, task_id: str) -> dict[str, str]:
        rows = self._read("SELECT key, value FROM task_attributes WHERE task_id=?", (task_id,))
        return {str(k): str(v) for k, v in rows}

    def list_task_attributes(self, job_id: str) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for t, k, v in self._read(
            "SELECT task_id, key, value FROM task_attributes WHERE job_id=?", (job_id,)
        ):
            out.setdefault(str(t), {})[str(k)] = str(v)
        return out

    # ---- task moves ---------------------------------------------------------------------
    def add_move_request(self, request: MoveRequest) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO move_requests VALUES (?, ?, ?)",
                (request.source_job_id, request.task_id, dump_request(request)),
            )
            for job_id in (request.source_job_id, request.target_job_id):
                db.execute("INSERT INTO dirty_jobs (job_id) VALUES (?)", (job_id,))

    def list_move_requests(self, job_id: str) -> list[MoveRequest]:
        rows = self._read("SELECT value FROM move_requests WHERE source_job_id=?", (job_id,))
        return [load_move_request(r[0]) for r in rows]

    def delete_move_request(self, request: MoveRequest, *, epoch: int | None = None) -> None:
        with self._tx(epoch) as db:
            db.execute(
                "DELETE FROM move_requests WHERE source_job_id=? AND task_id=?",
                (request.source_job_id, request.task_id),
            )

    def list_all_kill_requests(self) -> list[KillRequest]:
        rows = self._read("SELECT value FROM kill_requests")
        return [load_kill_request(r[0]) for r in rows]

    def list_all_move_requests(self) -> list[MoveRequest]:
        return [load_move_request(r[0]) for r in self._read("SELECT value FROM move_requests")]

    def move_task(
        self, task: Task, source: Job, target: Job, *, epoch: int | None = None
    ) -> tuple[Task, Job, Job]:
        if task.jobId != target.id:
            raise ValueError(f"task {task.id} must name its target job {target.id}")
        new_task = task.model_copy(update={"version": task.version + 1})
        new_source = source.model_copy(update={"version": source.version + 1})
        new_target = target.model_copy(update={"version": target.version + 1})
        with self._tx(epoch) as db:
            cur = db.execute(
                "UPDATE active_tasks SET job_id=?, version=?, value=?, state=?, agent_id=?, ts=? "
                "WHERE task_id=? AND version=? AND job_id=?",
                (
                    target.id,
                    new_task.version,
                    dump_document(new_task),
                    *task_facts(new_task),
                    task.id,
                    task.version,
                    source.id,
                ),
            )
            if cur.rowcount != 1:
                raise Conflict(
                    f"task {task.id} changed since version {task.version} or left job {source.id}"
                )
            for old, new in ((source, new_source), (target, new_target)):
                cur = db.execute(
                    "UPDATE active_jobs SET version=?, value=? WHERE job_id=? AND version=?",
                    (new.version, dump_document(new), old.id, old.version),
                )
                if cur.rowcount != 1:
                    raise Conflict(f"job {old.id} changed since version {old.version}")
            db.execute(
                "DELETE FROM move_requests WHERE source_job_id=? AND task_id=?",
                (source.id, task.id),
            )
            # attributes users set on the task follow it to its new job
            db.execute("UPDATE task_attributes SET job_id=? WHERE task_id=?", (target.id, task.id))
            self._changed(db, "job", source.id, source.id)
            self._changed(db, "job", target.id, target.id)
            self._changed(db, "task", task.id, target.id)
        return new_task, new_source, new_target

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
