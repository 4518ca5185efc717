"""Tasks: active documents with their plain index columns, the per-job index partitions
(`active_task_ids ((job_id), task_id)`), the archive, and the leader's bulk read.

A new leader reads `active_jobs` and `active_tasks` whole, as paged full-table scans: they
hold only what is active, and a read per task made a 100,000-task start-up take minutes.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any

from titus.model.job import Job, Task
from titus.store.cassandra.moves import finish_move
from titus.store.cassandra.part import Part
from titus.store.cassandra.schema import task_columns
from titus.store.codec import dump_document
from titus.store.errors import Conflict, StaleEpoch
from titus.store.quarantine import decode_jobs, decode_task, decode_tasks
from titus.store.records import (
    ActiveFacts,
    ActiveIndex,
    ActiveState,
    JobTaskFacts,
    TaskFacts,
    TaskRow,
)


class TasksPart(Part):
    """The task half of the Jobs role (titus/store/roles.py), and the bulk reads."""

    def create_task(self, task: Task, *, epoch: int | None = None) -> Task:
        """The task's index row under its job, then its row by `INSERT ... IF NOT EXISTS`
        (carrying the leader's epoch as its fence), then its change entry.

        The index row goes first: a leader that dies between the row and the batch leaves
        a task its successor loads (the scans read rows) and runs, and that must be listed
        under its job and archived with it. An index row whose task was never written
        (the create failed after it) points at nothing: lists skip it, and the job's
        archive drops its whole index partition.

        The leader names the tasks it creates after what they replace (see
        titus/master/reconciler.py `task_id_for`), so two leaders creating the same task
        write the same row: the first one lands, the other is refused here (`StaleEpoch`
        when the row is fenced by a newer epoch, else `Conflict`) and can never overwrite
        what its successor made of the task since."""
        self._fence.check(epoch)
        db = self._db
        new = task.model_copy(update={"version": 1})
        value = dump_document(new)
        if db.execute("task_get_archived", (task.id,), f"check task {task.id}"):
            raise Conflict(f"task {task.id} exists (archived)")
        db.execute("task_id_insert", (new.jobId, new.id), f"index task {task.id}")
        fence = epoch or 0
        applied, row, attempts = db.lwt_attempts(
            "task_create",
            (new.id, 1, value, *task_columns(new), fence),
            f"create task {task.id}",
        )
        # Refused after a retry with our own row: the attempt that timed out did apply.
        ours = applied or (attempts > 1 and row.value == value)
        if not ours:
            if epoch is not None and row.fence is not None and row.fence > epoch:
                raise StaleEpoch(
                    f"task {task.id} was created by leader epoch {row.fence}; "
                    f"epoch {epoch} no longer leads"
                )
            # An earlier create of this task whose every answer was lost (a write timeout
            # after it applied) is listed under its job (its index row went first), where
            # the caller finds it and takes it; its change entry may never have been
            # written, so it is written now (a second one is harmless).
            if len(row) > 1:
                job_id = row.job_id or Task.model_validate_json(row.value).jobId
                db.changed("task", task.id, job_id)
            raise Conflict(f"task {task.id} exists")
        db.changed("task", new.id, new.jobId)
        return new

    def update_task(self, task: Task, *, epoch: int | None = None) -> Task:
        self._fence.check_known(epoch)
        new = task.model_copy(update={"version": task.version + 1})
        value = dump_document(new)
        sets = (new.version, value, *task_columns(new), task.id)
        self._db.update_versioned(
            "task", task.id, task.jobId, task.version, value, sets, epoch=epoch
        )
        return new

    def update_tasks(self, tasks: list[Task], *, epoch: int | None = None) -> list[Task | None]:
        """Each task by its own conditional write: a lightweight transaction holds one
        partition, and every task is its own. Each is fenced by its own row (update_task);
        a stale epoch seen on the way refuses the rest."""
        self._fence.check_known(epoch)
        out: list[Task | None] = []
        for task in tasks:
            try:
                out.append(self.update_task(task, epoch=epoch))
            except Conflict:
                out.append(None)
        return out

    def archive_task(self, task: Task, *, epoch: int | None = None) -> None:
        self._fence.check(epoch)
        self._db.batch(
            f"archive task {task.id}",
            [
                ("task_archive", (task.id, dump_document(task))),
                ("task_id_archive", (task.jobId, task.id)),
                ("task_delete", (task.id,)),
                ("task_id_delete", (task.jobId, task.id)),
                ("change", ("task", task.id, task.jobId, "archive")),
            ],
        )

    def get_task(self, task_id: str) -> Task | None:
        rows = self._db.execute("task_get", (task_id,), f"read task {task_id}")
        if not rows:
            rows = self._db.execute("task_get_archived", (task_id,), f"read task {task_id}")
        return decode_task(rows[0].value, task_id) if rows else None

    def list_tasks(self, job_id: str, *, include_archived: bool = False) -> list[Task]:
        db = self._db
        ids = [r.task_id for r in db.execute("task_ids", (job_id,), f"list tasks of {job_id}")]
        values = db.values("task_get", ids, f"read the tasks of job {job_id}")
        if include_archived:
            old = db.execute("task_ids_archived", (job_id,), f"list tasks of {job_id}")
            values += db.values(
                "task_get_archived", [r.task_id for r in old], f"read tasks of {job_id}"
            )
        # a task moved to another job is listed there alone, also while its index row
        # still waits to be moved (moves.py)
        return [t for t in decode_tasks(values) if t.jobId == job_id]

    def list_active_tasks(self) -> list[Task]:
        return decode_tasks([r.value for r in self._db.scan("tasks_scan", "tasks")])

    def _scan_both(self, tasks_scan: str = "tasks_scan") -> tuple[list[Job], list[Any]]:
        """The job and task scans side by side: the jobs' pages arrive while tasks page.

        A move decided and not finished (its mover died in between: moves.py) is finished
        here, and the jobs it wrote read again (the task rows are already the moved ones),
        so the leader loads the moved jobs."""
        jobs, rows = self._scan_jobs_and_tasks(tasks_scan)
        touched: set[str] = set()
        for r in rows:
            if r.move is not None:
                touched.update(finish_move(self._db, r.task_id, str(r.move)))
        if not touched:
            return jobs, rows
        ids = sorted(touched)
        fresh = {j.id: j for j in decode_jobs(self._db.values("job_get", ids, "read moved jobs"))}
        # a job archived meanwhile stays archived: the move's older write loses to that
        kept = [j for j in jobs if j.id not in touched or j.id in fresh]
        return [fresh.get(j.id, j) for j in kept], rows

    def _scan_jobs_and_tasks(self, tasks_scan: str) -> tuple[list[Job], list[Any]]:
        result: dict[str, list[Any]] = {}
        errors: list[BaseException] = []

        def jobs() -> None:
            try:
                result["jobs"] = self._db.scan("jobs_scan", "jobs")
            except BaseException as e:  # noqa: BLE001 - handed to the caller below
                errors.append(e)

        thread = threading.Thread(target=jobs, name="cassandra-load-jobs", daemon=True)
        thread.start()
        task_rows = self._db.scan(tasks_scan, "tasks")
        thread.join()
        if errors:
            raise errors[0]
        job_list = decode_jobs([r.value for r in result["jobs"]])
        return job_list, task_rows

    def load_active(self) -> ActiveState:
        """The new leader's start: both active tables, each as one paged full-table scan."""
        return self.load_active_index().parsed()

    def load_active_index(self) -> ActiveIndex:
        """`load_active` with tasks unparsed: the plain columns beside each document."""
        jobs, rows = self._scan_both()
        # The scan's columns are TaskRow's fields, in its order (then a move's remainder).
        width = len(TaskRow._fields)
        tasks = [TaskRow._make(r[:width]) if r.job_id is not None else _old_row(r) for r in rows]
        return ActiveIndex(jobs=jobs, tasks=tasks)

    def load_active_facts(self) -> ActiveFacts:
        """Both active tables scanned, the tasks' plain columns only (no document read),
        grouped by job as they arrive."""
        jobs, rows = self._scan_both("tasks_scan_facts")
        old = [r.task_id for r in rows if r.job_id is None]
        documents = self.active_task_documents(old) if old else {}
        by_job: dict[str, JobTaskFacts] = {}
        for r in rows:
            facts = (
                TaskFacts(r.task_id, r.job_id, r.state, r.agent_id, r.status_ts or 0)
                if r.job_id is not None
                else _old_facts(r.task_id, documents.get(r.task_id))
            )
            if facts is None:
                continue
            group = by_job.get(facts.job_id)
            if group is None:
                group = by_job[facts.job_id] = JobTaskFacts([], [], [], [])
            group.ids.append(facts.id)
            group.states.append(facts.state)
            group.agent_ids.append(facts.agent_id)
            group.timestamps.append(facts.timestamp)
        return ActiveFacts(jobs=jobs, tasks_by_job=by_job)

    def active_task_documents(self, task_ids: Collection[str]) -> dict[str, str]:
        rows = self._db.concurrent(
            "task_get_keyed", [(i,) for i in task_ids], f"read {len(task_ids)} task documents"
        )
        return {r.task_id: r.value for r in rows}


def _old_facts(task_id: str, value: str | None) -> TaskFacts | None:
    """A task written before the plain columns existed: its columns out of its document
    (None when it went meanwhile)."""
    if value is None:
        return None
    job_id, state, agent_id, ts = task_columns(Task.model_validate_json(value))
    return TaskFacts(task_id, job_id, state, agent_id, ts)


def _old_row(r: Any) -> TaskRow:
    """A task written before the index columns existed: parse its document once."""
    job_id, state, agent_id, ts = task_columns(Task.model_validate_json(r.value))
    return TaskRow(r.task_id, job_id, int(r.version), state, agent_id, ts, r.value)
