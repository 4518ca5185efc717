"""What the API asks of the master: dirty marks, kill requests, move requests, and the
move itself when the leader carries it out. A request and its dirty mark are one write."""

from __future__ import annotations

from titus.model.job import Job, Task
from titus.store.codec import (
    dump_document,
    dump_request,
    load_kill_request,
    load_move_request,
    task_facts,
)
from titus.store.errors import Conflict
from titus.store.records import KillRequest, MoveRequest
from titus.store.sqlite.connection import SqliteBase


class RequestsPart(SqliteBase):
    """The Requests role (titus/store/roles.py)."""

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

    def list_all_kill_requests(self) -> list[KillRequest]:
        rows = self._read("SELECT value FROM kill_requests")
        return [load_kill_request(r[0]) for r in rows]

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
