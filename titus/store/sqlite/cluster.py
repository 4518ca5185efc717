"""Cluster configuration operators set: capacity groups and instance group lifecycles."""

from __future__ import annotations

import sqlite3

from titus.store.errors import Conflict
from titus.store.sqlite.connection import SqliteBase


class ClusterConfigPart(SqliteBase):
    """The ClusterConfig role (titus/store/roles.py)."""

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

    def list_instance_groups(self) -> dict[str, str]:
        return {str(n): str(v) for n, v in self._read("SELECT name, state FROM instance_groups")}

    def set_instance_group(self, name: str, state: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO instance_groups VALUES (?, ?)", (name, state))
