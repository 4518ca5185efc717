"""Scheduler results ("why is my task pending"): one row per task, by task id."""

from __future__ import annotations

from titus.store.sqlite.connection import SqliteBase


class SchedulerResultsPart(SqliteBase):
    """The SchedulerResults role (titus/store/roles.py)."""

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
