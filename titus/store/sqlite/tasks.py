"""Tasks: active documents with their plain columns, the archive, the leader's bulk read."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection

from titus.model.job import Job, Task, now_ms
from titus.store.codec import dump_document, task_facts
from titus.store.errors import Conflict
from titus.store.quarantine import decode_jobs, decode_task, decode_tasks
from titus.store.records import ActiveFacts, ActiveIndex, ActiveState, JobTaskFacts, TaskRow
from titus.store.sqlite.archive import ArchivePart
from titus.store.sqlite.connection import unavailable
from titus.store.sqlite.schema import TASK_FACTS_INDEX, TASK_INSERT

#: Between the values of a column of one job's tasks (ids are never made with it).
_SEPARATOR = "\x1f"
#: Each job's task columns, each as one string: out of the index alone, job after job, and
#: a few thousand strings rather than a million rows of values (a task written without a
#: host or a status time reads as "" or 0).
_FACTS_BY_JOB = (
    "SELECT job_id, count(*), group_concat(task_id, char(31)), group_concat(state, char(31)), "
    "group_concat(ifnull(agent_id, ''), char(31)), group_concat(ifnull(ts, 0), char(31)) "
    f"FROM active_tasks INDEXED BY {TASK_FACTS_INDEX} GROUP BY job_id"
)
_FACTS_OF_JOB = (
    "SELECT task_id, state, agent_id, ifnull(ts, 0) FROM active_tasks WHERE job_id=? "
    "ORDER BY task_id"
)
#: Ids per read of documents (well below SQLite's limit on a statement's parameters).
_IDS_PER_READ = 500


class TasksPart(ArchivePart):
    """The task half of the Jobs role (titus/store/roles.py), and the bulk reads."""

    def create_task(self, task: Task, *, epoch: int | None = None) -> Task:
        new = task.model_copy(update={"version": 1})
        with self._tx(epoch) as db:
            try:
                db.execute(
                    TASK_INSERT, (new.id, new.jobId, 1, dump_document(new), *task_facts(new))
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

    def update_tasks(self, tasks: list[Task], *, epoch: int | None = None) -> list[Task | None]:
        out: list[Task | None] = []
        with self._tx(epoch) as db:
            for task in tasks:
                new = task.model_copy(update={"version": task.version + 1})
                cur = db.execute(
                    "UPDATE active_tasks SET version=?, value=?, state=?, agent_id=?, ts=? "
                    "WHERE task_id=? AND version=?",
                    (new.version, dump_document(new), *task_facts(new), task.id, task.version),
                )
                if cur.rowcount != 1:
                    out.append(None)
                    continue
                self._changed(db, "task", task.id, task.jobId)
                out.append(new)
        return out

    def archive_task(self, task: Task, *, epoch: int | None = None) -> None:
        with self._tx(epoch) as db:
            db.execute(
                "INSERT OR REPLACE INTO archived_tasks (task_id, job_id, value, archived_at) "
                "VALUES (?, ?, ?, ?)",
                (task.id, task.jobId, dump_document(task), now_ms()),
            )
            self._archived(db)
            db.execute("DELETE FROM active_tasks WHERE task_id=?", (task.id,))
            self._changed(db, "task", task.id, task.jobId, "archive")

    def get_task(self, task_id: str) -> Task | None:
        rows = self._read("SELECT value FROM active_tasks WHERE task_id=?", (task_id,))
        if not rows:
            rows = self._read("SELECT value FROM archived_tasks WHERE task_id=?", (task_id,))
        return decode_task(str(rows[0][0]), task_id) if rows else None

    def list_tasks(self, job_id: str, *, include_archived: bool = False) -> list[Task]:
        rows = self._read("SELECT value FROM active_tasks WHERE job_id=?", (job_id,))
        if include_archived:
            rows += self._read("SELECT value FROM archived_tasks WHERE job_id=?", (job_id,))
        return decode_tasks([str(r[0]) for r in rows])

    def list_active_tasks(self) -> list[Task]:
        return decode_tasks([str(r[0]) for r in self._read("SELECT value FROM active_tasks")])

    def load_active(self) -> ActiveState:
        return self.load_active_index().parsed()

    def load_active_index(self) -> ActiveIndex:
        """Jobs and task rows from one read transaction, so they agree with each other; a
        store that cannot answer is StoreUnavailable, which the leader rides out."""
        conn = self._conn()
        try:
            conn.execute("BEGIN")
            try:
                values = [v for (v,) in conn.execute("SELECT value FROM active_jobs")]
                rows = conn.execute(
                    "SELECT task_id, job_id, version, state, agent_id, ts, value FROM active_tasks"
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise unavailable(exc, "read") from exc
        return ActiveIndex(jobs=decode_jobs(values), tasks=list(map(TaskRow._make, rows)))

    def load_active_facts(self) -> ActiveFacts:
        """Jobs and task columns from one read transaction, so they agree with each other.

        The job documents are parsed on another thread while SQLite reads the task columns
        (it lets go of the interpreter while it reads): a few seconds with a million tasks
        are spent in each, side by side."""
        conn = self._conn()
        jobs: list[Job] = []
        errors: list[BaseException] = []

        def parse(values: list[str]) -> None:
            try:
                jobs.extend(decode_jobs(values))
            except BaseException as e:  # noqa: BLE001 - handed to the caller below
                errors.append(e)

        parsing: threading.Thread | None = None
        try:
            conn.execute("BEGIN")
            try:
                values = [str(v) for (v,) in conn.execute("SELECT value FROM active_jobs")]
                parsing = threading.Thread(target=parse, args=(values,), name="sqlite-load-jobs")
                parsing.start()
                by_job: dict[str, JobTaskFacts] = {}
                for job_id, count, *columns in conn.execute(_FACTS_BY_JOB):
                    ids, states, agents, stamps = (str(c).split(_SEPARATOR) for c in columns)
                    if not len(ids) == len(states) == len(agents) == len(stamps) == count:
                        # a value with the separator in it (or a column left empty): this
                        # job's rows one by one
                        rows = conn.execute(_FACTS_OF_JOB, (job_id,)).fetchall()
                        ids, states, agents, stamps = (list(c) for c in zip(*rows, strict=True))
                    by_job[str(job_id)] = JobTaskFacts(
                        ids, states, [a or None for a in agents], list(map(int, stamps))
                    )
            finally:
                conn.execute("COMMIT")
                if parsing is not None:
                    parsing.join()
        except sqlite3.OperationalError as exc:
            raise unavailable(exc, "read") from exc
        if errors:
            raise errors[0]
        return ActiveFacts(jobs=jobs, tasks_by_job=by_job)

    def active_task_documents(self, task_ids: Collection[str]) -> dict[str, str]:
        ids = list(task_ids)
        documents: dict[str, str] = {}
        for start in range(0, len(ids), _IDS_PER_READ):
            chunk = ids[start : start + _IDS_PER_READ]
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f"SELECT task_id, value FROM active_tasks WHERE task_id IN ({marks})", tuple(chunk)
            )
            documents.update((str(task_id), str(value)) for task_id, value in rows)
        return documents
