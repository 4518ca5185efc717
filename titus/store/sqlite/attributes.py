"""Task attributes users set: one row per (task, key), indexed by job as well."""

from __future__ import annotations

from collections.abc import Iterable

from titus.store.sqlite.connection import SqliteBase


class AttributesPart(SqliteBase):
    """The TaskAttributes role (titus/store/roles.py)."""

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
