"""Jobs: active and archived documents, and job group names unique among active jobs."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import Future

from titus.model.job import Job, Task, now_ms
from titus.store.codec import dump_document, task_facts
from titus.store.errors import Conflict, GroupNameTaken
from titus.store.quarantine import decode_job, decode_jobs
from titus.store.records import Created
from titus.store.sqlite.archive import ArchivePart
from titus.store.sqlite.schema import TASK_INSERT


class JobsPart(ArchivePart):
    """The job half of the Jobs role (titus/store/roles.py); tasks are in tasks.py."""

    def create_job(self, job: Job, tasks: Iterable[Task] = (), *, mark_dirty: bool = False) -> Job:
        """Committed with the creates of other threads waiting at the same moment (one
        fsync for all: see connection.py), and answered only once on disk."""
        job = job.model_copy(update={"version": 1})
        self._grouped(self._job_insert(job, list(tasks), mark_dirty))
        return job

    def submit_create_job(self, job: Job, *, mark_dirty: bool = False) -> Future[Created]:
        """`create_job` for a caller that must not block (the API's event loop): the write
        joins the same group commits through the store's writer thread, and the future is
        resolved once it is on disk."""
        job = job.model_copy(update={"version": 1})
        insert = self._job_insert(job, [], mark_dirty)
        return self._submit(lambda db: Created(job, insert(db)))

    def _job_insert(
        self, job: Job, first: list[Task], mark_dirty: bool
    ) -> Callable[[sqlite3.Connection], int]:
        """The write of a new job (version 1) and its first tasks; it returns the change
        feed sequence number of the job's entry."""
        name = job.jobDescriptor.job_group_name
        document = dump_document(job)

        def write(db: sqlite3.Connection) -> int:
            if name is not None:
                row = db.execute(
                    "SELECT job_id FROM job_group_names WHERE name=?", (name,)
                ).fetchone()
                if row is not None:
                    raise GroupNameTaken(name, str(row[0]))
                db.execute("INSERT INTO job_group_names VALUES (?, ?)", (name, job.id))
            try:
                db.execute("INSERT INTO active_jobs VALUES (?, ?, ?)", (job.id, 1, document))
            except sqlite3.IntegrityError:
                raise Conflict(f"job {job.id} exists") from None
            seq = self._changed(db, "job", job.id, job.id)
            for task in first:
                t = task.model_copy(update={"version": 1})
                db.execute(TASK_INSERT, (t.id, t.jobId, 1, dump_document(t), *task_facts(t)))
                self._changed(db, "task", t.id, t.jobId)
            if mark_dirty:
                db.execute("INSERT INTO dirty_jobs (job_id) VALUES (?)", (job.id,))
            return seq

        return write

    def get_job(self, job_id: str) -> Job | None:
        rows = self._read("SELECT value FROM active_jobs WHERE job_id=?", (job_id,))
        if not rows:
            rows = self._read("SELECT value FROM archived_jobs WHERE job_id=?", (job_id,))
        return decode_job(str(rows[0][0]), job_id) if rows else None

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
        return decode_jobs([str(r[0]) for r in self._read("SELECT value FROM active_jobs")])

    def count_active_jobs(self) -> int:
        return int(self._read("SELECT count(*) FROM active_jobs")[0][0])  # type: ignore[call-overload]

    def archive_job(self, job: Job, *, epoch: int | None = None) -> None:
        with self._tx(epoch) as db:
            self._move_job_to_archive(db, job.id, dump_document(job))

    def _move_job_to_archive(
        self, db: sqlite3.Connection, job_id: str, value: str | None
    ) -> list[str]:
        """Archive a job with `value` as its document (None: as stored, unread) and all its
        active tasks as stored; return the task ids moved."""
        archived_at = now_ms()
        if value is None:
            db.execute(
                "INSERT OR REPLACE INTO archived_jobs (job_id, value, archived_at) "
                "SELECT job_id, value, ? FROM active_jobs WHERE job_id=?",
                (archived_at, job_id),
            )
        else:
            db.execute(
                "INSERT OR REPLACE INTO archived_jobs (job_id, value, archived_at) "
                "VALUES (?, ?, ?)",
                (job_id, value, archived_at),
            )
        db.execute("DELETE FROM active_jobs WHERE job_id=?", (job_id,))
        task_ids = [
            str(r[0])
            for r in db.execute("SELECT task_id FROM active_tasks WHERE job_id=?", (job_id,))
        ]
        db.execute(
            "INSERT OR REPLACE INTO archived_tasks (task_id, job_id, value, archived_at) "
            "SELECT task_id, job_id, value, ? FROM active_tasks WHERE job_id=?",
            (archived_at, job_id),
        )
        for task_id in task_ids:
            self._changed(db, "task", task_id, job_id, "archive")
        db.execute("DELETE FROM active_tasks WHERE job_id=?", (job_id,))
        db.execute("DELETE FROM move_requests WHERE source_job_id=?", (job_id,))
        self._changed(db, "job", job_id, job_id, "archive")
        db.execute("DELETE FROM kill_requests WHERE job_id=?", (job_id,))
        db.execute("DELETE FROM job_group_names WHERE job_id=?", (job_id,))
        self._archived(db)
        return task_ids

    # ---- the Repair role (titus/store/roles.py) ------------------------------------------
    def raw_record(self, kind: str, record_id: str) -> str | None:
        if kind not in _ACTIVE:
            raise ValueError(f"record kind must be job or task, not {kind!r}")
        table, key = _ACTIVE[kind]
        rows = self._read(f"SELECT value FROM {table} WHERE {key}=?", (record_id,))
        return str(rows[0][0]) if rows else None

    def set_aside(self, kind: str, record_id: str) -> list[str]:
        if kind not in _ACTIVE:
            raise ValueError(f"record kind must be job or task, not {kind!r}")
        with self._tx() as db:
            if kind == "job":
                if (
                    db.execute("SELECT 1 FROM active_jobs WHERE job_id=?", (record_id,)).fetchone()
                    is None
                ):
                    return []
                return [record_id, *self._move_job_to_archive(db, record_id, None)]
            row = db.execute(
                "SELECT job_id FROM active_tasks WHERE task_id=?", (record_id,)
            ).fetchone()
            if row is None:
                return []
            job_id = str(row[0])
            db.execute(
                "INSERT OR REPLACE INTO archived_tasks (task_id, job_id, value, archived_at) "
                "SELECT task_id, job_id, value, ? FROM active_tasks WHERE task_id=?",
                (now_ms(), record_id),
            )
            db.execute("DELETE FROM active_tasks WHERE task_id=?", (record_id,))
            self._changed(db, "task", record_id, job_id, "archive")
            db.execute("INSERT INTO dirty_jobs (job_id) VALUES (?)", (job_id,))
            self._archived(db)
        return [record_id]


#: The active table and key column of each kind of record.
_ACTIVE = {"job": ("active_jobs", "job_id"), "task": ("active_tasks", "task_id")}
