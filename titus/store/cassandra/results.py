"""Scheduler results ("why is my task pending"): one row per task with a day's TTL, so
rows of tasks that went away expire without anyone deleting them."""

from __future__ import annotations

from titus.store.cassandra.part import Part


class SchedulerResultsPart(Part):
    """The SchedulerResults role (titus/store/roles.py)."""

    def put_scheduler_result(
        self, task_id: str, job_id: str, value: str, *, epoch: int | None = None
    ) -> None:
        self._fence.check(epoch)
        self._db.execute("sr_put", (task_id, job_id, value), f"record placement of {task_id}")

    def get_scheduler_result(self, task_id: str) -> str | None:
        rows = self._db.execute("sr_get", (task_id,), f"read placement of {task_id}")
        return str(rows[0].value) if rows else None

    def delete_scheduler_result(self, task_id: str, *, epoch: int | None = None) -> None:
        self._fence.check(epoch)
        self._db.execute("sr_delete", (task_id,), f"forget placement of {task_id}")
