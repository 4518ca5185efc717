"""Task attributes users set: one row per (task, key), kept twice, by task and by job.

By task for reading one task, by job for listing a job's tasks; both rows and the task's
change feed entry go in one logged batch, so the two tables never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable

from titus.store.cassandra.part import Part
from titus.store.cassandra.session import CassandraSession, Item


def read_task_attributes(db: CassandraSession, task_id: str) -> dict[str, str]:
    """One task's attributes (also read by a task move, which carries them along)."""
    rows = db.execute("attr_get", (task_id,), f"read attributes of task {task_id}")
    return {str(r.key): str(r.value) for r in rows}


class AttributesPart(Part):
    """The TaskAttributes role (titus/store/roles.py)."""

    def update_task_attributes(
        self, task_id: str, job_id: str, upsert: dict[str, str], delete: Iterable[str] = ()
    ) -> None:
        items: list[Item] = []
        for k, v in upsert.items():
            items.append(("attr_put", (task_id, k, job_id, v)))
            items.append(("attr_put_by_job", (job_id, task_id, k, v)))
        for k in delete:
            items.append(("attr_delete", (task_id, k)))
            items.append(("attr_delete_by_job", (job_id, task_id, k)))
        items.append(("change", ("task", task_id, job_id)))
        self._db.batch(f"write attributes of task {task_id}", items)

    def get_task_attributes(self, task_id: str) -> dict[str, str]:
        return read_task_attributes(self._db, task_id)

    def list_task_attributes(self, job_id: str) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        what = f"read task attributes of job {job_id}"
        for r in self._db.execute("attr_list", (job_id,), what):
            out.setdefault(str(r.task_id), {})[str(r.key)] = str(r.value)
        return out
