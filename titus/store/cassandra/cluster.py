"""Cluster configuration operators set: capacity groups and instance group lifecycles.

Each is one small partition (`part = 0`): there are a few hundred groups at most, and every
reader wants all of them.
"""

from __future__ import annotations

from titus.store.cassandra.part import Part
from titus.store.errors import Conflict


class ClusterConfigPart(Part):
    """The ClusterConfig role (titus/store/roles.py)."""

    def create_capacity_group(self, name: str, value: str) -> None:
        applied, row, attempts = self._db.lwt_attempts(
            "cg_create", (name, value), f"create capacity group {name}"
        )
        # Refused after a retry with our own value: the attempt that timed out did apply.
        if not applied and not (attempts > 1 and row.value == value):
            raise Conflict(f"capacity group {name} exists")

    def put_capacity_group(self, name: str, value: str) -> None:
        self._db.execute("cg_put", (name, value), f"write capacity group {name}")

    def get_capacity_group(self, name: str) -> str | None:
        rows = self._db.execute("cg_get", (name,), f"read capacity group {name}")
        return str(rows[0].value) if rows else None

    def list_capacity_groups(self) -> dict[str, str]:
        rows = self._db.execute("cg_list", (), "read capacity groups")
        return {str(r.name): str(r.value) for r in rows}

    def delete_capacity_group(self, name: str) -> bool:
        applied, _, attempts = self._db.lwt_attempts(
            "cg_delete", (name,), f"delete capacity group {name}"
        )
        # Not applied after a retry: most likely our own timed-out attempt deleted it.
        return applied or attempts > 1

    def list_instance_groups(self) -> dict[str, str]:
        rows = self._db.execute("ig_list", (), "read instance groups")
        return {str(r.name): str(r.state) for r in rows}

    def set_instance_group(self, name: str, state: str) -> None:
        self._db.execute("ig_set", (name, state), f"set instance group {name}")
